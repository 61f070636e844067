"""The milestone graph as plain data: milestones, finish-to-start links, and what the
algorithms in `schedule` answer with. Frozen, so a function's input is never changed under it."""
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from functools import cached_property

# The response window kept free around a launch when none is given (the playbook's 48 h).
CONTINGENCY_HOURS = 48


@dataclass(frozen=True)
class MilestoneNode:
    id: str
    name: str
    due_date: date
    pinned: bool = False


@dataclass(frozen=True)
class Link:
    """Finish-to-start: `successor` is due at least `lag_days` working days after
    `predecessor`."""

    predecessor_id: str
    successor_id: str
    lag_days: int


@dataclass(frozen=True)
class MilestoneGraph:
    """One campaign's milestones and links; lags count the working days of `market`."""

    market: str
    milestones: Mapping[str, MilestoneNode]
    links: tuple[Link, ...] = ()

    @classmethod
    def of(cls, market: str, milestones: Iterable[MilestoneNode],
           links: Iterable[Link] = ()) -> "MilestoneGraph":
        """Build a graph from milestones and links given in any order."""
        return cls(market, {m.id: m for m in milestones}, tuple(links))

    @cached_property
    def _outgoing(self) -> dict[str, list[Link]]:
        outgoing: dict[str, list[Link]] = {}
        for link in sorted(self.links, key=lambda k: (k.predecessor_id, k.successor_id)):
            outgoing.setdefault(link.predecessor_id, []).append(link)
        return outgoing

    @cached_property
    def _incoming(self) -> dict[str, list[Link]]:
        incoming: dict[str, list[Link]] = {}
        for link in sorted(self.links, key=lambda k: (k.successor_id, k.predecessor_id)):
            incoming.setdefault(link.successor_id, []).append(link)
        return incoming

    def outgoing(self, milestone_id: str) -> list[Link]:
        """The links from this milestone to its dependents, by successor id."""
        return self._outgoing.get(milestone_id, [])

    def incoming(self, milestone_id: str) -> list[Link]:
        """The links from this milestone's predecessors, by predecessor id."""
        return self._incoming.get(milestone_id, [])

    def with_milestone(self, milestone: MilestoneNode) -> "MilestoneGraph":
        """This graph with `milestone` added (or replaced, by id)."""
        return replace(self, milestones={**self.milestones, milestone.id: milestone})

    def with_link(self, link: Link) -> "MilestoneGraph":
        """This graph with `link` added; an existing link between the same two takes its lag."""
        kept = tuple(k for k in self.links if (k.predecessor_id, k.successor_id)
                     != (link.predecessor_id, link.successor_id))
        return replace(self, links=(*kept, link))


@dataclass(frozen=True)
class Requirement:
    """The earliest date a milestone's predecessors allow, the link that sets it, and that
    link's predecessor as it stood when the date was worked out."""

    earliest: date
    link: Link
    predecessor: MilestoneNode


@dataclass(frozen=True)
class Move:
    milestone_id: str
    from_date: date
    to_date: date


@dataclass(frozen=True)
class Violation:
    """A link whose successor is due before the link allows."""

    link: Link
    required: date


class PinnedMilestoneInTheWay(Exception):
    """A cascade would have to move a pinned milestone; nothing is moved."""

    def __init__(self, milestone: MilestoneNode, requirement: Requirement):
        super().__init__(milestone.id)
        self.milestone = milestone
        self.requirement = requirement
