"""Server adapters: how a connection's frames reach the server's socket.

Every connection gets a ``FrameWriter`` from ``frame_writer(send)``, given the ASGI
``send`` the server handed it. The default, ``ASGI_SEND``, declines every frame: the
connection sends it through the ASGI send. On daphne and uvicorn's websockets-sansio
protocol, a ``DirectWriter`` (``transport.daphne``, ``transport.uvicorn``) writes the
group events' ready-made frames to the server's transport instead, skipping the
server's per-message framing, the most CPU a fan-out delivery costs there.

The server is recognised from ``send`` (the module that defined it), and its internals
are checked once per process, at its first connection (versions, classes and
attributes the writer reads): a server that does not pass is logged at INFO and all
its connections use the ASGI send. ``REALTIME["DIRECT_WRITES"] = False`` turns the
direct writers off.

On daphne, ``defer_server_formatting()`` also makes autobahn's per-connection debug
formatting lazy (``transport.daphne.defer_debug_formatting``): at start-up when daphne
has loaded the app, else at the first connection. ``DIRECT_WRITES = False`` leaves
autobahn as it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from types import ModuleType

from realtime.settings import realtime_settings
from realtime.transport import daphne, uvicorn
from realtime.transport.base import ASGI_SEND, AsgiSend, DirectWriter, FrameWriter
from realtime.transport.frames import text_frame

__all__ = [
    "ASGI_SEND",
    "AsgiSend",
    "DirectWriter",
    "FrameWriter",
    "defer_server_formatting",
    "frame_writer",
    "text_frame",
]

logger = logging.getLogger(__name__)

#: Top-level package of the server's code -> its adapter.
ADAPTERS: dict[str, ModuleType] = {daphne.NAME: daphne, uvicorn.NAME: uvicorn}


def frame_writer(send: Callable) -> FrameWriter:
    """The writer for the connection ``send`` belongs to; ``ASGI_SEND`` unless a
    checked direct writer serves it and ``REALTIME["DIRECT_WRITES"]`` is on."""
    if not realtime_settings.DIRECT_WRITES:
        return ASGI_SEND
    adapter = ADAPTERS.get(_server_of(send))
    if adapter is None or not usable(adapter.NAME):
        return ASGI_SEND
    return adapter.writer(send) or ASGI_SEND


def defer_server_formatting() -> None:
    """Make the serving daphne's autobahn format its debug lines only when one is
    emitted, unless ``REALTIME["DIRECT_WRITES"]`` is off. Idempotent; imports no
    server (a process daphne does not serve is left as it is)."""
    if realtime_settings.DIRECT_WRITES:
        daphne.defer_debug_formatting()


@functools.cache
def usable(server: str) -> bool:
    """Whether ``server``'s internals are what its writer expects (checked once)."""
    if server == daphne.NAME:
        # For an app loaded before daphne's server: from the first connection on.
        defer_server_formatting()
    reason = ADAPTERS[server].check()
    if reason is None:
        logger.info("%s: group events are written as ready-made frames", server)
        return True
    logger.info("%s: %s; every frame goes through the ASGI send", server, reason)
    return False


def _server_of(send: Callable) -> str:
    # daphne hands each connection functools.partial(Server.handle_reply, protocol);
    # uvicorn a bound method of the connection's protocol.
    function = getattr(send, "func", send)
    function = getattr(function, "__func__", function)
    return (getattr(function, "__module__", None) or "").partition(".")[0]
