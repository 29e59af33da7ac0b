"""The reconnect storm against python-socketio (``storm.py --peer socketio``).

The same storm as storm.py's: two uvicorn processes running the peer app
(benchmarks/peers/socketio_app.py, an ``AsyncServer`` with ``AsyncRedisManager``), the
same number of clients spread the same way, each a real ``socket.io-client`` with its
default reconnection (storm_socketio_client.mjs) joining as many rooms with an ack,
and a publisher emitting through a write-only ``RedisManager`` at the same rate. The
same balancer, SIGTERM and restart.

socket.io keeps no history over the Redis adapter: a client that comes back joins its
rooms again but never gets what was emitted while it was away. Those events are
counted apart ("missed, not recoverable"); an event missing outside such a window is
lost, as in ours. Each event carries its per-group number, so duplicates and events
out of order are checked too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.storm import (  # noqa: E402
    Flavour,
    Publisher,
    Sampler,
    Server,
    publish_paced,
    summarise,
)

APP = "benchmarks.peers.socketio_app:application"


def ensure_peer() -> None:
    """python-socketio in this Python, socket.io-client in benchmarks/node_modules."""
    try:
        import socketio  # noqa: F401
    except ImportError:
        sys.exit('python-socketio is not installed: pip install -e ".[bench]"')
    if not (HERE / "node_modules" / "socket.io-client").is_dir():
        subprocess.run(
            ["npm", "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"],
            check=True,
            stdout=subprocess.DEVNULL,
        )


class SocketioServer(Server):
    """uvicorn running the python-socketio peer app (whatever ``--server`` says)."""

    def __init__(
        self, index: int, args: argparse.Namespace, redis_url: str, workdir: Path
    ) -> None:
        super().__init__(index, args, redis_url, workdir)
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = ["-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--log-level", "warning"]
        cmd += ["--backlog", str(self.args.backlog)] if self.args.backlog else []
        return [*cmd, APP]

    def env(self) -> dict[str, str]:
        return socketio_env(self.redis_url)


def socketio_env(redis_url: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "REDIS_URL": redis_url}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


class SocketioPublisher(Publisher):
    def command(
        self, args: argparse.Namespace, redis_url: str
    ) -> tuple[list[str], dict[str, str]]:
        cmd = [sys.executable, str(Path(__file__).resolve()), "publish"]
        cmd += ["--groups", ",".join(args.group_names), "--rate", str(args.rate)]
        cmd += ["--redis-url", redis_url]
        return cmd, socketio_env(redis_url)


def summarise_socketio(
    summary: dict[str, Any],
    stats: list[dict],
    sampler: Sampler,
    workdir: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    summary = summarise(summary, stats, sampler, workdir, args)
    summary["stack"] = "python-socketio"
    summary["server"] = "uvicorn"
    summary["missed_not_recoverable"] = sum(s.get("missedAway", 0) for s in stats)
    summary["out_of_order"] = sum(s.get("outOfOrder", 0) for s in stats)
    # What socket.io has no counterpart for: a replay, its acks and its gaps.
    for key in ("wire_duplicated", "not_recovered", "recovery_failed", "goal_10s_met"):
        summary.pop(key, None)
    summary["disconnect_reasons"] = summary.pop("closes")
    for result in summary.get("storms", []):
        for key in ("recovery_failed", "gaps", "subscribe_retries"):
            result.pop(key, None)
        if "closes_4503_ms" in result:
            result["disconnects_ms"] = result.pop("closes_4503_ms")
    storms = summary.get("storms", [])
    summary["ok"] = bool(
        storms
        and None not in [s.get("all_back_ms") for s in storms]
        and summary["lost"] == summary["duplicated"] == summary["out_of_order"] == 0
        and summary["handshake_errors"] == 0
        and summary["hit_not_back"] == 0
    )
    return summary


FLAVOUR = Flavour(
    "socketio", SocketioServer, SocketioPublisher, "storm_socketio_client.mjs",
    summarise_socketio,
)  # fmt: skip


# -- ours against socketio ---------------------------------------------------------------


def side_by_side(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, list]:
    """The figures of both runs, one ``[realtime, socketio]`` pair per row."""
    rows: dict[str, list] = {}

    def storm_rows(i: int, s: dict[str, Any]) -> dict[str, Any]:
        return {
            f"storm {i + 1}: clients back / expected": f"{s.get('back')} / {s.get('expected')}",
            f"storm {i + 1}: all back, ms": s.get("all_back_ms"),
            f"storm {i + 1}: back p50 / p99, ms": f"{s.get('back_p50_ms')} / {s.get('back_p99_ms')}",
            f"storm {i + 1}: attempts per client": s.get("attempts_per_client"),
            f"storm {i + 1}: CPU s of the process that stayed up": s.get(
                "cpu_s_other_process"
            ),
        }

    def rows_of(summary: dict[str, Any]) -> dict[str, Any]:
        got: dict[str, Any] = {}
        for i, s in enumerate(summary.get("storms", [])):
            got.update(storm_rows(i, s))
        got.update(
            {
                "handshake errors": summary.get("handshake_errors"),
                "connect timeouts": summary.get("connect_timeouts"),
                "refused connections": summary.get("refused"),
                "events lost": summary.get("lost"),
                "missed (not recoverable)": summary.get("missed_not_recoverable", 0),
                "duplicated": summary.get("duplicated"),
                "out of order": summary.get("out_of_order", 0),
                "peak CPU % (all servers)": summary.get("peak_total_cpu_percent"),
                "peak RSS MB (all servers)": summary.get("peak_total_rss_mb"),
                "server error lines": summary.get("server_error_lines"),
                "ok": summary.get("ok"),
            }
        )
        return got

    mine, peer = rows_of(ours), rows_of(theirs)
    for key in [*mine, *(k for k in peer if k not in mine)]:
        rows[key] = [mine.get(key), peer.get(key)]
    return rows


def format_side_by_side(rows: dict[str, list]) -> str:
    width = max(len(k) for k in rows)
    lines = [f"{'':<{width}}  {'realtime':>14}  {'socketio':>14}"]
    for key, (mine, peer) in rows.items():
        lines.append(f"{key:<{width}}  {mine!s:>14}  {peer!s:>14}")
    return "\n".join(lines)


# -- the publisher process ---------------------------------------------------------------


def publisher_main(argv: list[str]) -> None:
    """Emit round-robin over ``--groups`` at ``--rate``/s until "stop" on stdin."""
    import socketio

    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["publish"])
    parser.add_argument("--groups", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args(argv)
    manager = socketio.RedisManager(args.redis_url, write_only=True)

    def emit(group: str, _: int, n: int) -> None:
        manager.emit("event", {"group": group, "n": n, "t": time.time()}, room=group)

    publish_paced(args.groups.split(","), args.rate, emit)


if __name__ == "__main__":
    publisher_main(sys.argv[1:])
