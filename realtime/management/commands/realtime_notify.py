"""``manage.py realtime_notify GROUP TYPE JSON``: send an event by hand."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.bridge import uses_process_local_layer
from realtime.exceptions import RealtimeError
from realtime.groups import validate_group_name
from realtime.history import keeps_history
from realtime.publishing import send_sync
from realtime.schema import registry


class Command(BaseCommand):
    help = (
        "Validate JSON against the registered event TYPE and publish it to GROUP, "
        "like realtime.notify() (history and seq included)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("group")
        parser.add_argument("type")
        parser.add_argument("data", help="The event's data as a JSON object.")
        parser.add_argument("--v", type=int, default=None, help="Event version.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data = json.loads(options["data"])
        except json.JSONDecodeError as error:
            raise CommandError(f"JSON is not valid: {error}") from None
        if not isinstance(data, dict):
            raise CommandError(f"JSON must be an object, got {type(data).__name__}")
        group, type_ = options["group"], options["type"]
        if type_ not in registry:
            raise CommandError(f"{type_!r} is not a registered event type")
        try:
            validate_group_name(group)
            spec = registry.get(type_, options["v"])
            clean = spec.validate(data, outgoing=True)
        except RealtimeError as error:
            detail = f": {json.dumps(error.errors)}" if error.errors else ""
            raise CommandError(f"{error.detail}{detail}") from None
        if uses_process_local_layer():
            self.stderr.write(
                "warning: the channel layer is not channels-redis, so the event "
                "reaches no server process from here"
            )
        version = spec.version
        seq = send_sync(group, type_, clean, v=version, history=keeps_history(group))
        self.stdout.write(
            f"sent {type_} v{version} to {group}"
            + (f" seq={seq}" if seq is not None else "")
        )
