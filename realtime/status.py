"""WebSocket close codes used by the protocol.

Daphne lets an application send only 1000 and 3000-4999 and drops close reasons, so
every code below is preceded by an ``rt.error`` frame that says why.
"""

from __future__ import annotations

WS_1000_NORMAL_CLOSURE = 1000
WS_4400_PROTOCOL_ABUSE = 4400
WS_4401_NOT_AUTHENTICATED = 4401
WS_4403_FORBIDDEN = 4403
WS_4408_HEARTBEAT_TIMEOUT = 4408
WS_4413_FRAME_TOO_LARGE = 4413
WS_4429_RATE_LIMITED = 4429
WS_4500_SERVER_ERROR = 4500
WS_4503_SHUTTING_DOWN = 4503
WS_4507_SLOW_CONSUMER = 4507

#: Close codes after which a client should not reconnect with the same credentials.
NO_RETRY_CODES = frozenset({WS_4401_NOT_AUTHENTICATED, WS_4403_FORBIDDEN})
