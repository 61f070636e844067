"""What a process keeps in memory (`shared/kept.py`): values up to a number of bytes, the
least recently used first out."""
import threading
import zlib

import pytest

from shared import kept as kept_module
from shared.kept import Lru


@pytest.fixture
def compressions(monkeypatch) -> list[int]:
    """One item per gzip stream a kept answer starts (a service test's fixture too)."""
    started: list[int] = []

    class Counted:
        DEFLATED, MAX_WBITS = zlib.DEFLATED, zlib.MAX_WBITS

        @staticmethod
        def compressobj(*args):
            started.append(1)
            return zlib.compressobj(*args)

    monkeypatch.setattr(kept_module, "zlib", Counted)
    return started


def test_the_least_recently_used_go_first_past_the_bytes():
    kept: Lru[str, bytes] = Lru(max_bytes=10)
    kept.put("a", b"aaaa", 4)
    kept.put("b", b"bbbb", 4)
    assert kept.get("a") == b"aaaa"          # "a" is now the most recently used
    kept.put("c", b"cccc", 4)                # 12 bytes: "b", the least recently used, goes
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (b"aaaa", None, b"cccc")
    assert len(kept) == 2


def test_a_value_replaces_the_one_kept_for_its_key_and_its_size():
    kept: Lru[str, str] = Lru(max_bytes=10)
    kept.put("a", "first", 6)
    kept.put("a", "second", 2)
    kept.put("b", "other", 8)                # 2 + 8 = 10 bytes: both stay
    assert (kept.get("a"), kept.get("b")) == ("second", "other")
    kept.pop("a")
    assert kept.get("a") is None and len(kept) == 1
    kept.clear()
    assert kept.get("b") is None and len(kept) == 0


def test_a_value_bigger_than_all_the_bytes_is_not_kept():
    kept: Lru[str, str] = Lru(max_bytes=10)
    kept.put("small", "s", 1)
    kept.put("big", "b", 11)
    assert (kept.get("small"), kept.get("big")) == ("s", None)
    nothing: Lru[str, str] = Lru(max_bytes=0)
    nothing.put("a", "a", 1)
    assert nothing.get("a") is None


def test_many_at_once_keep_the_order_of_their_keys():
    kept: Lru[int, str] = Lru(max_bytes=3)
    kept.put_many((i, str(i), 1) for i in range(5))     # 0 and 1 went as 3 and 4 came
    assert kept.get_many([4, 0, 2, 3]) == ["4", None, "2", "3"]
    kept.put(5, "5", 1)                                  # 4 was read first of the three: it goes
    assert kept.get_many([2, 3, 4, 5]) == ["2", "3", None, "5"]


def test_threads_share_one_without_losing_count_of_its_bytes():
    kept: Lru[int, int] = Lru(max_bytes=100)

    def work(offset: int) -> None:
        for i in range(2000):
            kept.put((offset + i) % 300, i, 1)
            kept.get((offset + 7 * i) % 300)

    threads = [threading.Thread(target=work, args=(n * 50,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(kept) == 100 and kept._bytes == 100
