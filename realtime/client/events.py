"""Events and subscriptions as the Python client hands them to the caller."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from realtime.client.errors import ClientError, RecoveryFailed


@dataclass(frozen=True)
class Event:
    """One application event: ``epoch`` is the group's epoch when it was delivered,
    so (``epoch``, ``seq``) is a position to resume from with ``subscribe(since=,
    epoch=)``. Presence frames (``subscribe(presence=True)``) are events too, with
    ``type`` ``rt.presence.join`` / ``rt.presence.leave``."""

    type: str
    data: Any
    group: str | None = None
    seq: int | None = None
    epoch: str | None = None
    v: int | None = None
    frame: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_frame(cls, frame: dict[str, Any], epoch: str | None = None) -> Event:
        seq = frame.get("seq")
        return cls(
            type=frame["type"],
            data=frame.get("data"),
            group=frame.get("group"),
            seq=seq if isinstance(seq, int) else None,
            epoch=epoch,
            v=frame.get("v"),
            frame=frame,
        )


class _End:
    """Marks the end of a subscription's stream (closed or unsubscribed)."""


_END = _End()
Item = Event | ClientError | _End


class _Owner(Protocol):
    """What a subscription asks of its client (``RealtimeClient``)."""

    def _position(self, group: str) -> tuple[int | None, str | None]: ...
    async def presence(self, group: str, *, timeout: float | None = None) -> Any: ...
    async def typing(self, group: str, data: dict[str, Any] | None = None) -> bool: ...
    def _remove_subscription(self, sub: Subscription) -> None: ...


class Subscription:
    """``async for event in sub`` yields the group's events once and in order.

    The iterator raises :class:`RecoveryFailed` when events may have been lost (then
    iterate again: the subscription continues), the subscribe's :class:`ClientError`
    when the server refused a resubscribe, :class:`ClientClosed` when the client gave
    up, and stops after ``unsubscribe()`` or ``client.close()``.
    """

    def __init__(
        self, client: _Owner, group: str | None, *, presence: bool = False
    ) -> None:
        self.client = client
        self.group = group
        self.presence_events = presence
        self.ack: dict[str, Any] | None = None
        self._items: asyncio.Queue[Item] = asyncio.Queue()
        self._final: ClientError | _End | None = None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self._final is not None:
            return self._raise_final()
        item = await self._items.get()
        if isinstance(item, Event):
            return item
        if isinstance(item, RecoveryFailed):
            raise item
        self._final = item
        return self._raise_final()

    def _raise_final(self) -> Event:
        if isinstance(self._final, ClientError):
            raise self._final
        raise StopAsyncIteration

    async def get(self, timeout: float | None = None) -> Event:
        """The next event (``RecoveryFailed`` and the end raise as in ``async for``;
        the end raises ``StopAsyncIteration``)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    @property
    def seq(self) -> int | None:
        """Last seq received for the group (None before the first ack)."""
        return self.client._position(self.group or "")[0]

    @property
    def epoch(self) -> str | None:
        return self.client._position(self.group or "")[1]

    @property
    def pending(self) -> int:
        """Events received but not yet taken from the iterator."""
        return self._items.qsize()

    async def presence(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Who is in the group (the ``rt.presence`` ack)."""
        assert self.group is not None
        return await self.client.presence(self.group, timeout=timeout)

    async def typing(self, data: dict[str, Any] | None = None) -> bool:
        """Tell the group this user is typing (see ``RealtimeClient.typing``)."""
        assert self.group is not None
        return await self.client.typing(self.group, data)

    async def unsubscribe(self) -> None:
        """Leave the group (the last subscription of a group sends rt.unsubscribe)."""
        self.client._remove_subscription(self)
        self._put(_END)

    def _put(self, item: Item) -> None:
        self._items.put_nowait(item)
