"""The calendar's pure core: the milestone graph and its algorithms (cascade, cycles, working-
day lags, slack, broken links), the playbook's campaign templates and recurring reviews on
working days. No web or database library: the use cases load plain data once, call these
functions and write the result."""
from services.calendar.graph.anchors import Offset, date_at, follow, offset_of
from services.calendar.graph.model import (
                                           CONTINGENCY_HOURS,
                                           Link,
                                           MilestoneGraph,
                                           MilestoneNode,
                                           Move,
                                           PinnedMilestoneInTheWay,
                                           Requirement,
                                           Violation,
)
from services.calendar.graph.reviews import Frequency, Recurrence, Rule, recurrence
from services.calendar.graph.schedule import (
                                           cascade,
                                           earliest,
                                           find_cycle,
                                           required_date,
                                           slack_days,
                                           violations,
                                           window_days,
)
from services.calendar.graph.templates import (
                                           TEMPLATES,
                                           Layout,
                                           PlannedMilestone,
                                           PlannedPhase,
                                           Step,
                                           Template,
                                           TemplateName,
                                           lay_out,
)

__all__ = [
    "CONTINGENCY_HOURS", "TEMPLATES", "Frequency", "Layout", "Link", "MilestoneGraph",
    "MilestoneNode", "Move", "Offset", "PinnedMilestoneInTheWay", "PlannedMilestone",
    "PlannedPhase", "Recurrence", "Requirement", "Rule", "Step", "Template", "TemplateName",
    "Violation", "cascade", "date_at", "earliest", "find_cycle", "follow", "lay_out",
    "offset_of", "recurrence", "required_date", "slack_days", "violations", "window_days",
]
