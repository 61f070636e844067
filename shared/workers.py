"""Worker processes for CPU-heavy pure functions (solvers), so a solve never stalls the API.

A solve runs in a separate process with a wall-clock limit; past it the workers are killed and
replaced, so a runaway solve costs its own request and nothing else's future requests.
"""
import logging
import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.pool import Pool
from typing import Any

from shared.errors import ServiceUnavailable

logger = logging.getLogger("marketplan.workers")


class WorkerTimeout(Exception):
    """The function ran past its wall-clock limit and its worker was stopped."""


def _warm(module: str) -> None:
    __import__(module)


class WorkerPool:
    def __init__(self, workers: int, *, preload: str):
        self._workers = workers
        self._preload = preload
        self._lock = threading.Lock()
        self._pool: Pool | None = None

    def start(self) -> None:
        # spawn, not fork: the parent runs an event loop and threads that must not be copied.
        self._pool = multiprocessing.get_context("spawn").Pool(
            self._workers, initializer=_warm, initargs=(self._preload,))

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.terminate()
                self._pool.join()
                self._pool = None

    def run(self, function: Callable[..., Any], *args: Any, timeout: float) -> Any:
        """Return function(*args) computed in a worker; raise WorkerTimeout past `timeout`."""
        with self._lock:
            if self._pool is None:
                raise ServiceUnavailable("The solver workers are shutting down; retry shortly.")
            pending = self._pool.apply_async(function, args)
        try:
            return pending.get(timeout)
        except multiprocessing.TimeoutError:
            logger.warning("worker passed its %.0f s limit; restarting the workers", timeout)
            self._restart()
            raise WorkerTimeout(f"stopped after {timeout:g} s") from None

    def _restart(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.terminate()
                self._pool.join()
        self.start()
