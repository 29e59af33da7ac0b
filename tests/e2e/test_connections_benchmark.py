"""The connection benchmark keeps working: set-up figures (ours and the servers' bare
floor) and the traced breakdown.

Seconds long with tiny numbers: it checks the harness (servers under the accounting
wrapper, load clients, snapshots, profile), not performance.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.processes import ROOT


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_connections_benchmark_smoke(tmp_path):
    out = tmp_path / "connections.json"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/connections.py",
            *("--sizes", "20", "--breakdown", "20", "--clients", "2", "--top", "5"),
            *("--floor", "--json", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    runs = {(run["app"], run["server"]): run for run in result["runs"]}
    assert set(runs) == {
        (app, server)
        for app in ("realtime", "floor")
        for server in ("daphne", "uvicorn")
    }
    for run in runs.values():
        assert run["connected"] == 20 and run["failed"] == 0
        assert run["per_s"] > 0
    assert len(result["breakdown"]) == 2
    for report in result["breakdown"]:
        assert "connected 20, failed 0" in report
        assert "| realtime line |" in report
        assert "| connect burst: function" in report
