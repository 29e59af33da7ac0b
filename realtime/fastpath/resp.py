"""The fast path's Redis wire: RESP packed and read by hand on redis-py's sockets.

redis-py connects (auth, TLS, SELECT); the exchange itself is done here, which costs
a fraction of redis-py's command packing and reply parser.
"""

from __future__ import annotations

import re
import select
from typing import Any

import redis

CLIENT_NAME = "realtime-notify"


def connection_pool(host: dict, timeout: float) -> redis.ConnectionPool | None:
    options = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "client_name": CLIENT_NAME,  # tells these apart in CLIENT LIST
        **{k: v for k, v in host.items() if k != "address"},
    }
    if "master_name" in host or "sentinels" in host:
        return None  # Sentinel: left to the layer's own async client.
    if "address" in host:
        return redis.ConnectionPool.from_url(host["address"], **options)
    return redis.ConnectionPool(**options)


# The script's reply, {seq or nil, over}, or an error line. Anything else is a
# protocol error (the connection is then dropped). With several hosts the core
# layer's reply goes on with the messages for other hosts (flat reads those).
_REPLY = re.compile(rb"\*2\r\n(?::(-?\d+)|\$-1)\r\n:(-?\d+)\r\n")
_ERROR = re.compile(rb"-([^\r]*)\r\n")


def flat(data: bytes) -> list | None:
    """A flat RESP array of integers, nils and strings; None while incomplete."""
    end = data.find(b"\r\n")
    count, at = int(data[1:end]), end + 2
    items: list[Any] = []
    for _ in range(count):
        end = data.find(b"\r\n", at)
        if end < 0:
            return None
        kind, value = data[at : at + 1], int(data[at + 1 : end])
        if kind == b":":
            items.append(value)
            at = end + 2
        elif kind == b"$" and value < 0:
            items.append(None)
            at = end + 2
        elif kind == b"$":
            if len(data) < end + 4 + value:
                return None
            items.append(data[end + 2 : end + 2 + value])
            at = end + 4 + value
        else:
            raise redis.exceptions.InvalidResponse(f"unexpected {data[:80]!r}")
    if at != len(data):
        raise redis.exceptions.InvalidResponse(f"unexpected {data[:80]!r}")
    return items


def exchange(conn: Any, packed: bytes) -> list:
    """Send one packed command on ``conn`` and read the script's reply.

    redis-py connects (and performs auth, TLS, SELECT); the exchange itself is done
    on its socket here, which costs a fraction of redis-py's reply parser. Raises
    ConnectionError only when no byte of a reply came back (the caller may retry),
    InvalidResponse when the reply was cut or not the script's.
    """
    if conn._sock is None:
        conn.connect()
    sock, data = conn._sock, b""
    try:
        sock.sendall(packed)
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionResetError("connection closed by the server")
            data += chunk
            if data.endswith(b"\r\n"):
                if reply := _REPLY.fullmatch(data):
                    seq, over = reply.groups()
                    return [None if seq is None else int(seq), int(over)]
                if error := _ERROR.fullmatch(data):
                    message = error.group(1).decode(errors="replace")
                    if message.startswith("NOSCRIPT"):
                        raise redis.exceptions.NoScriptError(message)
                    raise redis.exceptions.ResponseError(message)
                if not data.startswith(b"*"):  # a whole reply, but not the script's
                    raise redis.exceptions.InvalidResponse(f"unexpected {data[:80]!r}")
                if not data.startswith(b"*2\r\n") and (items := flat(data)):
                    return items
            if len(data) > 4096 and data.startswith(b"*2\r\n"):
                raise redis.exceptions.InvalidResponse(f"unexpected {data[:80]!r}")
    except TimeoutError as exc:  # socket.timeout: the script may have run
        raise redis.exceptions.TimeoutError("no reply from Redis in time") from exc
    except OSError as exc:
        if data:
            raise redis.exceptions.InvalidResponse(f"reply cut: {exc}") from exc
        raise redis.exceptions.ConnectionError(f"Redis connection: {exc}") from exc


def read_replies(sock: Any, count: int, replies: list[Any]) -> None:
    """Read ``count`` pipelined script replies from ``sock`` into ``replies``: each
    ``[seq, over]``, or the ResponseError Redis answered for that command.

    Raises like ``exchange``; ``replies`` then holds those read before.
    """
    data, pos, got = b"", 0, False
    try:
        while len(replies) < count:
            if reply := _REPLY.match(data, pos):
                seq, over = reply.groups()
                replies.append([None if seq is None else int(seq), int(over)])
                pos = reply.end()
                continue
            if error := _ERROR.match(data, pos):
                message = error.group(1).decode(errors="replace")
                replies.append(redis.exceptions.ResponseError(message))
                pos = error.end()
                continue
            rest = data[pos:]
            if rest[:1] not in (b"", b"*", b"-") or len(rest) > 4096:
                raise redis.exceptions.InvalidResponse(f"unexpected {rest[:80]!r}")
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("connection closed by the server")
            data, pos, got = rest + chunk, 0, True
    except TimeoutError as exc:
        raise redis.exceptions.TimeoutError("no reply from Redis in time") from exc
    except OSError as exc:
        if got:
            raise redis.exceptions.InvalidResponse(f"reply cut: {exc}") from exc
        raise redis.exceptions.ConnectionError(f"Redis connection: {exc}") from exc


def is_open(sock: Any) -> bool:
    """True if an idle socket is still open: readable means closed by the server
    (or bytes nobody asked for)."""
    try:
        if hasattr(select, "poll"):  # no limit on descriptor numbers, unlike select
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        return not select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        return False


def pack(args: list[bytes]) -> bytes:
    """One command in RESP, the Redis wire format."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


def server_of(pool: Any) -> tuple:
    kw = pool.connection_kwargs
    return (kw.get("host"), kw.get("port"), kw.get("path"), kw.get("db", 0))
