"""What the benchmarks that need the real processes share: starting `marketplan up`, driving
it with wrk and reading percentiles."""
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres import free_port  # noqa: E402


def start(var_dir: Path, admin_key: str, *, env: Mapping[str, str] | None = None,
          args: Sequence[str] = (), replicas: int = 1) -> tuple[subprocess.Popen, int]:
    """Start `marketplan up` (`replicas` processes per service) on free ports (SQLite under
    `var_dir` unless `env` names databases); return the process once it says it is ready, and
    the gateway's port."""
    port = free_port(1 + 3 * replicas)
    environment = os.environ | {"MARKETPLAN_ADMIN_KEY": admin_key,
                                "MARKETPLAN_LOG_LEVEL": "WARNING"} | dict(env or {})
    with tempfile.TemporaryFile("w+") as errors:   # the child keeps its own descriptor
        up = subprocess.Popen([sys.executable, "-m", "marketplan", "up", "--port", str(port),
                               "--var-dir", str(var_dir), "--replicas", str(replicas), *args],
                              env=environment, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                              stderr=errors)
        assert up.stdout is not None
        for line in up.stdout:
            if line.startswith("Ctrl-C stops all"):
                return up, port
        errors.seek(0)
        raise RuntimeError(f"marketplan up did not start: {errors.read()[-2000:]}")


def client(port: int, admin_key: str) -> httpx.Client:
    """A client of the gateway's `/api/v1` with the admin key."""
    return httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=300,
                        headers={"Authorization": f"Bearer {admin_key}"})


def percentile(values: Sequence[float], share: float) -> float:
    """The value at `share` of the sorted values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def wrk(url: str, headers: Mapping[str, str], seconds: int, connections: int, *,
        body: object = None) -> dict:
    """Requests/s and latency (p50, p99) of one wrk run, a GET or, with `body`, a JSON POST;
    fails on any non-2xx answer or socket error, which would make the figure a lie."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency"]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if body is not None:
            script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
                         'wrk.headers["Content-Type"] = "application/json"\n')
            script.flush()
            args += ["-s", script.name]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors under load:\n{out}")
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps is not None, out
    return {"rps": float(rps.group(1)), "p50": latency["50"], "p99": latency["99"]}
