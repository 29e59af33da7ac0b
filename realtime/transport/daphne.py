"""daphne 4 on autobahn and Twisted: frames straight to the TCP socket.

daphne passes every ``websocket.send`` through its server, its protocol and
autobahn's sendMessage, sendFrame and sendData; autobahn 26 formats the arguments of
a debug log line for every frame even with debug logging off: most of the server's
CPU per fan-out delivery (docs/benchmarks.md). On daphne the held frames go straight
to the socket while Twisted holds nothing for it; what the kernel does not take goes
to the transport, which then writes it as usual.

autobahn also formats the arguments of its debug lines on every connection (a
``pformat()`` of the 29 options copied onto each protocol, ``click`` styling of type
names), a tenth of daphne's CPU per connection: ``defer_debug_formatting()`` makes
them formatted only when a line is emitted.

daphne, autobahn and Twisted are imported only here and only once a daphne send has
been seen: importing ``daphne.server`` installs Twisted's reactor.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import pprint
import sys
from collections.abc import Callable
from typing import Any

from realtime import compression
from realtime.transport.base import DirectWriter
from realtime.transport.versions import out_of_range

NAME = "daphne"
#: The daphne releases these writes were checked against (docs/deploying.md); any
#: other runs on the ASGI send.
SUPPORTED = ((4, 2, 3), (5,))
#: What the writer reads of Twisted's TCP connection (class attributes; the buffer
#: list and the socket are per connection, looked up when the writer is made).
TCP_ATTRIBUTES = ("dataBuffer", "disconnecting", "connected", "write")
#: The autobahn releases whose debug lines were checked to use ``pformat``, ``hltype``
#: and ``hlval`` only as log arguments (and ``Timings.__str__``, kept eager).
AUTOBAHN_SUPPORTED = ((26,), (27,))
#: autobahn's modules on daphne's connection path -> their formatters made lazy.
DEFERRED_FORMATTERS = {
    "autobahn.websocket.protocol": ("pformat", "hltype", "hlval"),
    "autobahn.twisted.websocket": ("hltype", "hlval"),
}


def check() -> str | None:
    """Why daphne's internals are not what the writer expects; None when they are."""
    outside = out_of_range("daphne", *SUPPORTED)
    if outside is not None:
        return outside
    try:
        # Optional dependencies of the daphne server only: imported when it serves.
        from autobahn.websocket.protocol import WebSocketProtocol
        from daphne.server import Server
        from twisted.internet.tcp import Connection
    except ImportError as error:
        return f"cannot import daphne's server: {error}"
    if not inspect.iscoroutinefunction(getattr(Server, "handle_reply", None)):
        return "daphne's Server.handle_reply is not a coroutine"
    if not isinstance(getattr(WebSocketProtocol, "STATE_OPEN", None), int):
        return "autobahn's WebSocketProtocol has no STATE_OPEN"
    if not all(hasattr(Connection, name) for name in TCP_ATTRIBUTES):
        return f"Twisted's tcp.Connection lacks one of {', '.join(TCP_ATTRIBUTES)}"
    return None


def writer(send: Callable) -> DaphneWriter | None:
    """The writer to ``send``'s connection, if ``send`` is daphne's per-connection
    ``partial(Server.handle_reply, protocol)``; None for anything else."""
    if not (
        isinstance(send, functools.partial)
        and getattr(send.func, "__func__", None) is _handle_reply()
        and len(send.args) == 1
        and not send.keywords
    ):
        return None
    try:
        return DaphneWriter(send.args[0], asyncio.get_running_loop())
    except AttributeError:  # a protocol without the attributes the writer reads
        return None


class DaphneWriter(DirectWriter):
    """daphne 4 on autobahn: straight to the TCP socket when Twisted holds nothing."""

    __slots__ = ("limit", "open_state", "tcp")
    tcp: Any

    def __init__(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(protocol, loop)
        self.open_state = protocol.STATE_OPEN
        protocol.send_queue  # noqa: B018
        self.deflate = compression.shared_frames_allowed(protocol._perMessageCompress)
        sizes = (protocol.autoFragmentSize, protocol.maxMessagePayloadSize, 1 << 62)
        self.limit = min(size for size in sizes if size > 0)
        self.tcp = _tcp_connection()
        if isinstance(protocol.transport, self.tcp):
            protocol.transport._tempDataBuffer, protocol.transport.socket  # noqa: B018

    def writable(self, frame: bytes) -> bool:
        protocol = self.protocol
        return (
            protocol.state == self.open_state
            and not protocol.send_queue
            # Negotiated by realtime.deflate_negotiation: plain and shared
            # compressed frames leave autobahn's compressor untouched.
            and (protocol._perMessageCompress is None or self.deflate)
            # Empty: daphne sends nothing. Longer than the limit: autobahn fragments
            # (the payload is shorter than the frame: conservative).
            and 2 < len(frame) <= self.limit
        )

    def still_open(self) -> bool:
        return self.protocol.state == self.open_state

    def write(self, data: bytes) -> None:
        # Plain TCP only: a TLS transport (wss) encrypts in Twisted, and its wrapper
        # answers for the raw socket underneath.
        transport = self.protocol.transport
        if (
            not isinstance(transport, self.tcp)
            or transport.dataBuffer
            or transport._tempDataBuffer
            or transport.disconnecting
            or not transport.connected
        ):
            transport.write(data)  # after what Twisted holds
            return
        try:
            sent = transport.socket.send(data)
        except OSError:  # full, or broken: Twisted handles both as usual
            sent = 0
        if sent < len(data):
            transport.write(data[sent:] if sent else data)


@functools.cache
def _handle_reply() -> Any:
    from daphne.server import Server  # see check()

    return Server.handle_reply


@functools.cache
def _tcp_connection() -> Any:
    from twisted.internet.tcp import Connection  # see check()

    return Connection


class Deferred:
    """A log argument formatted when a log line shows it, as the formatter would
    have formatted it; a line that is not emitted never formats it."""

    __slots__ = ("args", "function", "kwargs")

    def __init__(self, function: Callable, args: tuple, kwargs: dict) -> None:
        self.function = function
        self.args = args
        self.kwargs = kwargs

    def text(self) -> Any:
        return self.function(*self.args, **self.kwargs)

    def __str__(self) -> str:
        return str(self.text())

    def __format__(self, spec: str) -> str:
        return format(self.text(), spec)

    def __repr__(self) -> str:
        return repr(self.text())


def deferring(function: Callable) -> Callable[..., Deferred]:
    """``function`` made to return a ``Deferred`` call of itself."""

    @functools.wraps(function)
    def deferred(*args: Any, **kwargs: Any) -> Deferred:
        return Deferred(function, args, kwargs)

    deferred.realtime_deferred = True  # type: ignore[attr-defined]
    return deferred


def _timings_text(self: Any) -> str:
    # autobahn's Timings.__str__, with the eager pformat its module no longer has.
    return pprint.pformat(self._timings)


def defer_debug_formatting() -> str | None:
    """Make autobahn's debug-line arguments lazy in this process, if daphne serves
    it (``daphne.server`` imported) with an autobahn of ``AUTOBAHN_SUPPORTED``.

    Returns why it did not (None when done, or already done). Imports nothing.
    """
    if "daphne.server" not in sys.modules:
        return "daphne's server is not imported"
    outside = out_of_range("autobahn", *AUTOBAHN_SUPPORTED)
    if outside is not None:
        return outside
    modules = [sys.modules.get(name) for name in DEFERRED_FORMATTERS]
    if None in modules:
        return "autobahn's websocket modules are not imported"
    util = sys.modules.get("autobahn.util")
    originals: dict[str, Any] = {
        "pformat": pprint.pformat,
        "hltype": getattr(util, "hltype", None),
        "hlval": getattr(util, "hlval", None),
    }
    timings = getattr(modules[0], "Timings", None)
    if not isinstance(timings, type) or "__str__" not in vars(timings):
        return "autobahn's websocket protocol has no Timings.__str__"
    replaced: list[tuple[Any, str, Any]] = []
    for module in modules:
        for name in DEFERRED_FORMATTERS[module.__name__]:  # type: ignore[union-attr]
            current = getattr(module, name, None)
            if getattr(current, "realtime_deferred", False):
                continue
            if current is None or current is not originals[name]:
                return f"{module.__name__}.{name} is not {name}"  # type: ignore[union-attr]
            replaced.append((module, name, current))
    timings.__str__ = _timings_text  # type: ignore[method-assign,assignment]
    for module, name, function in replaced:
        setattr(module, name, deferring(function))
    return None
