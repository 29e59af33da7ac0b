"""What the Python client raises.

::

    ClientError              code: the server's rt.error code or a client-side one
    ├── RecoveryFailed       events of a group may be lost: refetch its state
    └── ClientClosed         the client stopped for good (4401, 4403, attempt cap)
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """An ``rt.error`` from the server, or a client-side failure (``code`` says which:
    ``timeout``, ``connection_lost``, ``queue_overflow``, ``closed``, ...)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        errors: Any = None,
        frame: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.errors = errors
        self.frame = frame

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> ClientError:
        data = frame.get("data")
        data = data if isinstance(data, dict) else {}
        return cls(
            str(data.get("message") or "request failed"),
            code=str(data.get("code") or "error"),
            errors=data.get("errors"),
            frame=frame,
        )


class RecoveryFailed(ClientError):
    """Raised by a subscription's iterator when events after ``since`` may be lost:
    a resubscribe acked ``recovered: false`` (``reason`` is None) or an ``rt.reset``
    (``reason`` is the server's). The subscription goes on after (``epoch``, ``seq``);
    iterate it again after refetching the group's state."""

    def __init__(
        self,
        group: str | None,
        *,
        since: int | None,
        seq: int | None,
        epoch: str | None,
        reason: str | None = None,
    ) -> None:
        super().__init__(
            f"events of {group} after seq {since} may be lost"
            + (f" ({reason})" if reason else ""),
            code="recovery_failed",
        )
        self.group, self.since, self.seq = group, since, seq
        self.epoch, self.reason = epoch, reason


class ClientClosed(ClientError):
    """The client will not reconnect: ``close_code`` is the WebSocket close code
    (4401, 4403, ...) and ``error`` the ``rt.error`` or exception that preceded it."""

    def __init__(
        self,
        message: str,
        *,
        close_code: int | None,
        error: BaseException | None = None,
        code: str = "closed",
    ) -> None:
        super().__init__(message, code=code)
        self.close_code = close_code
        self.error = error
