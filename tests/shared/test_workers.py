"""Solver workers: a solve past its limit is stopped alone, by its deadline; nothing is left;
progress reaches the caller and a cancel stops the solve with its best answer."""
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared import workers
from shared.errors import ServiceUnavailable
from shared.workers import Cancelled, WorkerPool, WorkerTimeout

# Generous for a loaded 2-core machine: killing one process takes milliseconds.
MARGIN_SECONDS = 1.0


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def refuse(message: str) -> None:
    raise ValueError(message)


def worker_pid() -> int:
    return os.getpid()


@dataclass(frozen=True)
class Improvement:
    """The fake solver's progress record, a dataclass like the engines' own."""
    incumbent: int
    bound: int
    gap: float


def search(steps: int, pause: float, *, progress: Callable[[Improvement], None] | None = None,
           stop: Callable[[], bool] | None = None) -> dict[str, object]:
    """Improve an answer by one each step, reporting each; once stopped, answer the best so far."""
    best = 0
    for _ in range(steps):
        if stop is not None and stop():
            return {"best": best, "stopped": True}
        time.sleep(pause)
        best += 1
        if progress is not None:
            progress(Improvement(best, steps, (steps - best) / steps))
    return {"best": best, "stopped": False}


def stubborn(seconds: float, *, progress: Callable[[dict[str, int]], None],
             stop: Callable[[], bool]) -> None:
    """Say which process runs it, then ignore the stop."""
    progress({"pid": os.getpid()})
    time.sleep(seconds)


def slow_to_answer(seconds: float, *, progress: Callable[[dict[str, int]], None],
                   stop: Callable[[], bool]) -> str:
    """Hear the stop at once, then take `seconds` to answer (rounding and writing a big plan
    on a loaded machine)."""
    progress({"pid": os.getpid()})
    while not stop():
        time.sleep(0.01)
    time.sleep(seconds)
    return "the best plan"


def hooks(**given: object) -> list[str]:
    return sorted(given)


def reports_after_answering(*, progress: Callable[[dict[str, bool]], None]) -> None:
    """Leave a thread reporting after the call answered, as a solver's timer thread might (a
    daemon: it is not work the call left running)."""
    def keep_reporting() -> None:
        for _ in range(20):
            time.sleep(0.05)
            progress({"late": True})
    threading.Thread(target=keep_reporting, daemon=True).start()


def leaves_a_run_behind(seconds: float) -> int:
    """Answer while a thread of the call still works, as a HiGHS run left past its limit."""
    threading.Thread(target=time.sleep, args=(seconds,), name="highs").start()
    return os.getpid()


def loaded(names: list[str]) -> list[str]:
    return [name for name in names if name in sys.modules]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def pool():
    pool = WorkerPool(2, preload=("tests.shared.test_workers",))
    pool.start()
    yield pool
    pool.close()


def test_a_solve_past_its_limit_is_stopped_while_a_concurrent_one_succeeds(pool):
    # Both workers ready, so the short solve's time is its own.
    assert sorted(pool.run(nap, 0, timeout=30) for _ in range(2)) == [0, 0]
    outcomes: dict[str, object] = {}

    def long_solve() -> None:
        started = time.monotonic()
        try:
            pool.run(nap, 60, timeout=1.5)
        except WorkerTimeout as stopped:
            outcomes["long"] = stopped
        outcomes["long_seconds"] = time.monotonic() - started

    thread = threading.Thread(target=long_solve)
    thread.start()
    time.sleep(0.2)
    outcomes["short"] = pool.run(nap, 2.0, timeout=30)  # outlives the long solve's limit
    thread.join()
    print(f"long solve stopped after {outcomes['long_seconds']:.3f} s (limit 1.5 s)")
    assert isinstance(outcomes["long"], WorkerTimeout)
    assert outcomes["short"] == 2.0
    assert outcomes["long_seconds"] < 1.5 + MARGIN_SECONDS
    # The pool still has two working workers: the stopped one was replaced.
    assert sorted(pool.run(nap, 0, timeout=30) for _ in range(2)) == [0, 0]


def test_a_solve_past_its_timeout_is_stopped_and_answers_its_best_so_far(pool):
    # A solver behind its own deadline (a loaded machine): stopped at the timeout as a cancel
    # stops it, it answers the best it has instead of being killed with it.
    assert sorted(pool.run(nap, 0, timeout=30) for _ in range(2)) == [0, 0]  # workers ready
    started = time.monotonic()
    answer = pool.run(search, 1200, 0.05, timeout=1.0, stop_at_timeout=True)
    took = time.monotonic() - started
    print(f"stopped at {answer['best']} of 1200 steps after {took:.3f} s (timeout 1 s)")
    assert answer["stopped"] is True and 0 < answer["best"] < 1200
    assert took < 1.0 + workers.STOP_GRACE_SECONDS + MARGIN_SECONDS
    # It answered, so it stays: two workers answer at once.
    assert sorted(pool.run(nap, 0, timeout=30) for _ in range(2)) == [0, 0]


def test_a_solve_that_does_not_hear_the_stop_at_its_timeout_is_killed(pool):
    assert sorted(pool.run(nap, 0, timeout=30) for _ in range(2)) == [0, 0]  # workers ready
    pids: list[int] = []
    with pytest.raises(WorkerTimeout):
        pool.run(stubborn, 60, timeout=1.0, progress=lambda report: pids.append(report["pid"]),
                 stop_at_timeout=True)
    assert len(pids) == 1 and not alive(pids[0])
    assert sorted(pool.run(nap, 0, timeout=30) for _ in range(2)) == [0, 0]


def test_the_functions_own_errors_come_back_and_the_worker_stays(pool):
    pids = {pool.run(worker_pid, timeout=30) for _ in range(4)}
    with pytest.raises(ValueError, match="no plan"):
        pool.run(refuse, "no plan", timeout=30)
    assert {pool.run(worker_pid, timeout=30) for _ in range(4)} <= pids


def test_close_kills_every_worker_and_starts_none(pool):
    pids = {pool.run(worker_pid, timeout=30) for _ in range(4)}
    busy = threading.Thread(target=lambda: pytest.raises(ServiceUnavailable, pool.run, nap, 60,
                                                         timeout=60))
    busy.start()
    time.sleep(0.3)
    pool.close()
    busy.join(timeout=5)
    assert not busy.is_alive()
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(ServiceUnavailable, match="shutting down"):
        pool.run(nap, 0, timeout=1)


def test_a_worker_left_running_a_thread_of_its_call_is_replaced(pool):
    pid = pool.run(leaves_a_run_behind, 60, timeout=30)
    assert not alive(pid)
    assert pid not in {pool.run(worker_pid, timeout=30) for _ in range(4)}
    # A call that leaves nothing running keeps its worker.
    kept = pool.run(worker_pid, timeout=30)
    assert kept in {pool.run(worker_pid, timeout=30) for _ in range(4)}


def test_a_worker_killed_from_outside_is_replaced(pool):
    pid = pool.run(worker_pid, timeout=30)
    os.kill(pid, 9)
    # The call that meets the dead worker runs again on a new one.
    assert pid not in {pool.run(worker_pid, timeout=30) for _ in range(3)}


def test_the_function_gets_only_the_hooks_its_caller_asked_for(pool):
    assert pool.run(hooks, timeout=30) == []
    assert pool.run(hooks, timeout=30, progress=print) == ["progress"]
    assert pool.run(hooks, timeout=30, cancelled=lambda: False) == ["stop"]
    assert pool.run(hooks, timeout=30, progress=print, cancelled=lambda: False) == ["progress", "stop"]


def test_progress_reaches_the_caller_throttled_and_ending_at_the_final_state(pool):
    received: list[dict[str, object]] = []
    # A burst of 1,000 reports and a pause: the caller hears a few, the last one among them.
    answer = pool.run(search, 1000, 0.0005, timeout=60, progress=received.append)
    print(f"{len(received)} of 1000 reports delivered")
    assert answer == {"best": 1000, "stopped": False}
    assert 1 <= len(received) < 100
    assert received[-1] == {"incumbent": 1000, "bound": 1000, "gap": 0.0}
    incumbents = [report["incumbent"] for report in received]
    assert incumbents == sorted(incumbents)


def test_a_cancel_returns_the_best_answer_so_far(pool):
    received: list[dict[str, object]] = []
    cancel = threading.Event()

    def follow(report: dict[str, object]) -> None:
        received.append(report)
        if report["incumbent"] >= 3:
            cancel.set()

    answer = pool.run(search, 1200, 0.05, timeout=60, progress=follow, cancelled=cancel.is_set)
    print(f"stopped at {answer['best']} of 1200 steps")
    assert answer["stopped"] is True
    assert 3 <= received[-1]["incumbent"] <= answer["best"] < 1200
    # The worker answered, so it stays in the pool.
    assert pool.run(search, 2, 0, timeout=30) == {"best": 2, "stopped": False}


def test_a_function_that_ignores_its_stop_is_killed_while_a_concurrent_solve_succeeds(pool):
    outcomes: dict[str, object] = {}
    started = threading.Event()

    def concurrent_solve() -> None:
        outcomes["concurrent"] = pool.run(search, 40, 0.05, timeout=60,
                                          progress=lambda _: started.set(), cancelled=lambda: False)

    thread = threading.Thread(target=concurrent_solve)
    thread.start()
    assert started.wait(30)
    pids: list[int] = []
    with pytest.raises(Cancelled, match="no answer"):
        pool.run(stubborn, 60, timeout=60, progress=lambda report: pids.append(report["pid"]),
                 cancelled=lambda: bool(pids))
    thread.join()
    assert outcomes["concurrent"] == {"best": 40, "stopped": False}
    assert len(pids) == 1 and not alive(pids[0])
    # The killed worker was replaced: two workers answer at once again.
    assert sorted(pool.run(nap, 0, timeout=30) for _ in range(2)) == [0, 0]


def test_a_function_that_heard_its_stop_is_given_time_to_answer(pool):
    # Past the grace to hear a stop, within the grace to answer once it was heard: the
    # answer the stop was meant to keep comes back, and the worker stays.
    assert workers.STOP_GRACE_SECONDS < 1.5 < workers.ANSWER_GRACE_SECONDS
    pids: list[int] = []
    answer = pool.run(slow_to_answer, 1.5, timeout=60,
                      progress=lambda report: pids.append(report["pid"]),
                      cancelled=lambda: bool(pids))
    assert answer == "the best plan"
    assert alive(pids[0])


def test_a_function_that_heard_its_stop_but_never_answers_is_killed(pool, monkeypatch):
    monkeypatch.setattr(workers, "ANSWER_GRACE_SECONDS", 0.5)
    pids: list[int] = []
    with pytest.raises(Cancelled, match="no answer"):
        pool.run(slow_to_answer, 60, timeout=60, progress=lambda report: pids.append(report["pid"]),
                 cancelled=lambda: bool(pids))
    assert len(pids) == 1 and not alive(pids[0])


def test_a_cancel_while_every_worker_is_busy_runs_nothing(pool):
    running = [threading.Event(), threading.Event()]
    busy = [threading.Thread(target=pool.run, args=(search, 40, 0.05),
                             kwargs={"timeout": 60, "progress": lambda _, e=event: e.set()})
            for event in running]
    for thread in busy:
        thread.start()
    assert all(event.wait(30) for event in running)
    with pytest.raises(Cancelled, match="waiting for a free"):
        pool.run(worker_pid, timeout=60, cancelled=lambda: True)
    for thread in busy:
        thread.join()


def test_a_report_made_after_the_answer_never_reaches_the_next_call():
    pool = WorkerPool(1, preload=("tests.shared.test_workers",))
    pool.start()
    try:
        pool.run(reports_after_answering, timeout=30, progress=print)
        received: list[dict[str, object]] = []
        # The same worker, while the previous call's thread still reports.
        assert pool.run(search, 30, 0.05, timeout=30, progress=received.append)["best"] == 30
        assert received and all("late" not in report for report in received)
    finally:
        pool.close()


def test_a_failing_progress_hook_reaches_its_caller_and_the_busy_worker_is_replaced(pool):
    pids: list[int] = []

    def refuse_report(report: dict[str, int]) -> None:
        pids.append(report["pid"])
        raise ValueError(f"unknown progress keys {sorted(report)}")

    with pytest.raises(ValueError, match="unknown progress keys"):
        pool.run(stubborn, 60, timeout=60, progress=refuse_report, cancelled=lambda: False)
    # The worker still busy with that call was killed, not handed to the next caller.
    assert not alive(pids[0])
    assert sorted(pool.run(nap, 0, timeout=30) for _ in range(2)) == [0, 0]


def test_every_preloaded_module_is_imported_before_the_first_call():
    # A call's function is unpickled in the worker; a module not preloaded would be imported
    # then, out of that call's deadline.
    pool = WorkerPool(1, preload=("tests.shared.test_workers", "wave", "shelve"))
    pool.start()
    try:
        assert pool.run(loaded, ["wave", "shelve", "mailbox"], timeout=30) == ["wave", "shelve"]
    finally:
        pool.close()
