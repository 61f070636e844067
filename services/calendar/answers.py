"""The calendar's read answers kept per state of the calendar, in each process.

Every change the calendar makes takes the next position of its event sequence in the same
transaction (`outbox.publish`), so the last position given out names the state a read answers
from. An answer's bytes are kept under that position and served again until it moves: a busy
month's conflicts take about 100 ms of CPU to find and 1.1 MB to write, a kept answer one
one-row query. Each process keeps its own and reads the position from the database on every
read, so a change made through any process is seen by all of them at their next read.

The position is read before the rows an answer is made from, so an answer is never older than
its position (a change committed in between can only make it newer, and the next read, at the
new position, makes it again).
"""
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar, cast

from fastapi import Response
from pydantic import TypeAdapter
from sqlmodel import Session

from services.calendar.outbox import last_position
from shared.kept import Kept, Lru
from shared.versioning import none_match

# What one process keeps at most: a few dozen ranges of a department-year (a month's
# conflicts are 1.1 MB, the whole-calendar feed 2.5 MB); the least recently read go first.
MAX_BYTES = 64 * 2**20
# A client may keep the answer but asks again each time (the answer is its ETag or a 304).
CACHE_CONTROL = "private, no-cache"
T = TypeVar("T")


@cache
def _adapter(shape: Any) -> TypeAdapter[Any]:
    return TypeAdapter(shape)


class Answers:
    """What is kept at the calendar's last position read (others are dropped): answers'
    bytes, and values several answers are made from (a range's conflicts, for the list, its
    filters and its summary)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._lock = threading.Lock()
        self._position = -1
        self._kept: Lru[Hashable, Any] = Lru(max_bytes)
        self._making: dict[tuple[int, Hashable], Future[Any]] = {}

    def value(self, position: int, key: Hashable, make: Callable[[], T],
              size: Callable[[T], int]) -> T:
        """The value `key` at `position`: kept, or made by `make` (outside the lock, once:
        readers that arrive while it is made wait for it) and kept, counted as `size` bytes,
        unless another position was read meanwhile."""
        with self._lock:
            # Any other position drops what is kept: a newer one after a change, an older one
            # after a restore of the database (whose later changes would reach the same
            # positions as other states) or from a reader that read it just before a change
            # (its answer is then at least as new as its position; the next read moves on).
            if position != self._position:
                self._position = position
                self._kept.clear()
            if (found := self._kept.get(key)) is not None:
                return cast(T, found)
            # Subscribers polling right after a change each rendered the whole-calendar feed
            # (seconds of CPU each, on the same cores): the first makes it, the others wait.
            flight = self._making.get((position, key))
            making = flight is None
            if flight is None:
                flight = self._making[(position, key)] = Future()
        if not making:
            try:
                return cast(T, flight.result())
            except Exception:   # the maker's failure is its own: make it here
                return self.value(position, key, make, size)
        try:
            made = make()
        except BaseException as error:
            with self._lock:
                del self._making[(position, key)]
            flight.set_exception(error)
            raise
        with self._lock:
            del self._making[(position, key)]
            if position == self._position and self._kept.get(key) is None:
                self._kept.put(key, made, size(made))
        flight.set_result(made)
        return made

    def kept(self, position: int, key: Hashable, make: Callable[[], bytes]) -> Kept:
        """The answer `key` at `position` (its bytes made by `make`), with its ETag."""
        return self.value(position, key, lambda: Kept.of(make()), lambda kept: len(kept.body))

    def at(self, session: Session, accept_encoding: str | None = None) -> "At":
        """What is kept at the calendar's current position (read now, before any row an
        answer is made from), for a client that takes `accept_encoding`."""
        return At(self, last_position(session), accept_encoding)


@dataclass(frozen=True)
class At:
    """What is kept at one position: a read's view of `Answers`."""

    answers: Answers
    position: int
    accept_encoding: str | None = None

    def value(self, key: Hashable, make: Callable[[], T], size: Callable[[T], int]) -> T:
        """The value `key` at this position (`Answers.value`)."""
        return self.answers.value(self.position, key, make, size)

    def json(self, *, key: Hashable, shape: Any, answer: Callable[[], Any],
             if_none_match: str | None) -> Response:
        """Answer `answer()` as JSON of `shape` (the route's response model, written as
        FastAPI writes it) from what is kept for `key`, or 304 if the client's copy is it."""
        return self.body(key=key, if_none_match=if_none_match,
                         make=lambda: _adapter(shape).dump_json(answer(), by_alias=True))

    def body(self, *, key: Hashable, make: Callable[[], bytes],
             if_none_match: str | None) -> Response:
        """Answer the JSON bytes `make()` writes from what is kept for `key` (gzipped once
        for the clients that take it), or 304 if the client's copy is it."""
        kept = self.answers.kept(self.position, key, make)
        headers = {"ETag": kept.etag, "Cache-Control": CACHE_CONTROL}
        if none_match(if_none_match, kept.etag):
            return Response(status_code=304, headers=headers)
        return kept.response(media_type="application/json", headers=headers,
                             accept_encoding=self.accept_encoding)
