"""Stop taking new connections when the process is told to stop.

daphne and uvicorn keep listening until they exit, so for the few seconds a stopping
process spends closing its sockets with 4503, new clients are still accepted, and
those that are mid-handshake when it exits are reset. Closing the listening sockets
first makes them refused at once instead, which clients and balancers (nginx's next
upstream, a Kubernetes Service) handle by going elsewhere. Connections already open
are not touched.

The server is found from its own signal handler, the one realtime's SIGTERM handler
hands over to: uvicorn's is a method of its ``Server`` (whose ``servers`` are asyncio
servers), daphne's is a method of the Twisted reactor (whose readers include its
listening ports). Anything else is left as it is.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def stop_listening(server_handler: Any) -> int:
    """Close the listening sockets of the server whose signal handler is
    ``server_handler``; return how many were closed (0: server not recognised)."""
    owner = getattr(server_handler, "__self__", None)
    if owner is None:
        return 0
    try:
        if type(owner).__module__.startswith("uvicorn."):
            return _stop_uvicorn(owner)
        if callable(getattr(owner, "getReaders", None)):
            return _stop_twisted(owner)
    except Exception as error:  # a server release this was not written against
        logger.info("could not stop listening before shutdown: %r", error)
    return 0


def _stop_uvicorn(server: Any) -> int:
    listeners = list(getattr(server, "servers", ()))  # asyncio's or uvloop's
    for listener in listeners:
        listener.close()  # the connections already open are left alone
    return len(listeners)


def _stop_twisted(reactor: Any) -> int:
    from twisted.internet.tcp import Port

    ports = [r for r in reactor.getReaders() if isinstance(r, Port)]
    for port in ports:
        port.stopListening()
    return len(ports)
