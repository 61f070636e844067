"""`marketplan up` as a person at a terminal sees it: the banner, not the JSON log lines."""
import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.postgres import free_port

pytestmark = pytest.mark.e2e


def test_up_prints_a_readable_banner_and_logs_to_files(tmp_path):
    port = free_port(4)
    up = subprocess.Popen([sys.executable, "-m", "marketplan", "up", "--port", str(port),
                           "--var-dir", str(tmp_path)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        lines = []
        for line in up.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops all"):
                break
        assert up.poll() is None, "".join(lines)
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    finally:
        up.send_signal(signal.SIGTERM)
        rest, _ = up.communicate(timeout=30)
    terminal = "".join(lines) + rest
    assert not [line for line in terminal.splitlines() if line.startswith("{")], terminal
    assert f"Logs:       {tmp_path}/logs/<process>.log" in terminal
    for name in ("gateway", "calendar", "budget", "planner"):
        records = [json.loads(line) for line in
                   (tmp_path / "logs" / f"{name}.log").read_text().splitlines()]
        assert records and all(r["process"] == name for r in records)
