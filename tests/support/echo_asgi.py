"""A raw ASGI WebSocket echo app for the Autobahn cases (tests/e2e/test_conformance.py).

The cases need an echo endpoint; serving it from daphne tests the server stack
realtime runs on (the realtime protocol itself does not echo).
"""


async def application(scope, receive, send):
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            if message.get("bytes") is not None:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
            else:
                await send({"type": "websocket.send", "text": message["text"]})
        elif message["type"] == "websocket.disconnect":
            return
