"""Answers a service keeps in its process's memory between reads: values up to a number of
bytes, the least recently used first out (`Lru`: the calendar's answers per state of the
calendar, its conflicts' and feeds' bytes; the budget's ledger answers), and a kept answer's
bytes with their ETag and, once asked for, gzipped (`Kept`)."""
import hashlib
import threading
import zlib
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar

from fastapi import Response

from shared.service_app import GZIP_LEVEL, GZIP_MINIMUM_BYTES

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


@dataclass(frozen=True)
class Kept:
    """An answer's bytes and its strong ETag (128 bits of their SHA-256: an answer made again
    that came out the same keeps its ETag, so a client's copy stays current)."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> "Kept":
        """`body` with its ETag (about 1 ms for a 1 MB answer)."""
        return cls(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    @cached_property
    def gzipped(self) -> bytes:
        """The bytes gzipped as the services' GZipMiddleware writes them, made at the first
        read that takes gzip and kept with the answer (a month's conflicts, 1.1 MB, took 3 ms
        to compress at every read)."""
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return compressor.compress(self.body) + compressor.flush()

    def response(self, *, media_type: str, headers: Mapping[str, str],
                 accept_encoding: str | None) -> Response:
        """The answer with `headers`: gzipped for a client that takes gzip when the
        middleware would have gzipped it (which passes a response that names its encoding
        through), else as it is."""
        if len(self.body) < GZIP_MINIMUM_BYTES or "gzip" not in (accept_encoding or ""):
            return Response(self.body, media_type=media_type, headers=dict(headers))
        return Response(self.gzipped, media_type=media_type, headers={
            **headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
