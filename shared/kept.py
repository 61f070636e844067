"""Values kept in a process's memory up to a number of bytes, the least recently used first
out: what a service keeps of its answers between reads (the calendar's answers per state of
the calendar, its conflicts' and feeds' bytes; the budget's ledger answers)."""
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """Values by key, each counted as the bytes it is said to take, `max_bytes` in all: the
    least recently used go first, and a value bigger than all of it is not kept (0 keeps
    none). Safe to share between a process's threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._kept: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: K) -> V | None:
        """The value kept for `key` (now the most recently used), or None."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[K]) -> list[V | None]:
        """The values kept for `keys`, None for those not kept, under one lock."""
        with self._lock:
            found = [self._kept.get(key) for key in keys]
            for key, kept in zip(keys, found, strict=True):
                if kept is not None:
                    self._kept.move_to_end(key)
        return [None if kept is None else kept[0] for kept in found]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep `value` for `key` (in place of any other), counted as `size` bytes."""
        self.put_many([(key, value, size)])

    def put_many(self, items: Iterable[tuple[K, V, int]]) -> None:
        """Keep each `(key, value, size)` as `put` does, under one lock."""
        with self._lock:
            for key, value, size in items:
                self._forget(key)
                if size <= self.max_bytes:
                    self._kept[key] = (value, size)
                    self._bytes += size
            while self._bytes > self.max_bytes:
                self._forget(next(iter(self._kept)))

    def pop(self, key: K) -> None:
        """Keep nothing for `key`."""
        with self._lock:
            self._forget(key)

    def clear(self) -> None:
        """Keep nothing."""
        with self._lock:
            self._kept.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    def _forget(self, key: K) -> None:
        kept = self._kept.pop(key, None)
        if kept is not None:
            self._bytes -= kept[1]
