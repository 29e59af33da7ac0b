"""``manage.py realtime_status``: processes, connections, groups, presence, history."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from realtime.backends import get_backend


class Command(BaseCommand):
    help = (
        "Show the live processes (from their heartbeats), connections per process, "
        "groups with their socket counts, presence and history sizes. Reads Redis when "
        "it is the backend; with the memory backend only this process is known."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON.")
        parser.add_argument(
            "--groups", type=int, default=20, help="Largest groups to list (text)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = asyncio.run(collect())
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
            return
        self.stdout.write(render(report, limit=options["groups"]))


async def collect() -> dict[str, Any]:
    """Everything ``realtime_status`` prints, as one dict."""
    backend = get_backend()
    try:
        processes = sorted(await backend.processes(), key=lambda p: p["id"])
        status = await backend.status()
    finally:
        await backend.close()
    groups: dict[str, int] = {}
    for process in processes:
        for group, sockets in process.get("groups", {}).items():
            groups[group] = groups.get(group, 0) + sockets
    return {
        "backend": status.get("backend", type(backend).__name__),
        "processes": processes,
        "connections": sum(p.get("connections", 0) for p in processes),
        "groups": dict(sorted(groups.items(), key=lambda item: (-item[1], item[0]))),
        "presence": status.get("presence", {}),
        "history": status.get("history", {}),
        # Shards that did not answer: their groups are missing from the figures.
        "unreachable": status.get("unreachable", []),
    }


def render(report: dict[str, Any], *, limit: int) -> str:
    now = time.time()
    lines = [
        f"backend: {report['backend']}",
        f"processes: {len(report['processes'])}  connections: {report['connections']}",
    ]
    for p in report["processes"]:
        consumers = ", ".join(f"{k}={v}" for k, v in sorted(p["consumers"].items()))
        lines.append(
            f"  {p['id']}  connections={p['connections']} "
            f"authenticated={p['authenticated']} groups={p['groups_total']} "
            f"beat={now - p['beat']:.0f}s ago  {consumers}"
        )
    lines.append(f"groups: {len(report['groups'])} (sockets across processes)")
    for group, sockets in list(report["groups"].items())[:limit]:
        lines.append(f"  {group}  {sockets}")
    lines.append(f"presence: {len(report['presence'])} groups (live connections)")
    for group, count in sorted(report["presence"].items()):
        lines.append(f"  {group}  {count}")
    lines.append(f"history: {len(report['history'])} groups (frames kept)")
    for group, size in sorted(report["history"].items()):
        lines.append(f"  {group}  {size}")
    for where in report.get("unreachable", []):
        lines.append(f"unreachable: {where} (its groups are missing above)")
    if report["backend"] == "memory":
        lines.append(MEMORY_HINT)
    return "\n".join(lines) + "\n"


# The memory backend lives inside each server process: this command's own process
# has none of their connections, history or presence, so it reports zeros.
MEMORY_HINT = (
    "note: the memory backend (no channels_redis layer) keeps its state inside each "
    "server process, so this separate process sees none of it and reports zeros. "
    "Configure channels_redis (docs/deploying.md) to inspect running servers."
)
