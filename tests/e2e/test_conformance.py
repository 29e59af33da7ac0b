"""Autobahn WebSocket conformance cases (kosoku) against daphne, the server realtime
runs on. docs/reliability.md records the results."""

import json
import os
import subprocess
import sys

import pytest

from tests.support.processes import free_port, start_server

pytestmark = [pytest.mark.e2e]

# daphne never sends an empty message (an ASGI send of "" or b"" is dropped), so the
# echo of an empty frame never arrives. realtime never sends empty frames.
KNOWN_DAPHNE_FAILURES = {"1.1.1", "1.2.1", "6.1.1", "6.1.2"}

# Run in a process of its own: kosoku's UTF-8 cases build their data with autobahn's
# pure-Python validator, which the NVX one (loaded by daphne in this process) is not.
RUNNER = """
import asyncio, json, sys
from kosoku import FailureError, run_fuzzingclient
try:
    results = asyncio.run(run_fuzzingclient(
        sys.argv[1], cases=["*"], exclude_cases=["9.*", "12.*", "13.*"],
        concurrency=4))
except FailureError as error:
    results = error.results
print(json.dumps({"cases": len(results),
                  "failed": [r.case_id for r in results if r.behavior == "FAILED"]}))
"""


@pytest.fixture
def echo_server():
    port = free_port()
    proc = start_server("tests.support.echo_asgi:application", port)
    yield f"ws://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_autobahn_cases_pass_but_known_daphne_gaps(echo_server):
    # 9.* (performance) and 12.*/13.* (permessage-deflate, which daphne lacks) are
    # left out to keep the run short and meaningful.
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, echo_server],
        env={**os.environ, "AUTOBAHN_USE_NVX": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["cases"] > 200
    assert set(summary["failed"]) <= KNOWN_DAPHNE_FAILURES, summary["failed"]
