"""Answers kept in each process under the exact state of the ledger they were read from.

A year of weeks on 50 channels makes a 720 KiB variance out of 2,650 plan lines and 10,000
actuals, and it is read far more often than actuals come in. A kept answer is found only while
its budget is in the state it was made from: the budget's own fields it reads and its
`revision`, which the database moves in the transaction of every change to the budget's
channels, plan lines, reserve entries and actuals (migration 0008's triggers, whichever process
or code path writes). So no process needs telling of a change, and none can answer from before
one: the revision is read before the rows, in the same transaction, so an answer is never kept
under a revision older than its rows.

Only reads use them: a writer's session may hold changes its budget row does not show yet.

Each answer carries a strong ETag, a hash of its bytes: a client polling a read sends it back
as `If-None-Match` and gets a 304 while the bytes are the same, even when the revision moved
for a change the answer does not show (a reserve draw in another period, the same figures
restated), and never while they differ (a cut by campaign, which also reads funding and phases
that no revision covers, is hashed each time it is made).
"""
import json
from collections.abc import Callable, Hashable

from services.budget.ledger.tables import Budget
from shared.kept import Kept, Lru


def ledger_state(budget: Budget) -> Hashable:
    """What a budget's variance and review are read from, as its row tells: the revision of
    its channels, plan lines, reserve entries and actuals, and its own fields they read."""
    return (budget.revision, budget.currency, budget.current_plan, budget.start_date,
            budget.end_date, budget.period_length, json.dumps(budget.rules, sort_keys=True))


class KeptAnswers:
    """The latest answer of each kind per budget, up to `capacity` bytes in all (the least
    recently used go first; 0 keeps none). Safe to share between a process's threads."""

    def __init__(self, capacity: int):
        self._answers: Lru[tuple[str, str], tuple[Hashable, Kept]] = Lru(capacity)

    def answer(self, kind: str, budget: Budget, make: Callable[[], bytes]) -> Kept:
        """The `kind` answer of `budget` as it is now: the kept one if made from this state,
        else `make()`'s, kept."""
        key, state = (kind, budget.id), ledger_state(budget)
        kept = self._answers.get(key)
        if kept is not None and kept[0] == state:
            return kept[1]
        made = Kept.of(make())
        self._answers.put(key, (state, made), len(made.body))
        return made
