"""The milestone graph's algorithms: the earliest date a milestone's predecessors allow, its
slack, the cascade of a move to its dependents, the cycle a new link would close, and the
links a schedule breaks. Pure functions over `MilestoneGraph`; lags count working days of the
graph's market (weekends and public holidays skipped, `shared.workdays`).

>>> from datetime import date
>>> from services.calendar.graph import Link, MilestoneGraph, MilestoneNode
>>> graph = MilestoneGraph.of("US", [MilestoneNode("a", "Kickoff", date(2026, 12, 17)),
...                                  MilestoneNode("b", "Launch", date(2026, 12, 21))],
...                           [Link("a", "b", 2)])
>>> [(m.milestone_id, m.to_date.isoformat()) for m in cascade(graph, "a", date(2026, 12, 22))]
[('a', '2026-12-22'), ('b', '2026-12-24')]
"""
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import date

from services.calendar.graph.model import (
    Link,
    MilestoneGraph,
    Move,
    PinnedMilestoneInTheWay,
    Requirement,
    Violation,
)
from shared.workdays import add_working_days


def required_date(graph: MilestoneGraph, link: Link) -> date:
    """The earliest date `link` allows its successor: `lag_days` working days after the
    predecessor's due date (the same day when the lag is 0)."""
    predecessor = graph.milestones[link.predecessor_id]
    return add_working_days(predecessor.due_date, link.lag_days, graph.market)


def _earliest(graph: MilestoneGraph, milestone_id: str,
              dates: Mapping[str, date]) -> Requirement | None:
    best: Requirement | None = None
    for link in graph.incoming(milestone_id):
        predecessor = replace(graph.milestones[link.predecessor_id],
                              due_date=dates[link.predecessor_id])
        allowed = add_working_days(predecessor.due_date, link.lag_days, graph.market)
        if best is None or allowed > best.earliest:
            best = Requirement(allowed, link, predecessor)
    return best


def earliest(graph: MilestoneGraph, milestone_id: str) -> Requirement | None:
    """The earliest date the milestone's predecessors allow and the link that sets it (on a
    tie, the predecessor with the smallest id); None when it depends on nothing."""
    return _earliest(graph, milestone_id, {k: m.due_date for k, m in graph.milestones.items()})


def slack_days(graph: MilestoneGraph, milestone_id: str) -> int | None:
    """Calendar days the milestone is due after the earliest date its predecessors allow:
    how far they may slip before it has to move. Negative when a dependency is broken; None
    when it depends on nothing."""
    requirement = earliest(graph, milestone_id)
    if requirement is None:
        return None
    return (graph.milestones[milestone_id].due_date - requirement.earliest).days


def cascade(graph: MilestoneGraph, milestone_id: str, to_date: date) -> tuple[Move, ...]:
    """Move a milestone to `to_date` and push every dependent that would break its rule.

    Dependents are visited breadth first down the chain; each moves only as far as its
    predecessors require (slack absorbs a slip), and one reached twice keeps its first place
    in the answer with its final date. Returns the moves, the given milestone first; none
    when `to_date` is its date. The given milestone's own pin and predecessors are the
    caller's to check. Raises `PinnedMilestoneInTheWay` if a pinned dependent would have to
    move, so that a refused move changes nothing."""
    dates = {k: m.due_date for k, m in graph.milestones.items()}
    if dates[milestone_id] == to_date:
        return ()
    moves = {milestone_id: Move(milestone_id, dates[milestone_id], to_date)}
    dates[milestone_id] = to_date
    queue = deque([milestone_id])
    while queue:
        for link in graph.outgoing(queue.popleft()):
            successor = graph.milestones[link.successor_id]
            requirement = _earliest(graph, successor.id, dates)
            assert requirement is not None   # `link` is one of its predecessors' links
            if dates[successor.id] >= requirement.earliest:
                continue
            if successor.pinned:
                raise PinnedMilestoneInTheWay(successor, requirement)
            first = moves.get(successor.id)
            moves[successor.id] = Move(successor.id, first.from_date if first else
                                       dates[successor.id], requirement.earliest)
            dates[successor.id] = requirement.earliest
            queue.append(successor.id)
    return tuple(moves.values())


def find_cycle(graph: MilestoneGraph, predecessor_id: str,
               successor_id: str) -> tuple[str, ...] | None:
    """The ids on the shortest path successor → … → predecessor if a new link
    predecessor → successor would close a cycle, else None (ties: smallest ids first)."""
    parents: dict[str, str | None] = {successor_id: None}
    queue = deque([successor_id])
    while queue:
        current = queue.popleft()
        if current == predecessor_id:
            path = [current]
            while (parent := parents[path[-1]]) is not None:
                path.append(parent)
            return tuple(reversed(path))
        for link in graph.outgoing(current):
            if link.successor_id not in parents:
                parents[link.successor_id] = current
                queue.append(link.successor_id)
    return None


def violations(graph: MilestoneGraph) -> tuple[Violation, ...]:
    """Every link whose successor is due before the link allows, by successor then
    predecessor id."""
    found = []
    for link in sorted(graph.links, key=lambda k: (k.successor_id, k.predecessor_id)):
        required = required_date(graph, link)
        if graph.milestones[link.successor_id].due_date < required:
            found.append(Violation(link, required))
    return tuple(found)


def window_days(hours: int) -> int:
    """The whole days a window of `hours` covers on each side of its day, rounded up."""
    return -(-hours // 24)
