"""Worker processes for CPU-heavy pure functions (solvers), so a solve never stalls the API.

A pool keeps `workers` processes, each started once (a fresh interpreter that imports the
`preload` modules up front: the solver and the module of every function the pool will run, or
the first call would pay for those imports out of its own deadline) and each running one
solve at a time. A call gets an answer by its deadline, its `timeout` counted from the call
(waiting for a free worker included): past it, the worker running that call alone is killed
and a new one started in its place, so one request's timeout never touches another request's
solve. The answer comes within `timeout` plus the time to kill one process (milliseconds);
a call that asks for it is first stopped as a cancel would stop it, so a solver that ran past
its own deadline (a loaded machine) still answers its best plan, within the stop's graces.
Closing the pool kills every worker and starts no new one, so a stopping service leaves no
process behind. A call that answers with a thread of its own still running (a HiGHS run left
behind past its limit, in a stretch where it reads no clock) retires its worker: the pool
starts another in its place, as it does after a timeout.

A call may also follow the solve (its progress reports reach the caller while it runs) and
stop it early (the solver returns its best answer so far; one that does not hear the stop is
killed).

Plain `subprocess` children with a pipe each way rather than `multiprocessing`: no resource
tracker process, no pool that respawns workers behind our back while the service stops.
Run as a program (`python -m shared.workers <module>[,<module>…] <request fd> <answer fd>`) it
is a worker.
"""
import contextlib
import dataclasses
import functools
import logging
import math
import os
import pickle
import queue
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

POLL_SECONDS = 0.1       # how often the caller's `cancelled()` is asked
REPORT_SECONDS = 0.25    # the caller hears at most one progress report per this interval
STOP_GRACE_SECONDS = 1.0  # how long a stopped function may take to hear the stop
# How long one that heard it may then take to return its best answer: rounding and writing a
# 52,000-cell plan is a fraction of a second of CPU, several seconds of wall on a machine
# loaded ten times over, and killing it then would lose the plan the stop was meant to keep.
ANSWER_GRACE_SECONDS = 5.0

OnProgress = Callable[[dict[str, Any]], None]
IsCancelled = Callable[[], bool]


class WorkerTimeout(Exception):
    """The function ran past its wall-clock limit and its worker was stopped."""


class Cancelled(Exception):
    """The caller cancelled the call and the function gave no answer: it was still waiting
    for a worker, or it did not return within the grace after the stop (its worker was
    killed)."""


class _WorkerGone(Exception):
    """The worker process ended (killed, crashed) before answering."""


class _StopIgnored(Exception):
    """The function did not return within the grace after its stop."""


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


# Messages. To a worker: ("call", function, args, wants progress, wants stop) or ("stop",).
# From a worker: ("progress", dict) and once ("heard", None) when the function first sees its
# stop, then one ("value", value) or ("error", exception).
_STOP = ("stop",)


class _Relay:
    """Hands the caller the latest progress report, at most one per REPORT_SECONDS: a solver
    may report many times a second, and only the newest state matters."""

    def __init__(self, deliver: OnProgress | None):
        self._deliver = deliver
        self._pending: dict[str, Any] | None = None
        self._next = 0.0

    def add(self, report: dict[str, Any]) -> None:
        self._pending = report

    def seconds_to_next(self, now: float) -> float:
        return math.inf if self._pending is None else max(0.0, self._next - now)

    def flush(self, now: float, *, last: bool = False) -> None:
        # The last report before the answer is delivered at once: the caller's view ends at
        # the solve's final state.
        if self._deliver is None or self._pending is None or (now < self._next and not last):
            return
        report, self._pending, self._next = self._pending, None, now + REPORT_SECONDS
        self._deliver(report)


class _Worker:
    """One worker process and the two pipes to it."""

    def __init__(self, preload: tuple[str, ...]):
        request_read, self._requests = os.pipe()
        self._answers, answer_write = os.pipe()
        # Told by the worker with its last answer: a thread the call left runs on in it.
        self.retiring = False
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shared.workers", ",".join(preload), str(request_read),
             str(answer_write)],
            pass_fds=(request_read, answer_write), stdin=subprocess.DEVNULL)
        os.close(request_read)
        os.close(answer_write)

    def _send(self, message: object) -> None:
        try:
            _write_message(self._requests, message)
        except BrokenPipeError:
            raise _WorkerGone from None

    def call(self, function: Callable[..., Any], args: tuple[Any, ...], deadline: float,
             progress: OnProgress | None, cancelled: IsCancelled | None,
             stop_at_deadline: bool) -> tuple[bool, Any]:
        """Return (True, value) or (False, the function's exception); raise TimeoutError past
        the deadline (past the graces after the deadline's stop, with `stop_at_deadline`),
        _StopIgnored past the graces after a cancel's stop, _WorkerGone if it died."""
        self._send(("call", function, args, progress is not None,
                    cancelled is not None or stop_at_deadline))
        relay = _Relay(progress)
        stopped_at: float | None = None
        heard_by, by_deadline = 0.0, False
        heard_at: float | None = None
        while True:
            now = time.monotonic()
            until = (deadline if stopped_at is None else heard_by if heard_at is None
                     else heard_at + ANSWER_GRACE_SECONDS)
            wait = min(until - now, relay.seconds_to_next(now),
                       POLL_SECONDS if cancelled is not None and stopped_at is None else math.inf)
            if select.select([self._answers], [], [], max(wait, 0.0))[0]:
                kind, value = _read_message(self._answers, until)
                if kind == "heard":
                    heard_at = time.monotonic()
                    continue
                if kind == "retiring":
                    self.retiring = True
                    continue
                if kind != "progress":
                    relay.flush(time.monotonic(), last=True)
                    return kind == "value", value
                relay.add(value)
            now = time.monotonic()
            relay.flush(now)
            if now >= until:
                if stopped_at is None and stop_at_deadline:
                    self._send(_STOP)
                    stopped_at, heard_by, by_deadline = now, now + STOP_GRACE_SECONDS, True
                    continue
                raise TimeoutError if stopped_at is None or by_deadline else _StopIgnored
            if stopped_at is None and cancelled is not None and cancelled():
                self._send(_STOP)
                stopped_at, heard_by = now, min(deadline, now + STOP_GRACE_SECONDS)

    def end(self) -> None:
        """Kill the process only: a caller reading its pipes sees it gone, then kills it."""
        self.process.kill()
        self.process.wait()

    def kill(self) -> None:
        """Kill the process and close its pipes (by the one thread that uses them)."""
        self.end()
        for fd in (self._requests, self._answers):
            with contextlib.suppress(OSError):
                os.close(fd)


class WorkerPool:
    def __init__(self, workers: int, *, preload: tuple[str, ...]):
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
            idle, busy = self._idle, self._all.difference(self._idle)
            self._all, self._idle = set(), []
        for worker in idle:
            worker.kill()
        # A busy worker's pipes are closed by its caller, after reading the end there: closed
        # here, a read would fail on a closed descriptor, or read another file that reused it.
        for worker in busy:
            worker.end()

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("The solver workers are shutting down; retry shortly.")
            worker = self._idle.pop() if self._idle else None
            if worker is None or worker.process.poll() is not None:
                if worker is not None:  # died while idle
                    self._all.discard(worker)
                    worker.kill()
                worker = self._spawn()
            return worker

    def _give_back(self, worker: _Worker) -> None:
        """Return a worker that answered (killed instead if the pool closed meanwhile)."""
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.kill()

    def _replace(self, worker: _Worker) -> None:
        """Kill a worker whose call did not end cleanly and start another in its place."""
        with self._lock:
            self._all.discard(worker)
        worker.kill()
        with self._lock:
            if not self._closed:
                self._idle.append(self._spawn())

    def _acquire(self, timeout: float, deadline: float, cancelled: IsCancelled | None) -> None:
        while True:
            left = deadline - time.monotonic()
            if self._free.acquire(timeout=max(0.0, left if cancelled is None
                                              else min(left, POLL_SECONDS))):
                return
            if cancelled is not None and cancelled():
                raise Cancelled("cancelled while waiting for a free solver worker")
            if time.monotonic() >= deadline:
                raise ServiceUnavailable(f"All {self._size} solver workers stayed busy for "
                                         f"{timeout:g} s; retry shortly.",
                                         headers={"Retry-After": "5"})

    def run(self, function: Callable[..., Any], *args: Any, timeout: float,
            progress: OnProgress | None = None, cancelled: IsCancelled | None = None,
            stop_at_timeout: bool = False) -> Any:
        """Return function(*args) computed in a worker; raise WorkerTimeout past `timeout`
        seconds from now (the function's own exceptions are raised as they were).

        With `progress`, the function is also given `progress=`, a callable taking a mapping
        or a dataclass instance (a solver's progress record); each report reaches `progress`
        here as a dict, in this thread, the newest one at most every REPORT_SECONDS.
        With `cancelled`, the function is also given `stop=`, a callable that turns true once
        `cancelled()` (asked every POLL_SECONDS) has: the function should then return its best
        answer, which is returned here as usual. If it has not looked at `stop()` within
        STOP_GRACE_SECONDS, or has not returned within ANSWER_GRACE_SECONDS of seeing it true,
        its worker is killed and Cancelled raised, as it is when the cancel comes before a
        worker was free. (A deadline passing after the stop, before it was heard, raises
        Cancelled too; once heard, the answer is waited for.)
        With `stop_at_timeout`, the function is given `stop=` too, and the timeout stops it as
        a cancel would: the best answer it then returns is the call's answer (a solver behind
        its own deadline, on a loaded machine, keeps the plan it has). WorkerTimeout is raised
        where it does not hear the stop, or answer, within the same graces.
        """
        deadline = time.monotonic() + timeout
        self._acquire(timeout, deadline, cancelled)
        try:
            for attempt in (1, 2):
                worker = self._take()
                try:
                    ok, value = worker.call(function, args, deadline, progress, cancelled,
                                            stop_at_timeout)
                except TimeoutError:
                    logger.warning("a solve passed its %.1f s limit; its worker was stopped",
                                   timeout)
                    self._replace(worker)
                    raise WorkerTimeout(f"stopped after {timeout:g} s") from None
                except _StopIgnored:
                    logger.warning("a cancelled solve did not hear its stop within %.1f s or did "
                                   "not answer %.1f s after; its worker was stopped",
                                   STOP_GRACE_SECONDS, ANSWER_GRACE_SECONDS)
                    self._replace(worker)
                    raise Cancelled("stopped after its cancel with no answer") from None
                except _WorkerGone:
                    # Killed or crashed (perhaps while idle): the functions are pure, so the
                    # call runs again once on a new worker, unless the pool is closing.
                    self._replace(worker)
                    if attempt == 2:
                        raise ServiceUnavailable("The solver worker stopped before answering; "
                                                 "retry shortly.") from None
                    continue
                except BaseException:
                    # The caller's own hooks raised (or it was interrupted) mid-call: the
                    # worker is still busy with the call, so it cannot serve another.
                    self._replace(worker)
                    raise
                if worker.retiring:
                    self._replace(worker)
                else:
                    self._give_back(worker)
                if not ok:
                    raise value
                return value
            raise AssertionError("unreachable")
        finally:
            self._free.release()


class _Answers:
    """A worker's answer pipe, written by the call's thread and by its progress reports
    (which a solver may make from its own threads)."""

    def __init__(self, fd: int):
        self._fd = fd
        self._lock = threading.Lock()
        self._call = 0

    def heard(self, call: int) -> None:
        with self._lock:
            if call == self._call:
                _write_message(self._fd, ("heard", None))

    def report(self, call: int, progress: Any) -> None:
        # The engines report their own dataclasses; the caller hears plain dicts either way.
        is_record = dataclasses.is_dataclass(progress) and not isinstance(progress, type)
        values = dataclasses.asdict(progress) if is_record else dict(progress)
        with self._lock:
            # A solver thread reporting after its call answered would be read as the next
            # call's progress: from then on, that call's reports are dropped.
            if call == self._call:
                _write_message(self._fd, ("progress", values))

    def retiring(self) -> None:
        with self._lock:
            _write_message(self._fd, ("retiring", None))

    def answer(self, kind: str, value: object) -> None:
        with self._lock:
            self._call += 1
            try:
                _write_message(self._fd, (kind, value))
            except (pickle.PicklingError, TypeError, AttributeError) as error:
                _write_message(self._fd, ("error", RuntimeError(f"unpicklable answer: {error!r}")))

    @property
    def call(self) -> int:
        return self._call


class _Stop:
    """A call's `stop()`: true once the caller stopped it; the first time the function sees
    it true, the caller is told the stop was heard (the answer is on its way)."""

    def __init__(self, event: threading.Event, heard: Callable[[], None]):
        self._event = event
        self._heard: Callable[[], None] | None = heard
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        if not self._event.is_set():
            return False
        with self._lock:
            heard, self._heard = self._heard, None
        if heard is not None:
            heard()
        return True


def _watch_parent(parent: int) -> None:
    # A worker never outlives its service: if the service dies, its children are re-parented.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


_Request = tuple[Callable[..., Any], tuple[Any, ...], bool, threading.Event | None] | Exception | None


def _read_requests(requests: int, calls: "queue.SimpleQueue[_Request]") -> None:
    # The one reader of the request pipe, so a stop can arrive while the call runs; a call's
    # stop precedes the next call in the pipe, so it sets that call's own event, never a
    # later one's.
    stop = threading.Event()
    while True:
        try:
            message = _read_message(requests, None)
        except _WorkerGone:
            calls.put(None)  # the service closed the pipe
            return
        except Exception as error:  # a call that cannot be unpickled here answers why
            calls.put(error)
            continue
        if message == _STOP:
            stop.set()
            continue
        _, function, args, wants_progress, wants_stop = message
        stop = threading.Event()
        calls.put((function, args, wants_progress, stop if wants_stop else None))


def _serve(preload: list[str], requests: int, answers_fd: int) -> None:
    # Ctrl-C reaches the whole process group: the worker just ends, quietly; the service
    # decides whether a new one is needed.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    for module in preload:
        import_module(module)
    calls: queue.SimpleQueue[_Request] = queue.SimpleQueue()
    threading.Thread(target=_read_requests, args=(requests, calls), daemon=True).start()
    answers = _Answers(answers_fd)
    while (request := calls.get()) is not None:
        if isinstance(request, Exception):
            answers.answer("error", request)
            continue
        function, args, wants_progress, stop = request
        hooks: dict[str, Any] = {}
        if wants_progress:
            call = answers.call
            hooks["progress"] = lambda report, call=call: answers.report(call, report)
        if stop is not None:
            hooks["stop"] = _Stop(stop, functools.partial(answers.heard, answers.call))
        try:
            kind, value = "value", function(*args, **hooks)
        except Exception as error:
            kind, value = "error", error
        if _left_running():
            # A target_roi whose MILP was left behind at its 5 s limit kept 60-90 % of a core
            # busy for minutes after (HiGHS 1.16's presolve reads no clock): every later call
            # of this worker would have shared the core with it.
            answers.retiring()
        answers.answer(kind, value)


def _left_running() -> bool:
    """Whether a thread the call started still runs (the worker's own threads are daemons)."""
    return any(not thread.daemon and thread is not threading.main_thread()
               for thread in threading.enumerate())


if __name__ == "__main__":
    _serve(sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3]))
