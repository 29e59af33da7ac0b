"""This process as the cluster sees it: its registry heartbeat and its graceful exit.

Every ``PROCESS_HEARTBEAT`` seconds the process writes what its hub serves
(connections per consumer class, local sockets per group) under
``<KEY_PREFIX>:proc:<id>`` with a TTL of three beats, so ``manage.py realtime_status``
sees every live process and a crashed one disappears on its own. On SIGTERM or SIGINT
the server stops listening and every socket is closed with 4503 before the server's
own handler runs, so clients reconnect elsewhere instead of seeing a dropped
connection.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Any

from realtime import status
from realtime.backends import get_backend
from realtime.backends.registry import PROCESS_ID, process_info
from realtime.exceptions import ShuttingDown
from realtime.hub import Hub
from realtime.settings import realtime_settings
from realtime.transport.listening import stop_listening

logger = logging.getLogger(__name__)


async def heartbeat(hub: Hub) -> None:
    """Register this process until the hub stops (runs as one of its jobs)."""
    try:
        while True:
            interval = realtime_settings.PROCESS_HEARTBEAT
            try:
                await get_backend().register_process(
                    PROCESS_ID, process_info(hub), 3 * interval
                )
            except Exception:
                logger.warning("process heartbeat failed", exc_info=True)
            await asyncio.sleep(interval)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(get_backend().unregister_process(PROCESS_ID), 1)
        except Exception:
            pass  # the key expires by itself
        raise


def install_shutdown(hub: Hub) -> None:
    """On SIGTERM/SIGINT, close ``hub``'s sockets with 4503 before the server stops.

    The server's own handler (daphne's reactor, uvicorn's) runs right after, so
    clients learn to reconnect elsewhere instead of seeing a dropped connection.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if getattr(previous, "_realtime", False):
            continue

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            hub.loop.call_soon_threadsafe(
                lambda: asyncio.ensure_future(shutdown(hub, signum, frame, previous))
            )

        handler._realtime = True  # type: ignore[attr-defined]
        try:
            signal.signal(signum, handler)
        except ValueError:
            return


async def shutdown(
    hub: Hub, signum: int = 0, frame: Any = None, previous: Any = None
) -> None:
    """Stop listening, close every connection of ``hub`` with 4503, then hand over
    to ``previous`` (the server's own handler)."""
    hub.shutting_down = True
    if previous is not None and stop_listening(previous):
        logger.info("shutting down: no longer accepting connections")
    closing = [
        consumer.close(ShuttingDown(), status.WS_4503_SHUTTING_DOWN)
        for consumer in tuple(hub.connections)
    ]
    if closing:
        logger.info("shutting down: closing %d connections with 4503", len(closing))
        await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 5)
    await hub.leave_probes()
    if previous is None:
        return
    # Hand the signal back: servers re-raise it at exit to report how they ended.
    signal.signal(signum, previous)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.raise_signal(signum)
