"""``DocumentsMixin``: the consumer side of shared documents.

Reading a document is being subscribed to its group (the consumer's
``subscriptions`` decide who may); changing it needs the permission classes the
consumer lists for it in ``documents``. A client keeps its copy in step with the
y-protocols sync exchange (docs/collab.md): its step 1 is answered in the ack with
the server's step 2 and step 1; its step 2 and updates are validated, stored, then
relayed to the group's other members.
"""

from __future__ import annotations

import base64
import binascii
import weakref
from typing import Any

from realtime import exceptions as exc
from realtime.auth import user_summary
from realtime.collab import ysync
from realtime.collab.documents import documents
from realtime.consumers import RealtimeConsumer, handler
from realtime.envelope import Message
from realtime.groups import compile_patterns, match_patterns, validate_group_name
from realtime.permissions import denied_by
from realtime.publishing import publish
from realtime.settings import realtime_settings
from realtime.throttling import TokenBucket

# Awareness client ids a connection may speak for in one document (one per tab).
MAX_AWARENESS_CLIENTS = 8
MAX_AWARENESS_BYTES = 16 * 1024


class _State:
    """What one connection holds about the documents it edits."""

    def __init__(self) -> None:
        self.bucket = TokenBucket(
            realtime_settings.COLLAB_RATE, realtime_settings.COLLAB_BURST
        )
        self.writable: dict[str, bool] = {}
        # group -> {awareness client id: last clock}, to clear them when it leaves
        self.clients: dict[str, dict[int, int]] = {}


_states: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()


def _state(consumer: Any) -> _State:
    state = _states.get(consumer)
    if state is None:
        state = _states[consumer] = _State()
    return state


def _b64decode(text: str, limit: int) -> bytes:
    if len(text) > (limit + 2) // 3 * 4:
        raise exc.RealtimeError(f"the message is over {limit} bytes", code="too_large")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise exc.ValidationFailed("m must be base64") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class DocumentsMixin(RealtimeConsumer):
    """A ``RealtimeConsumer`` with shared documents: subclass it (it may also be listed
    first among the bases, beside ``RealtimeConsumer``)."""

    #: Document group patterns -> permission classes needed to change the document
    #: (``has_subscribe_permission(consumer, group, **params)``). Reading it is
    #: subscribing, checked by ``subscriptions`` as for any group.
    documents: dict[str, list] = {}

    async def _document(self, data: dict) -> tuple[str, _State]:
        group = validate_group_name(data["group"])
        compiled = type(self).__dict__.get("_compiled_documents")
        if compiled is None:
            compiled = compile_patterns(self.documents)
            type(self)._compiled_documents = compiled  # type: ignore[attr-defined]
        found = match_patterns(compiled, group)
        if found is None:
            raise exc.PermissionDenied(f"{group!r} is not a shared document")
        if group not in self.subs:
            raise exc.PermissionDenied(f"subscribe to {group!r} before syncing it")
        state = _state(self)
        if group not in state.writable:
            params, permission_classes = found
            refused = await denied_by(
                permission_classes or (),
                "has_subscribe_permission",
                self,
                group,
                **params,
            )
            state.writable[group] = refused is None
        if not state.bucket.allow():
            raise exc.RateLimited("too many document messages; slow down")
        return group, state

    @handler("doc.sync")
    async def _doc_sync(self, message: Message) -> dict:
        group, state = await self._document(message.data)
        raw = _b64decode(message.data["m"], realtime_settings.COLLAB_MAX_UPDATE_BYTES)
        try:
            kind, payload = ysync.decode_sync(raw)
        except ysync.Malformed as error:
            raise exc.ValidationFailed(f"not a Yjs sync message: {error}") from None
        document = await documents.get(group)
        if kind == ysync.STEP1:
            async with document.lock:
                await document.refresh()
                diff = document.diff(payload)
                vector = document.state_vector()
            return {
                "m": [
                    _b64(ysync.encode_sync(ysync.STEP2, diff)),
                    _b64(ysync.encode_sync(ysync.STEP1, vector)),
                ],
                "writable": state.writable[group],
            }
        if payload == ysync.EMPTY_UPDATE:
            return {}
        if not state.writable[group]:
            raise exc.PermissionDenied(f"document {group!r} is read-only for you")
        async with document.lock:
            changed = await document.apply(payload)
        if changed:
            update = _b64(ysync.encode_sync(ysync.UPDATE, payload))
            await publish(
                group,
                "doc.sync",
                {"group": group, "m": update},
                history=False,
                exclude=self.connection_id,
            )
        return {}

    @handler("doc.awareness")
    async def _doc_awareness(self, message: Message) -> dict:
        group, state = await self._document(message.data)
        raw = _b64decode(message.data["m"], MAX_AWARENESS_BYTES)
        try:
            entries = ysync.decode_awareness(raw)
        except ysync.Malformed as error:
            raise exc.ValidationFailed(f"not a Yjs awareness update: {error}") from None
        clients = state.clients.setdefault(group, {})
        summary = user_summary(self.user) or {"id": None, "username": "anonymous"}
        stamped = []
        for client, clock, value in entries:
            if client not in clients and len(clients) >= MAX_AWARENESS_CLIENTS:
                raise exc.PermissionDenied("too many awareness clients")
            clients[client] = clock
            if isinstance(value, dict):
                # Who a cursor belongs to comes from the server, as in presence.
                shown = value.get("user")
                shown = dict(shown) if isinstance(shown, dict) else {}
                shown.update(name=summary["username"], id=summary["id"])
                value = {**value, "user": shown}
            stamped.append((client, clock, value))
        await publish(
            group,
            "doc.awareness",
            {"group": group, "m": _b64(ysync.encode_awareness(stamped))},
            history=False,
            exclude=self.connection_id,
        )
        return {}

    async def on_unsubscribe(self, group: str) -> None:
        state = _states.get(self)
        if state is not None:
            state.writable.pop(group, None)
            clients = state.clients.pop(group, None)
            if clients:
                # Its cursors go with it, as y-websocket does when a socket closes.
                gone = [(client, clock + 1, None) for client, clock in clients.items()]
                await publish(
                    group,
                    "doc.awareness",
                    {"group": group, "m": _b64(ysync.encode_awareness(gone))},
                    history=False,
                    exclude=self.connection_id,
                )
        await super().on_unsubscribe(group)  # type: ignore[misc]
