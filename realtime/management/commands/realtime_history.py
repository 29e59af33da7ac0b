"""``manage.py realtime_history GROUP --since N``: the frames a group's log keeps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.backends import get_backend
from realtime.management import group_argument


class Command(BaseCommand):
    help = (
        "Print GROUP's position (seq, epoch) and the frames its history keeps after "
        "--since, oldest first: what a client resuming from that seq would receive."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("group")
        parser.add_argument("--since", type=int, default=0, help="Last seq seen.")
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        group = group_argument(options["group"])
        if options["since"] < 0:
            raise CommandError("--since must be >= 0")
        read = asyncio.run(_read(group, options["since"]))
        if options["json"]:
            out = {
                "group": group,
                "seq": read.seq,
                "epoch": read.epoch,
                "recovered": read.recovered,
                "frames": [
                    {"seq": seq, "frame": json.loads(text)} for seq, text in read.frames
                ],
            }
            self.stdout.write(json.dumps(out, indent=2))
            return
        self.stdout.write(
            f"{group}: seq={read.seq} epoch={read.epoch} "
            f"complete={'yes' if read.recovered else 'no (history no longer holds it)'} "
            f"frames={len(read.frames)}"
        )
        for _seq, text in read.frames:
            self.stdout.write(text)


async def _read(group: str, since: int) -> Any:
    backend = get_backend()
    try:
        return await backend.since(group, since, None)
    finally:
        await backend.close()
