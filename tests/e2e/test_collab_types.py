"""collab.d.ts type-checks a typical use of DocumentProvider under tsc --strict, and a
wrong use is refused (the types say something)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.npm import tsc_strict
from tests.support.processes import ROOT

STATIC = ROOT / "realtime/static/realtime"

GOOD = """
import * as Y from "yjs";
import { Awareness } from "y-protocols/awareness";
import RealtimeClient from "./realtime.js";
import { DocumentProvider, encodeSync, decodeSync, toBase64, fromBase64 } from "./collab.js";

const client = new RealtimeClient("/ws/", { ticketUrl: "/realtime/ticket/" });
const doc = new Y.Doc();
const provider = new DocumentProvider(client, "doc.notes-1", doc, {
  awareness: new Awareness(doc),
  flushInterval: 50,
});
provider.on("synced", (d) => (d.writable ? 1 : 0));
provider.on("status", (s) => s.synced && s.writable === null);
provider.on("error", (e) => e.code.length);
const text: Y.Text = provider.doc.getText("body");
const writable: boolean | null = provider.writable;
const [kind, payload] = decodeSync(encodeSync(1, new Uint8Array([1, 2])));
const again: Uint8Array = fromBase64(toBase64(payload));
provider.destroy();
export { text, writable, kind, again };
"""

# Each line is wrong in one way the declarations must catch.
BAD = {
    "a group is a string": "new DocumentProvider(client, 42, doc);",
    "only known events": 'provider.on("changed", () => 0);',
    "sync kinds are 0, 1, 2": "encodeSync(3, new Uint8Array());",
    "writable is read-only": "provider.writable = true;",
}

PRELUDE = """
import * as Y from "yjs";
import RealtimeClient from "./realtime.js";
import { DocumentProvider, encodeSync } from "./collab.js";
const client = new RealtimeClient("/ws/");
const doc = new Y.Doc();
const provider = new DocumentProvider(client, "doc.x", doc);
export { client, doc, provider, encodeSync };
"""


def tsc(npm_tools: Path, folder: Path, source: str) -> subprocess.CompletedProcess:
    for name in ("realtime.d.ts", "collab.d.ts"):
        shutil.copy(STATIC / name, folder / name)
    if not (folder / "node_modules").exists():
        (folder / "node_modules").symlink_to(npm_tools)
    (folder / "package.json").write_text('{"type": "module"}')
    (folder / "check.ts").write_text(source)
    return tsc_strict(npm_tools, "check.ts", folder)


def test_a_typical_use_compiles(npm_tools, tmp_path):
    done = tsc(npm_tools, tmp_path, GOOD)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("line", BAD.values(), ids=list(BAD))
def test_a_wrong_use_is_refused(npm_tools, tmp_path, line):
    done = tsc(npm_tools, tmp_path, PRELUDE + line + "\n")
    assert done.returncode != 0, line
    assert "check.ts" in done.stdout and "error TS" in done.stdout, done.stdout
