"""The broker: numbers, stores and sends a group event, as one operation per group.

Every publisher (``notify()`` and its twins, ``broadcast_model()``, presence changes,
ephemeral relays) hands a built ``EventFrame`` to the broker that ``get_broker()``
picks for the configured channel layer:

- ``ScriptBroker``: channels-redis with the Redis backend on the same server. One
  Lua script (``realtime.fastpath``) appends to history and performs the layer's
  group send in one round trip; the fastest path, from sync code above all.
- ``LayerBroker``: any other layer that reaches other processes. ``backend.append``
  gives the seq, then ``layer.group_send`` sends the ``rt.event`` message.
- ``LocalBroker``: no layer, or the in-memory one (one process). ``backend.append``,
  then the event goes straight to this process's hubs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from realtime.backends import get_backend
from realtime.bridge import run_sync
from realtime.fastpath import FastPath, fast_path
from realtime.frames import EventFrame
from realtime.hub import dispatch_local
from realtime.layers import get_layer, is_process_local, unreachable


class Broker(ABC):
    """Publishes group events; with history, saving and publishing are one operation.

    The seq ``publish`` returns names the one frame stored in the group's history and
    sent to every process: a frame is never sent with a seq history does not hold
    (if sending fails after the append, subscribers repair the gap from history), and
    two events of a group never share a seq.
    """

    @abstractmethod
    async def publish(
        self, frame: EventFrame, *, history: bool, exclude: str | None = None
    ) -> int | None:
        """Send ``frame`` to every process subscribed to its group; with ``history``
        number and store it first. Return the seq (None without history)."""

    def publish_sync(self, frame: EventFrame, *, history: bool) -> int | None:
        """``publish`` from sync code, on the sync bridge's long-lived loop.

        Raises TimeoutError after NOTIFY_TIMEOUT.
        """
        return run_sync(self.publish(frame, history=history))

    def publish_many_sync(
        self, frames: list[EventFrame], *, history: list[bool]
    ) -> list[int | BaseException | None]:
        """``publish_sync`` each frame in order; per frame its seq, or the exception
        that says why it was not sent (or may not have been)."""
        results: list[int | BaseException | None] = []
        for frame, keep in zip(frames, history, strict=True):
            try:
                results.append(self.publish_sync(frame, history=keep))
            except unreachable() as error:
                results.append(error)
        return results


class LayerBroker(Broker):
    """History in the backend, then the channel layer's group send."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    async def publish(
        self, frame: EventFrame, *, history: bool, exclude: str | None = None
    ) -> int | None:
        seq = epoch = None
        if history:
            seq, epoch = await get_backend().append(
                frame.group, frame.prefix, frame.suffix
            )
        await self.send(frame.group, frame.message(seq, epoch, exclude))
        return seq

    async def send(self, group: str, message: dict[str, Any]) -> None:
        await self.layer.group_send(group, message)


class LocalBroker(LayerBroker):
    """History in the backend, then this process's hubs (no layer to cross)."""

    def __init__(self) -> None:
        super().__init__(None)

    async def send(self, group: str, message: dict[str, Any]) -> None:
        await dispatch_local(message)


class ScriptBroker(Broker):
    """History and the layer's group send as one Redis script (``FastPath``)."""

    def __init__(self, script: FastPath) -> None:
        self.script = script

    async def publish(
        self, frame: EventFrame, *, history: bool, exclude: str | None = None
    ) -> int | None:
        if exclude is not None:
            # The script writes the layer's own message, which has no room for it:
            # get_broker(exclude=True) never picks this broker.
            raise ValueError("the publish script cannot leave a connection out")
        if history:
            return await self.script.asend(
                frame.group,
                frame.type,
                frame.v,
                prefix=frame.prefix,
                suffix=frame.suffix,
            )
        return await self.script.asend(
            frame.group, frame.type, frame.v, text=frame.text(None)
        )

    def publish_sync(self, frame: EventFrame, *, history: bool) -> int | None:
        # No event loop at all: one round trip on a pooled sync connection.
        if history:
            return self.script.send(
                frame.group,
                frame.type,
                frame.v,
                prefix=frame.prefix,
                suffix=frame.suffix,
            )
        return self.script.send(frame.group, frame.type, frame.v, text=frame.text(None))

    def publish_many_sync(
        self, frames: list[EventFrame], *, history: list[bool]
    ) -> list[int | BaseException | None]:
        # Pipelined: a few round trips for the lot; each script call is still one
        # atomic append-and-send, run in the order given.
        return self.script.send_many(
            [
                {
                    "group": frame.group,
                    "type": frame.type,
                    "v": frame.v,
                    "prefix": frame.prefix if keep else None,
                    "suffix": frame.suffix if keep else None,
                    "text": None if keep else frame.text(None),
                }
                for frame, keep in zip(frames, history, strict=True)
            ]
        )


_local = LocalBroker()
# The broker wrapping the current layer (or script); rebuilt when that changes
# (override_settings, a new process).
_layer_broker: LayerBroker | None = None
_script_broker: ScriptBroker | None = None


def get_broker(*, history: bool, exclude: bool = False) -> Broker:
    """The broker for the configured layer; ``exclude``: one that can leave a
    connection out."""
    global _layer_broker, _script_broker
    if not exclude:
        # Tried first: on the hot path of notify() one lookup decides.
        script = fast_path(history=history)
        if script is not None:
            broker = _script_broker
            if broker is None or broker.script is not script:
                broker = _script_broker = ScriptBroker(script)
            return broker
    layer = get_layer()
    if layer is None or is_process_local(layer):
        return _local
    layer_broker = _layer_broker
    if layer_broker is None or layer_broker.layer is not layer:
        layer_broker = _layer_broker = LayerBroker(layer)
    return layer_broker
