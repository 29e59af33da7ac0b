"""The registry's exports checked with the real tools from npm: the official AsyncAPI
3.0 JSON Schema (@asyncapi/specs) and tsc (typescript). The npm_tools fixture
(tests/support/npm.py) installs them once."""

from __future__ import annotations

import copy
import json
import subprocess

import jsonschema

from realtime.exports import asyncapi, typescript

# The exported registry includes the nested and versioned events declared there.
from tests.unit.test_exports import OrderV1, OrderV2  # noqa: F401


def test_asyncapi_validates_against_the_official_schema(npm_tools):
    spec = json.loads((npm_tools / "@asyncapi/specs/schemas/3.0.0.json").read_text())
    validator = jsonschema.Draft7Validator(spec)
    doc = asyncapi.build(
        servers={"local": {"host": "127.0.0.1:8000", "protocol": "ws"}}
    )
    errors = [
        f"{list(e.absolute_path)}: {e.message[:200]}"
        for e in validator.iter_errors(doc)
    ]
    assert errors == []
    # The validator does look inside messages: a broken one is caught.
    broken = copy.deepcopy(doc)
    broken["components"]["messages"]["test.greet.v1"]["contentType"] = 5
    assert not validator.is_valid(broken)


USAGE_TS = """
import type { ClientEvent, ServerEvent, ServerEventMap, TestGreetV1 } from "./events";

const old: TestGreetV1 = { room: "a", text: "hi" };
const frames: ClientEvent[] = [
  { type: "test.greet", v: 1, data: old },
  { type: "test.greet", data: { room: "a", body: "b", lang: "fr" } },
];
// @ts-expect-error: v1 frames must say v: 1 (without v the server reads v2)
const wrong: ClientEvent = { type: "test.greet", data: old };
// @ts-expect-error: lang is an enum
const badLang: ServerEventMap["test.greet"] = { room: "a", body: "b", lang: "de" };
// @ts-expect-error: test.note is server-only
const notClient: ClientEvent = { type: "test.note", v: 1, data: { text: "x" } };

function text(frame: ServerEvent): string {
  if (frame.type === "test.greet") {
    return frame.v === 1 ? frame.data.text : frame.data.body;
  }
  return "";
}
export { frames, wrong, badLang, notClient, text };
"""


def test_typescript_compiles_with_tsc(npm_tools, tmp_path):
    (tmp_path / "events.d.ts").write_text(typescript.build())
    (tmp_path / "usage.ts").write_text(USAGE_TS)
    done = subprocess.run(
        [
            str(npm_tools / ".bin/tsc"),
            "--noEmit",
            "--strict",
            "--target",
            "es2020",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "events.d.ts",
            "usage.ts",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
