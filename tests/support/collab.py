"""Shared-document helpers for the tests: a consumer, its ASGI app, and a Yjs peer
written with pycrdt that speaks the sync exchange through the realtime envelope."""

from __future__ import annotations

import base64
import os
from typing import Any

import pycrdt
from channels.routing import ProtocolTypeRouter
from django.urls import path

from realtime.collab.consumers import DocumentsMixin
from realtime.collab.ysync import STEP1, STEP2, UPDATE, decode_sync, encode_sync
from realtime.consumers import RealtimeConsumer
from realtime.permissions import BasePermission, IsAuthenticated


class CanEdit(BasePermission):
    """Users whose name starts with "reader" may only read."""

    message = "This document is read-only for you."

    async def has_subscribe_permission(self, consumer, group, **params):  # type: ignore[override]
        user = consumer.user
        return user.is_authenticated and not user.username.startswith("reader")


class DocsConsumer(DocumentsMixin, RealtimeConsumer):
    subscriptions = {"doc.{slug}": [IsAuthenticated], "room.{slug}": []}
    documents = {"doc.{slug}": [CanEdit]}


def application() -> Any:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from realtime.asgi import websocket_app

    return ProtocolTypeRouter(
        {"websocket": websocket_app([path("ws/docs/", DocsConsumer.as_asgi())])}
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Peer:
    """One Yjs client: a pycrdt Doc kept in step through ``send(type, data)`` /
    ``request(type, data)`` callables of some connection."""

    def __init__(self, group: str, field: str = "content") -> None:
        self.group = group
        self.doc = pycrdt.Doc()
        self.text = self.doc.get(field, type=pycrdt.Text)
        self.writable: bool | None = None

    def step1(self) -> dict:
        return {"group": self.group, "m": b64(encode_sync(STEP1, self.doc.get_state()))}

    def answer(self, ack_data: dict) -> dict | None:
        """Apply the server's step 2; return our step 2 for its step 1 (or None)."""
        self.writable = ack_data["writable"]
        reply = None
        for m in ack_data["m"]:
            kind, payload = decode_sync(base64.b64decode(m))
            if kind == STEP2:
                self.doc.apply_update(payload)
            elif kind == STEP1:
                reply = {
                    "group": self.group,
                    "m": b64(encode_sync(STEP2, self.doc.get_update(payload))),
                }
        return reply

    def edit(self, change: Any) -> dict:
        """Apply ``change(text)`` locally; return the doc.sync data of its update."""
        before = self.doc.get_state()
        change(self.text)
        update = self.doc.get_update(before)
        return {"group": self.group, "m": b64(encode_sync(UPDATE, update))}

    def receive(self, frame: dict) -> None:
        """Apply a relayed doc.sync frame."""
        kind, payload = decode_sync(base64.b64decode(frame["data"]["m"]))
        assert kind in (STEP2, UPDATE)
        self.doc.apply_update(payload)

    def __str__(self) -> str:
        return str(self.text)


async def sync(comm: Any, peer: Peer) -> None:
    """Run the sync exchange of ``peer`` over a RealtimeCommunicator."""
    ack = await comm.request("doc.sync", peer.step1())
    assert ack["type"] == "rt.ack", ack
    reply = peer.answer(ack["data"])
    if reply is not None and peer.writable:
        done = await comm.request("doc.sync", reply)
        assert done["type"] == "rt.ack", done
