"""A blocking face of ``RealtimeClient`` for scripts: its own event loop in a thread.

``with RealtimeClient.sync(url, token=...) as client:`` takes the same options; each
call runs the async one on that loop and waits for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

from realtime.client.events import Event, Subscription


class _AsyncClient(Protocol):
    """What the blocking face drives (``RealtimeClient``)."""

    @property
    def user(self) -> dict[str, Any] | None: ...
    async def connect(self) -> dict[str, Any]: ...
    async def subscribe(
        self,
        group: str,
        *,
        since: int | None = None,
        epoch: str | None = None,
        presence: bool = False,
    ) -> Subscription: ...
    async def request(
        self,
        type: str,
        data: Any = None,
        *,
        timeout: float | None = None,
        v: int | None = None,
    ) -> Any: ...
    async def send(
        self,
        type: str,
        data: Any = None,
        *,
        v: int | None = None,
        group: str | None = None,
    ) -> bool: ...
    async def presence(self, group: str, *, timeout: float | None = None) -> Any: ...
    async def close(self) -> None: ...


T = TypeVar("T")
_DONE = object()


class SyncClient:
    """Blocking ``connect``/``subscribe``/``request``/``send``/``close``."""

    def __init__(
        self, url: str, *, client_class: Callable[..., _AsyncClient], **options: Any
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="realtime-client", daemon=True
        )
        self._thread.start()
        self.client = client_class(url, **options)

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> SyncClient:
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> dict[str, Any]:
        return self._call(self.client.connect())

    def subscribe(self, group: str, **options: Any) -> SyncSubscription:
        return SyncSubscription(
            self, self._call(self.client.subscribe(group, **options))
        )

    def request(self, type: str, data: Any = None, **options: Any) -> Any:
        return self._call(self.client.request(type, data, **options))

    def send(self, type: str, data: Any = None, **options: Any) -> bool:
        return self._call(self.client.send(type, data, **options))

    def presence(self, group: str) -> Any:
        return self._call(self.client.presence(group))

    @property
    def user(self) -> dict[str, Any] | None:
        return self.client.user

    def close(self) -> None:
        """Close the client, then stop and join its thread."""
        if self._loop.is_closed():
            return
        try:
            self._call(self.client.close(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


class SyncSubscription:
    """``for event in sub`` blocks for each event; raises like the async iterator."""

    def __init__(self, owner: SyncClient, subscription: Subscription) -> None:
        self.owner, self.subscription = owner, subscription
        self.group = subscription.group

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        event = self.get()
        if event is None:
            raise StopIteration
        return event

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None once the subscription ended; TimeoutError if none
        arrived within ``timeout`` seconds."""

        async def next_event() -> Any:
            try:
                return await asyncio.wait_for(self.subscription.__anext__(), timeout)
            except StopAsyncIteration:
                return _DONE

        item = self.owner._call(next_event())
        return None if item is _DONE else item

    def unsubscribe(self) -> None:
        self.owner._call(self.subscription.unsubscribe())
