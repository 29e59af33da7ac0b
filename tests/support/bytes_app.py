"""An ASGI app that writes a fixed sequence of frames, for comparing the bytes a
server's own framing puts on the wire with what realtime.transport's writers put there.

Per connection: the text frames of ``SIZES`` (through the connection's frame writer,
the ASGI send for any it declines), an ``rt.ping`` text frame through the ASGI send
(as the outbox sends pings: after flushing what the writer holds), then, once the
client says ``"close"``, a close frame. ``?direct=0`` uses the plain ASGI send for
every frame. Each connection appends one JSON line to ``$BYTES_REPORT``: the writer's
class and which frames it took.

Served by a real daphne or uvicorn process; ``BYTES_SUPPORTED_DAPHNE=none`` makes the
daphne writer's supported range exclude every version, to see the fallback.
"""

from __future__ import annotations

import json
import logging
import os

from django.conf import settings

from realtime import transport
from realtime.transport import daphne as daphne_adapter
from realtime.transport import text_frame

if not settings.configured:  # served; the tests import the constants below
    settings.configure(
        REALTIME={"DIRECT_WRITES": os.environ.get("BYTES_DIRECT_WRITES", "1") == "1"}
    )
    logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("realtime.transport").setLevel(logging.INFO)

if os.environ.get("BYTES_SUPPORTED_DAPHNE") == "none":
    daphne_adapter.SUPPORTED = ((0,), (0,))

SIZES = (0, 1, 125, 126, 127, 65535, 65536, 70000)
PING = '{"type":"rt.ping","data":{"nonce":"abcdefghijklmnop"}}'
CLOSE_CODE, CLOSE_REASON = 4000, "bye"


def text_of(size: int) -> str:
    return "".join(chr(ord("a") + index % 26) for index in range(size))


async def app(scope, receive, send):
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    if b"direct=0" in scope.get("query_string", b""):
        writer: transport.FrameWriter = transport.ASGI_SEND
    else:
        writer = transport.frame_writer(send)
    taken = []
    for size in SIZES:
        text = text_of(size)
        took = writer(text_frame(text))
        taken.append(took)
        if not took:
            writer.flush()
            await send({"type": "websocket.send", "text": text})
    writer.flush()
    await send({"type": "websocket.send", "text": PING})
    with open(os.environ["BYTES_REPORT"], "a") as report:
        report.write(json.dumps({"writer": type(writer).__name__, "taken": taken}))
        report.write("\n")
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close":
            writer.flush()
            await send(
                {"type": "websocket.close", "code": CLOSE_CODE, "reason": CLOSE_REASON}
            )
