"""``manage.py realtime_presence GROUP``: who is in a group, across processes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from realtime import presence
from realtime.backends import get_backend
from realtime.management import group_argument


class Command(BaseCommand):
    help = "List the users present in GROUP (one per user) and the connection counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("group")
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        group = group_argument(options["group"])
        state = asyncio.run(_state(group))
        if options["json"]:
            self.stdout.write(json.dumps(state, indent=2, sort_keys=True))
            return
        self.stdout.write(
            f"{group}: {len(state['members'])} users, {state['anonymous']} anonymous, "
            f"{state['connections']} connections"
        )
        for member in state["members"]:
            name = member.get("username", "")
            self.stdout.write(f"  {member.get('id', '?')}  {name}")


async def _state(group: str) -> dict[str, Any]:
    try:
        return await presence.state(group)
    finally:
        await get_backend().close()
