"""Schemathesis against the real system: every operation of the gateway's merged document, on
SQLite and on PostgreSQL, and no answer may be a 5xx (issue 12).

One bounded `st run` per backend: a fixed seed, the four phases (explicit examples; coverage,
which sends the schema's boundary and just-invalid values; fuzzing; stateful, which chains
operations through the links schemathesis infers from the schema and from `Location` headers),
an admin key. Every call is recorded (HAR), so the assertions read the answers themselves.

The coverage phase runs on PostgreSQL alone. Its cases are the same on every backend (they
come from the document, not from the answers), nearly all stop at validation, and a value that
gets past it reaches the stricter store there (NUL characters, integer and length limits).
SQLite still gets every operation called by the fuzzing phase (valid and invalid data) and the
stateful chains. That phase is why the PostgreSQL run takes ~4x the SQLite one (measured: 88 of
its 105 s, ~6,200 of its ~6,500 calls; the other phases take 8.5 + 8.5 + 0.6 s on either
backend): a call costs no more there (median 16 ms against 30 ms for SQLite's fuzzing calls),
there are 20 times as many. Their CPU is mostly the services answering 422s (54 of the 81 s of
CPU a coverage run took, schemathesis itself 27 s), so the run is bounded by calls, not by the
database; a database reset or a connection per call plays no part (the system runs throughout).
Measured again in session six (coverage phase alone, 6,222 calls): 4,677 answers were 422 (2,934
for the body, 634 for the query), and the PostgreSQL server's processes used under 6 s of CPU
over the whole run, schemathesis 31 s; the rest is the gateway and the services (per call: the
proxy hop, the signed internal call and its nonce, validation). So it is the phase's size, not
the backend, and the run is CPU-bound on two cores. Two of its kinds of case proved nothing
(tests/fuzz/hooks.py, session eight): 964 POSTs carried the boundary key '0' it puts in every
POST and met "already used" (each case now has a fresh key, unless the key is what it tests),
and ~640 negative cases broke a body field or query parameter whose schema another field of
the same service already had broken the same way, refused by validation (such a case is now
sent until one is refused): 5,586 coverage calls where there were 6,222.

Both runs use the e2e tests' running system (`system`, tests/conftest.py), after them.
"""
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY

pytestmark = pytest.mark.e2e

# Fresh idempotency keys, and one negative case per field schema and service (see the module).
HOOKS = Path(__file__).with_name("hooks.py")
SEED = 20241212
# Cases per operation in the fuzzing phase and per scenario in the stateful one. The coverage
# phase is not bounded by it (it sends each boundary once): with 102 operations a run with it
# makes about 5,900 calls (6,500 before tests/fuzz/hooks.py).
MAX_EXAMPLES = 3
PHASES = {"postgresql": "examples,coverage,fuzzing,stateful", "sqlite": "examples,fuzzing,stateful"}
# The run is CPU-bound on CI's two cores, but with two workers they stood about half idle:
# a call waits on its way through the gateway, a service and the database. The SQLite run
# keeps two (a single-writer store).
WORKERS = {"postgresql": 4, "sqlite": 2}
# A safety net only: a run that hangs must fail the test, not CI's time limit.
RUN_TIMEOUT_SECONDS = 300
AT_LEAST_CALLS = {"postgresql": 1_000, "sqlite": 250}   # the seeded SQLite run made 309
# A 5xx is the must; an answer whose status the document does not list is a documentation
# bug the run finds on the way (the document is what generated clients are built from).
CHECKS = ("not_a_server_error", "status_code_conformance")
SERVER_ERROR_CODE = "ST101"  # schemathesis' code for not_a_server_error failures

# Schemathesis' own errors that are not the API's: its generator giving up on a schema it
# finds too large to shrink reliably ("Inconsistent results"). A network error, an
# unresponsive operation or a schema it cannot read are the API's, and fail the test.
TOOL_ERRORS = {"Runtime Error"}


@pytest.fixture(scope="module")
def fuzzed(system, tmp_path_factory):
    """Run schemathesis against the shared running system on its backend (tests/conftest.py:
    started with the failed-key limit out of the way); return the run's report and every
    recorded exchange."""
    backend, port = system["backend"], system["port"]
    root = tmp_path_factory.mktemp(f"fuzz-{backend}")
    har, report = root / "calls.har.json", root / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run",
         f"http://127.0.0.1:{port}/openapi.json",
         "--header", f"Authorization: Bearer {ADMIN_KEY}",
         "--checks", ",".join(CHECKS), "--seed", str(SEED),
         "--max-examples", str(MAX_EXAMPLES), "--workers", str(WORKERS[backend]),
         "--phases", PHASES[backend],
         # Above the gateway's upstream timeout: a slow answer shows as its 504.
         "--request-timeout", "70", "--no-color",
         "--report", "har,json", "--report-har-path", str(har),
         "--report-json-path", str(report)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS,
        env=system["env"] | {"SCHEMATHESIS_HOOKS": str(HOOKS)}, cwd=root)
    assert report.exists() and har.exists(), run.stdout[-5000:] + run.stderr[-5000:]
    return {"backend": backend, "report": json.loads(report.read_text()),
            "calls": json.loads(har.read_text())["log"]["entries"], "output": run.stdout,
            "port": port}


def _operation(call: dict, patterns: dict[str, re.Pattern]) -> str:
    """`METHOD /path/{template}` of a recorded call; a literal segment (`/plans/{number}.csv`)
    wins over a bare parameter (`/plans/{number}`)."""
    path = httpx.URL(call["request"]["url"]).raw_path.split(b"?")[0].decode()
    matches = [op for op, pattern in patterns.items()
               if op.startswith(call["request"]["method"] + " ") and pattern.fullmatch(path)]
    return max(matches, key=lambda op: len(re.sub(r"\{[^}]*\}", "", op)), default=path)


def _patterns(operations: list[str]) -> dict[str, re.Pattern]:
    return {op: re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part)
                                   for part in re.split(r"(\{[^}]*\})", op.split(" ", 1)[1])))
            for op in operations}


def test_no_answer_is_a_server_error(fuzzed):
    report, calls = fuzzed["report"], fuzzed["calls"]
    assert report["complete"], fuzzed["output"][-5000:]
    # every operation of the document was tried, the stateful phase too
    assert report["operations"]["tested"] == report["operations"]["total"] > 80
    assert report["phases"]["stateful"]["status"] == "success", report["phases"]
    assert len(calls) >= AT_LEAST_CALLS[fuzzed["backend"]]

    patterns = _patterns(_documented(fuzzed))
    server_errors = [
        f"{_operation(c, patterns)} -> {c['response']['status']}: {c['request']['method']} "
        f"{c['request']['url']} {(c['request'].get('postData') or {}).get('text', '')[:300]!r}"
        f" => {(c['response']['content'].get('text') or '')[:300]}"
        for c in calls if c["response"]["status"] >= 500]
    assert server_errors == [], "\n".join(server_errors[:20])
    # Server errors were judged above, answer by answer; any other check's failure counts.
    other_failures = [f for f in report["failures"] if f["code"] != SERVER_ERROR_CODE]
    assert other_failures == [], json.dumps(other_failures, indent=1)[:5000]
    errors = [e for e in report["errors"] if e["title"] not in TOOL_ERRORS]
    assert errors == [], fuzzed["output"][-5000:]

    statuses = Counter(c["response"]["status"] // 100 * 100 for c in calls)
    links = re.search(r"API Links:.*", fuzzed["output"])
    print(f"{len(calls)} calls, by status class: {dict(sorted(statuses.items()))}; "
          f"stateful {links.group(0) if links else 'API Links: none'}")


def _documented(fuzzed: dict) -> list[str]:
    document = httpx.get(f"http://127.0.0.1:{fuzzed['port']}/openapi.json",
                         headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30).json()
    return [f"{method.upper()} {path}" for path, item in document["paths"].items()
            for method in item if method in ("get", "put", "post", "patch", "delete")]
