"""Worker processes for CPU-heavy pure functions (solvers), so a solve never stalls the API.

A pool keeps `workers` processes, each started once (a fresh interpreter that imports the
solver module up front) and each running one solve at a time. A call gets an answer by its
deadline, its `timeout` counted from the call (waiting for a free worker included): past it,
the worker running that call alone is killed and a new one started in its place, so one
request's timeout never touches another request's solve. The answer comes within `timeout`
plus the time to kill one process (milliseconds). Closing the pool kills every worker and
starts no new one, so a stopping service leaves no process behind.

Plain `subprocess` children with a pipe each way rather than `multiprocessing`: no resource
tracker process, no pool that respawns workers behind our back while the service stops.
Run as a program (`python -m shared.workers <module> <request fd> <answer fd>`) it is a worker.
"""
import contextlib
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib import import_module
from typing import Any

from shared.errors import ServiceUnavailable

logger = logging.getLogger("marketplan.workers")

_HEADER = struct.Struct("!Q")  # length of the pickled message that follows


class WorkerTimeout(Exception):
    """The function ran past its wall-clock limit and its worker was stopped."""


class _WorkerGone(Exception):
    """The worker process ended (killed, crashed) before answering."""


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise _WorkerGone
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_message(fd: int, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_message(fd: int, deadline: float | None) -> Any:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    return pickle.loads(_read_exact(fd, size, deadline))


class _Worker:
    """One worker process and the two pipes to it."""

    def __init__(self, preload: str):
        request_read, self._requests = os.pipe()
        self._answers, answer_write = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shared.workers", preload, str(request_read),
             str(answer_write)],
            pass_fds=(request_read, answer_write), stdin=subprocess.DEVNULL)
        os.close(request_read)
        os.close(answer_write)

    def call(self, function: Callable[..., Any], args: tuple, deadline: float) -> Any:
        try:
            _write_message(self._requests, (function, args))
        except BrokenPipeError:
            raise _WorkerGone from None
        ok, value = _read_message(self._answers, deadline)
        if not ok:
            raise value
        return value

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for fd in (self._requests, self._answers):
            with contextlib.suppress(OSError):
                os.close(fd)


class WorkerPool:
    def __init__(self, workers: int, *, preload: str):
        self._size = workers
        self._preload = preload
        self._lock = threading.Lock()
        self._free = threading.Semaphore(workers)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._closed = True

    def _spawn(self) -> _Worker:
        # Called with the lock held and the pool open, so close() sees every worker.
        worker = _Worker(self._preload)
        self._all.add(worker)
        return worker

    def start(self) -> None:
        with self._lock:
            self._closed = False
            self._idle = [self._spawn() for _ in range(self._size)]

    def close(self) -> None:
        """Kill every worker (a running solve's caller gets a 503) and start none again."""
        with self._lock:
            self._closed = True
            workers, self._all, self._idle = list(self._all), set(), []
        for worker in workers:
            worker.kill()

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("The solver workers are shutting down; retry shortly.")
            worker = self._idle.pop() if self._idle else None
            if worker is None or worker.process.poll() is not None:
                if worker is not None:
                    self._all.discard(worker)
                worker = self._spawn()
            return worker

    def _give_back(self, worker: _Worker | None) -> None:
        """Return a worker that answered; replace one that was killed or died (None)."""
        with self._lock:
            if self._closed:
                stale = worker
            elif worker is None:
                self._idle.append(self._spawn())
                stale = None
            else:
                self._idle.append(worker)
                stale = None
        if stale is not None:
            stale.kill()

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)
        worker.kill()

    def run(self, function: Callable[..., Any], *args: Any, timeout: float) -> Any:
        """Return function(*args) computed in a worker; raise WorkerTimeout past `timeout`
        seconds from now (the function's own exceptions are raised as they were)."""
        deadline = time.monotonic() + timeout
        if not self._free.acquire(timeout=timeout):
            raise ServiceUnavailable(f"All {self._size} solver workers stayed busy for "
                                     f"{timeout:g} s; retry shortly.",
                                     headers={"Retry-After": "5"})
        try:
            for attempt in (1, 2):
                worker = self._take()
                try:
                    value = worker.call(function, args, deadline)
                except TimeoutError:
                    logger.warning("a solve passed its %.1f s limit; its worker was stopped",
                                   timeout)
                    self._discard(worker)
                    self._give_back(None)
                    raise WorkerTimeout(f"stopped after {timeout:g} s") from None
                except _WorkerGone:
                    # Killed or crashed (perhaps while idle): the functions are pure, so the
                    # call runs again once on a new worker, unless the pool is closing.
                    self._discard(worker)
                    self._give_back(None)
                    if attempt == 2:
                        raise ServiceUnavailable("The solver worker stopped before answering; "
                                                 "retry shortly.") from None
                    continue
                except BaseException:
                    self._give_back(worker)  # the function raised; the worker is fine
                    raise
                self._give_back(worker)
                return value
            raise AssertionError("unreachable")
        finally:
            self._free.release()


def _watch_parent(parent: int) -> None:
    # A worker never outlives its service: if the service dies, its children are re-parented.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _serve(preload: str, requests: int, answers: int) -> None:
    # Ctrl-C reaches the whole process group: the worker just ends, quietly; the service
    # decides whether a new one is needed.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    import_module(preload)
    while True:
        try:
            function, args = _read_message(requests, None)
        except _WorkerGone:
            return  # the service closed the pipe
        try:
            answer = (True, function(*args))
        except Exception as error:
            answer = (False, error)
        try:
            _write_message(answers, answer)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            _write_message(answers, (False, RuntimeError(f"unpicklable answer: {error!r}")))


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
