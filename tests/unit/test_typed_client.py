"""A typed realtime.js client: the registry's TypeScript export plugs into
``RealtimeClient<RealtimeEvents>``, and ``tsc --strict`` checks ``send()``,
``request()`` and ``subscribe()`` handlers against the declared events (the test
app's registry: tests/testapp/events.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from realtime.exports import typescript
from tests.support.npm import tsc_strict
from tests.support.processes import ROOT

CLIENT = ROOT / "realtime" / "static" / "realtime" / "realtime.js"

APP = """\
import { RealtimeClient, type ServerGroupEvent } from "{client}";
import type { RealtimeEvents, TestEchoV1 } from "./events.js";

const client = new RealtimeClient<RealtimeEvents>("/ws/", { ticketUrl: "/realtime/ticket/" });

// Client events: the payload is checked against the serializer's fields.
const echo: TestEchoV1 = { text: "hi", n: 2 };
client.request("test.echo", echo).then((ack) => ack);
client.request<{ seq: number }>("test.say", { group: "public.a", text: "x" }, { timeout: 5000 })
  .then((ack) => ack.seq + 1);
const sent: boolean = client.send("test.say", { text: "fire and forget" });

// Handlers: event.type narrows event.data to that event's payload.
export function describe(event: ServerGroupEvent<RealtimeEvents>): string {
  switch (event.type) {
    case "test.note":
      return event.data.text + (event.data.n ?? 0).toFixed(0);
    case "test.greet":
      return `${event.data.room}: ${event.data.body} (${event.data.lang})`;
    default:
      return event.type;
  }
}
const sub = client.subscribe("public.news", (event) => {
  if (event.type === "test.note") {
    const text: string = event.data.text;
    console.log(text, event.seq, event.group, describe(event));
  }
});
sub.ready.then((ack) => ack.recovered);

// Without the maps the client stays untyped, as before.
const plain = new RealtimeClient("/ws/");
plain.request("anything.goes", { any: 1 });
plain.send("anything.goes");
plain.subscribe<{ text: string }>("room.1", (event) => event.data?.text);
export { sent };
"""

# (what is wrong, the statement, the error code and words tsc must report)
WRONG = [
    (
        "payload field of the wrong type",
        'client.request("test.echo", { text: 42 });',
        "TS2322",
        "Type 'number' is not assignable to type 'string'",
    ),
    (
        "unknown event type",
        'client.request("test.nope", { text: "x" });',
        "TS2345",
        "Argument of type '\"test.nope\"' is not assignable",
    ),
    (
        "required field missing",
        'client.send("test.echo", {});',
        "TS2741",
        "Property 'text' is missing",
    ),
    (
        "a server-only event sent",
        'client.send("test.note", { text: "x" });',
        "TS2345",
        "Argument of type '\"test.note\"' is not assignable",
    ),
    (
        "a field of another event after narrowing",
        'client.subscribe("g", (e) => { if (e.type === "test.note") e.data.body; });',
        "TS2339",
        "Property 'body' does not exist",
    ),
]


def compile_app(
    tsc: Path, directory: Path, source: str, events: str | None = None
) -> subprocess.CompletedProcess:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "package.json").write_text(json.dumps({"type": "module"}))
    (directory / "events.d.ts").write_text(events or typescript.build())
    client = os.path.relpath(CLIENT, directory)
    (directory / "app.ts").write_text(source.replace("{client}", client))
    return tsc_strict(Path(tsc).parent.parent, "app.ts", directory)


def test_typed_app_compiles(npm_tools, tmp_path):
    done = compile_app(npm_tools / ".bin/tsc", tmp_path, APP)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("why, line, code, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_use_fails_to_compile(npm_tools, tmp_path, why, line, code, words):
    source = APP.replace("export { sent };", f"{line}\nexport {{ sent }};")
    done = compile_app(npm_tools / ".bin/tsc", tmp_path, source)
    output = done.stdout + done.stderr
    assert done.returncode != 0, f"{why} compiled"
    errors = [row for row in output.splitlines() if "error TS" in row]
    # Exactly one error, on the added line: the rest of the app still compiles.
    assert len(errors) == 1, output
    assert f"error {code}" in errors[0] and words in output, output


def test_docs_example_compiles_against_the_example_project(npm_tools, tmp_path):
    """docs/client.md's typed example, with the example project's own export made by
    the documented command."""
    text = (ROOT / "docs" / "client.md").read_text()
    section = text.split("## Types from your event registry", 1)[1]
    source = re.search(r"```ts\n(.*?)```", section, re.S).group(1)
    assert 'from "django-realtime-events-client"' in source
    source = source.replace("django-realtime-events-client", "{client}")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "example_project.settings"}
    env.pop("REDIS_URL", None)
    events = subprocess.run(
        [sys.executable, "manage.py", "realtime_schema", "--format", "typescript"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    # Top-level await needs a module: the docs' snippet is one.
    done = compile_app(
        npm_tools / ".bin/tsc", tmp_path, source + "export {};\n", events
    )
    assert done.returncode == 0, done.stdout + done.stderr
