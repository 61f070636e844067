"""What the benchmarks that need the real processes share: starting `marketplan up` and
reading percentiles."""
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres import free_port  # noqa: E402


def start(var_dir: Path, admin_key: str, *, env: Mapping[str, str] | None = None,
          args: Sequence[str] = ()) -> tuple[subprocess.Popen, int]:
    """Start `marketplan up` on free ports (SQLite under `var_dir` unless `env` names
    databases); return the process once it says it is ready, and the gateway's port."""
    port = free_port(4)
    environment = os.environ | {"MARKETPLAN_ADMIN_KEY": admin_key,
                                "MARKETPLAN_LOG_LEVEL": "WARNING"} | dict(env or {})
    up = subprocess.Popen([sys.executable, "-m", "marketplan", "up", "--port", str(port),
                           "--var-dir", str(var_dir), *args], env=environment, cwd=ROOT,
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert up.stdout is not None
    for line in up.stdout:
        if line.startswith("Ctrl-C stops all"):
            return up, port
    raise RuntimeError("marketplan up did not start")


def client(port: int, admin_key: str) -> httpx.Client:
    """A client of the gateway's `/api/v1` with the admin key."""
    return httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=300,
                        headers={"Authorization": f"Bearer {admin_key}"})


def percentile(values: Sequence[float], share: float) -> float:
    """The value at `share` of the sorted values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]
