"""The wire messages are y-protocols' own: what Yjs' reference implementation
(y-protocols/sync and /awareness in Node) writes, the server decodes, and the
reverse, byte for byte. So any Yjs provider logic and editor binding interoperate."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pycrdt
import pytest

from realtime.collab import ysync

pytestmark = pytest.mark.e2e

PACKAGES = ["yjs@13.6.33", "y-protocols@1.0.7", "lib0@0.2.117"]
NPM_DIR = Path(
    os.environ.get("RT_NPM_CACHE", Path.home() / ".cache/realtime-tests/npm-yjs")
)

SCRIPT = """
import * as Y from "yjs";
import * as sync from "y-protocols/sync";
import * as awareness from "y-protocols/awareness";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";

const input = JSON.parse(process.argv[2]);
const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const bytes = (text) => new Uint8Array(Buffer.from(text, "base64"));

const doc = new Y.Doc();
doc.clientID = 7;
doc.getText("content").insert(0, "from node");
const out = {};
let e = encoding.createEncoder();
sync.writeSyncStep1(e, doc);
out.step1 = b64(encoding.toUint8Array(e));
e = encoding.createEncoder();
sync.writeUpdate(e, Y.encodeStateAsUpdate(doc));
out.update = b64(encoding.toUint8Array(e));
const aw = new awareness.Awareness(doc);
aw.setLocalState({ user: { name: "n", color: "#123456" }, cursor: null });
out.awareness = b64(awareness.encodeAwarenessUpdate(aw, [doc.clientID]));

// What the server wrote, read by y-protocols' own reader into a fresh doc.
const other = new Y.Doc();
for (const m of input.sync) {
  const reply = encoding.createEncoder();
  sync.readSyncMessage(decoding.createDecoder(bytes(m)), reply, other, "server");
}
out.read = other.getText("content").toString();
const seen = new awareness.Awareness(new Y.Doc());
awareness.applyAwarenessUpdate(seen, bytes(input.awareness), "server");
out.states = [...seen.getStates().entries()].filter(([id]) => id !== seen.clientID);
aw.destroy();
seen.destroy();
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def node_modules():
    marker = NPM_DIR / ("installed-" + "-".join(PACKAGES).replace("/", "_"))
    if not marker.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to check compatibility with y-protocols")
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *(npm, "install", "--prefix", str(NPM_DIR)),
                *("--no-audit", "--no-fund", "--no-save", *PACKAGES),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        marker.touch()
    return NPM_DIR / "node_modules"


def test_messages_match_y_protocols_both_ways(node_modules, tmp_path):
    server = pycrdt.Doc()
    server.get("content", type=pycrdt.Text).insert(0, "from python")
    written = {
        "sync": [
            base64.b64encode(
                ysync.encode_sync(ysync.STEP2, server.get_update())
            ).decode(),
        ],
        "awareness": base64.b64encode(
            ysync.encode_awareness([(42, 3, {"user": {"name": "alice", "id": 1}})])
        ).decode(),
    }
    script = tmp_path / "check.mjs"
    script.write_text(SCRIPT)
    # Bare imports resolve from the installed node_modules next to the script.
    (tmp_path / "node_modules").symlink_to(node_modules)
    done = subprocess.run(
        ["node", str(script), json.dumps(written)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(done.stdout)

    # Node's messages, decoded by the server.
    kind, vector = ysync.decode_sync(base64.b64decode(out["step1"]))
    assert kind == ysync.STEP1
    kind, update = ysync.decode_sync(base64.b64decode(out["update"]))
    assert kind == ysync.UPDATE
    received = pycrdt.Doc()
    received.apply_update(update)
    assert str(received.get("content", type=pycrdt.Text)) == "from node"
    assert received.get_state() == vector  # the step 1 was node's state vector
    [(client, clock, state)] = ysync.decode_awareness(
        base64.b64decode(out["awareness"])
    )
    assert client == 7 and clock >= 1
    assert state == {"user": {"name": "n", "color": "#123456"}, "cursor": None}

    # The server's messages, read by y-protocols.
    assert out["read"] == "from python"
    assert out["states"] == [[42, {"user": {"name": "alice", "id": 1}}]]
