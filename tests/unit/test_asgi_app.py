"""realtime.asgi.websocket_app: the origin check and the route lookup in one wrapper."""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path

import pytest
from django.urls import path

from realtime import asgi

ASGI_FILE = str(Path(asgi.__file__).resolve())


@pytest.fixture(autouse=True)
def no_first_socket_checks(monkeypatch):
    # The once-per-process server and Redis Cluster checks: not what is tested here.
    monkeypatch.setattr(asgi, "_server_checked", True)
    monkeypatch.setattr(asgi, "_cluster_refusal", "")


class Routed:
    """An ASGI app behind the routes: records its scope and the wrappers above it."""

    def __init__(self, error: Exception | None = None) -> None:
        self.scopes: list[dict] = []
        self.wrappers: list[str] = []
        self.error = error

    async def __call__(self, scope: dict, receive, send) -> None:
        self.scopes.append(scope)
        self.wrappers = [
            frame.name
            for frame in traceback.extract_stack()
            if str(Path(frame.filename).resolve()) == ASGI_FILE
        ]
        if self.error is not None:
            raise self.error


def scope(
    route: str = "/ws/", origin: bytes | None = b"http://allowed.example"
) -> dict:
    headers = [(b"host", b"testserver")]
    if origin is not None:
        headers.append((b"origin", origin))
    return {"type": "websocket", "path": route, "headers": headers}


async def run(app, scope: dict) -> list[dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "websocket.connect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    return sent


async def test_one_wrapper_frame_lives_above_the_routes():
    routed = Routed()
    assert await run(asgi.websocket_app([path("ws/", routed)]), scope()) == []
    assert [s["url_route"] for s in routed.scopes] == [{"args": (), "kwargs": {}}]
    assert routed.wrappers == ["__call__"]  # WebSocketApp's, nothing else of asgi.py


@pytest.mark.parametrize("origin", [b"http://allowed.example", None])
async def test_an_allowed_or_absent_origin_reaches_the_route(origin):
    routed = Routed()
    await run(asgi.websocket_app([path("ws/", routed)]), scope(origin=origin))
    assert len(routed.scopes) == 1


async def test_a_foreign_origin_is_refused_before_routing(caplog):
    routed = Routed()
    sent = await run(
        asgi.websocket_app([path("ws/", routed)]), scope(origin=b"http://evil.example")
    )
    assert sent == [{"type": "websocket.close", "code": 1000}]  # HTTP 403
    assert routed.scopes == []
    assert "refused WebSocket handshake from origin" in caplog.text


async def test_a_foreign_origin_to_an_unknown_path_is_refused_once():
    sent = await run(
        asgi.websocket_app([path("ws/", Routed())]),
        scope("/nowhere/", origin=b"http://evil.example"),
    )
    assert sent == [{"type": "websocket.close", "code": 1000}]


async def test_an_unknown_path_is_refused_403():
    routed = Routed()
    sent = await run(asgi.websocket_app([path("ws/", routed)]), scope("/nowhere/"))
    assert sent == [{"type": "websocket.close", "code": 1000}]
    assert routed.scopes == []


async def test_a_cluster_refusal_refuses_every_handshake(monkeypatch):
    monkeypatch.setattr(asgi, "_cluster_refusal", "a Redis Cluster node")
    routed = Routed()
    sent = await run(asgi.websocket_app([path("ws/", routed)]), scope())
    assert sent == [{"type": "websocket.close", "code": 1000}]
    assert routed.scopes == []


async def test_another_value_error_of_the_route_propagates():
    app = asgi.websocket_app([path("ws/", Routed(ValueError("the consumer's own")))])
    with pytest.raises(ValueError, match="the consumer's own"):
        await run(app, scope())


async def test_origin_validator_alone_still_guards_any_app():
    routed = Routed()
    app = asgi.OriginValidator(routed)
    assert await run(app, scope(origin=b"http://evil.example")) == [
        {"type": "websocket.close", "code": 1000}
    ]
    await run(app, scope())
    assert len(routed.scopes) == 1
