"""``manage.py realtime_schema``: export the event registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from realtime.exports import asyncapi, jsonschema, typescript

FORMATS = ("jsonschema", "asyncapi", "typescript")


class Command(BaseCommand):
    help = (
        "Write the declared events as JSON Schema (per type and version), an "
        "AsyncAPI 3.0 document, or TypeScript declarations."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=FORMATS, default="asyncapi")
        parser.add_argument(
            "--output", "-o", help="File to write (default: standard output)."
        )
        parser.add_argument("--title", default="realtime", help="AsyncAPI info.title.")
        parser.add_argument(
            "--api-version", default="1.0.0", help="AsyncAPI info.version."
        )
        parser.add_argument(
            "--address", default="/ws/", help="The WebSocket path (AsyncAPI)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        text = render(
            options["format"],
            title=options["title"],
            version=options["api_version"],
            address=options["address"],
        )
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {options['format']} to {options['output']}")
        else:
            self.stdout.write(text, ending="")


def render(format: str, *, title: str, version: str, address: str) -> str:
    """The export named ``format`` as text."""
    if format == "typescript":
        return typescript.build()
    if format == "jsonschema":
        document = jsonschema.export()
    else:
        document = asyncapi.build(title=title, version=version, address=address)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
