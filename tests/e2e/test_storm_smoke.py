"""The reconnect-storm benchmark runs, and its invariants hold at a small scale.

200 clients, one SIGTERM and restart: every client of the stopped process comes back
resubscribed and recovered, no event is lost or delivered twice, no handshake fails.
It checks the harness and the guarantees, not the timing figures.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.support.processes import ROOT

CLIENTS = 200

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(150)
def test_storm_benchmark_smoke(tmp_path):
    # Both are installed by .ci/run: missing, the test fails rather than skips.
    for tool in ("node", "redis-server"):
        assert shutil.which(tool), f"{tool} is needed (apt-get install it)"
    out = tmp_path / "storm.json"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/storm.py",
            *("--clients", str(CLIENTS), "--node", "2", "--rate", "10"),
            *("--before", "1", "--restart-after", "1", "--after", "1"),
            *("--storm-timeout", "40", "--drain", "20", "--json", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["connected"] == CLIENTS
    assert sum(report["events_sent"].values()) > 0
    assert report["lost"] == 0
    assert report["duplicated"] == 0
    assert report["behind_at_end"] == 0
    assert report["handshake_errors"] == 0
    assert report["hit_not_back"] == report["not_recovered"] == 0
    assert report["recovery_failed"] == 0
    (storm,) = report["storms"]
    # Round-robin over two processes: half the clients were on the stopped one.
    assert storm["expected"] == storm["hit"] == storm["back"] == CLIENTS // 2
    assert storm["all_back_ms"] is not None
    assert report["closes"].get("4503") == CLIENTS // 2
    assert storm["reconnect_attempts"]["attempts"] >= CLIENTS // 2
    assert report["ok"] and done.returncode == 0, done.stderr[-3000:]


PEER_CLIENTS = 100


@pytest.mark.timeout(240)
def test_storm_benchmark_against_socketio_smoke(tmp_path):
    """``--peer socketio`` runs the same storm against python-socketio afterwards:
    every socket.io client of the stopped process reconnects and rejoins its rooms
    (acked), nothing arrives twice or out of order, and both runs are compared."""
    for tool in ("node", "redis-server"):
        assert shutil.which(tool), f"{tool} is needed (apt-get install it)"
    out = tmp_path / "storm.json"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/storm.py",
            *("--clients", str(PEER_CLIENTS), "--node", "1", "--rate", "10"),
            *("--before", "1", "--restart-after", "1", "--after", "1"),
            *("--storm-timeout", "40", "--drain", "20", "--json", str(out)),
            *("--peer", "socketio"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"], report
    peer = report["peers"]["socketio"]
    assert peer["stack"] == "python-socketio"
    assert peer["connected"] == PEER_CLIENTS
    assert sum(peer["events_sent"].values()) > 0
    (storm,) = peer["storms"]
    # Back means reconnected and every room's subscribe acked.
    assert storm["expected"] == storm["hit"] == storm["back"] == PEER_CLIENTS // 2
    assert storm["all_back_ms"] is not None
    assert peer["hit_not_back"] == 0
    assert storm["reconnect_attempts"]["attempts"] >= PEER_CLIENTS // 2
    assert peer["duplicated"] == peer["out_of_order"] == 0
    assert peer["handshake_errors"] == 0
    assert (
        report["side_by_side"]["storm 1: clients back / expected"]
        == [f"{PEER_CLIENTS // 2} / {PEER_CLIENTS // 2}"] * 2
    )
    assert peer["ok"] and done.returncode == 0, done.stderr[-3000:]
