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
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from services.budget.ledger.tables import Budget


@dataclass(frozen=True)
class Kept:
    """An answer's bytes and its strong ETag."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> "Kept":
        """`body` with its ETag: 128 bits of its SHA-256 (about 1 ms for a 720 KiB variance)."""
        return cls(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def ledger_state(budget: Budget) -> Hashable:
    """What a budget's variance and review are read from, as its row tells: the revision of
    its channels, plan lines, reserve entries and actuals, and its own fields they read."""
    return (budget.revision, budget.currency, budget.current_plan, budget.start_date,
            budget.end_date, budget.period_length, json.dumps(budget.rules, sort_keys=True))


class KeptAnswers:
    """The latest answer of each kind per budget, up to `capacity` bytes in all (the least
    recently used go first; 0 keeps none). Safe to share between a process's threads."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[str, str], tuple[Hashable, Kept]] = OrderedDict()
        self._size = 0

    def answer(self, kind: str, budget: Budget, make: Callable[[], bytes]) -> Kept:
        """The `kind` answer of `budget` as it is now: the kept one if made from this state,
        else `make()`'s, kept."""
        key, state = (kind, budget.id), ledger_state(budget)
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None and kept[0] == state:
                self._answers.move_to_end(key)
                return kept[1]
        made = Kept.of(make())
        with self._lock:
            self._forget(key)
            size = len(made.body)
            if size <= self.capacity:
                self._answers[key] = (state, made)
                self._size += size
                while self._size > self.capacity:
                    self._forget(next(iter(self._answers)))
        return made

    def _forget(self, key: tuple[str, str]) -> None:
        kept = self._answers.pop(key, None)
        if kept is not None:
            self._size -= len(kept[1].body)
