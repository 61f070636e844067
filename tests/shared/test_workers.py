"""Solver workers: a solve past its limit is stopped alone, by its deadline; nothing is left."""
import os
import threading
import time
from pathlib import Path

import pytest

from shared.errors import ServiceUnavailable
from shared.workers import WorkerPool, WorkerTimeout

# Generous for a loaded 2-core machine: killing one process takes milliseconds.
MARGIN_SECONDS = 1.0


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def refuse(message: str) -> None:
    raise ValueError(message)


def worker_pid() -> int:
    return os.getpid()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def pool():
    pool = WorkerPool(2, preload="tests.shared.test_workers")
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


def test_a_worker_killed_from_outside_is_replaced(pool):
    pid = pool.run(worker_pid, timeout=30)
    os.kill(pid, 9)
    # The call that meets the dead worker runs again on a new one.
    assert pid not in {pool.run(worker_pid, timeout=30) for _ in range(3)}
