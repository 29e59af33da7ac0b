"""Exceptions raised by realtime.

::

    RealtimeError                      base of every client-facing error
    ├── BadJSON                        bad_json
    ├── BadEnvelope                    bad_envelope
    ├── UnknownType                    unknown_type
    ├── ValidationFailed               invalid (carries DRF field errors)
    ├── PermissionDenied               forbidden
    ├── NotAuthenticated               not_authenticated   (closes 4401)
    ├── RateLimited                    rate_limited
    ├── FrameTooLarge                  too_large           (closes 4413)
    ├── ServerError                    server_error
    │   └── Unavailable                unavailable (Redis / the layer unreachable)
    │       └── NotifyFailed           notify() could not reach the layer in time
    ├── ShuttingDown                   shutting_down       (closes 4503)
    └── SlowConsumer                   slow_consumer       (closes 4507)

    ImproperlyConfigured (Django)
    └── RealtimeConfigError            bad settings, bad registrations
        └── RedisClusterUnsupported    a Redis Cluster node where a standalone
                                       Redis (or Sentinel) is expected

Configuration errors do not inherit from ``RealtimeError`` so that no handler that
catches client errors can swallow them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from realtime import status


class RealtimeError(Exception):
    """An error reported to the client as an ``rt.error`` frame."""

    default_detail = "Error."
    default_code = "server_error"
    close_code: int | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: Any = None,
        close_code: int | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.code = code or self.default_code
        self.errors = errors
        if close_code is not None:
            self.close_code = close_code
        super().__init__(self.detail)


class BadJSON(RealtimeError):
    default_detail = "Frame is not valid JSON."
    default_code = "bad_json"


class BadEnvelope(RealtimeError):
    default_detail = "Frame is not a valid envelope."
    default_code = "bad_envelope"


class UnknownType(RealtimeError):
    default_detail = "Unknown message type."
    default_code = "unknown_type"


class ValidationFailed(RealtimeError):
    """``data`` is not acceptable: ``rt.error`` ``invalid`` with DRF-style ``errors``.

    Takes what DRF's ``ValidationError`` takes: a message
    (``ValidationFailed("Order is closed.")``), a list of messages, or a dict of field
    errors (``ValidationFailed({"order": ["No such order."]})``). Lists become
    ``errors={"non_field_errors": [...]}``; a dict becomes ``errors`` as is, with the
    generic message. ``errors=`` sets the field errors beside a message of your own.
    """

    default_detail = "Invalid data."
    default_code = "invalid"

    def __init__(
        self,
        detail: str | list[Any] | tuple[Any, ...] | dict[Any, Any] | None = None,
        *,
        code: str | None = None,
        errors: Any = None,
        close_code: int | None = None,
    ) -> None:
        message: str | None
        if isinstance(detail, dict):
            message = None
            if errors is None:
                errors = _field_errors(detail)
        elif isinstance(detail, (list, tuple)):
            messages = [str(item) for item in detail]
            message = "; ".join(messages) or None
            if errors is None:
                errors = {"non_field_errors": messages}
        else:
            message = None if detail is None else str(detail)
        super().__init__(message, code=code, errors=errors, close_code=close_code)


def _field_errors(errors: Any) -> Any:
    """DRF's shapes as plain JSON: keys as strings, a lone message as a list."""
    if isinstance(errors, dict):
        return {
            str(key): [str(value)] if isinstance(value, str) else _field_errors(value)
            for key, value in errors.items()
        }
    if isinstance(errors, (list, tuple)):
        return [_field_errors(value) for value in errors]
    return str(errors)


class PermissionDenied(RealtimeError):
    default_detail = "You do not have permission to perform this action."
    default_code = "forbidden"


class NotAuthenticated(RealtimeError):
    default_detail = "Authentication credentials were not provided or are invalid."
    default_code = "not_authenticated"
    close_code = status.WS_4401_NOT_AUTHENTICATED


class RateLimited(RealtimeError):
    default_detail = "Too many messages; slow down."
    default_code = "rate_limited"


class FrameTooLarge(RealtimeError):
    default_detail = "Frame is larger than the server accepts."
    default_code = "too_large"
    close_code = status.WS_4413_FRAME_TOO_LARGE


class ServerError(RealtimeError):
    default_detail = "Internal server error."
    default_code = "server_error"


class Unavailable(ServerError):
    """The channel layer or the history store could not be reached: retry later."""

    default_detail = "A service the server needs is unreachable; retry shortly."
    default_code = "unavailable"


class NotifyFailed(Unavailable):
    """notify() could not publish: the channel layer or Redis failed or timed out.

    ``str()`` gives the reason for logs; a client only ever sees the generic
    ``unavailable`` detail (a handler that notifies lets this propagate). From
    ``realtime.batch()``, ``failures`` lists each event that was not sent:
    ``(position in the batch, group, type, why)``.
    """

    def __init__(
        self, reason: str, *, failures: Sequence[tuple[int, str, str, str]] = ()
    ) -> None:
        super().__init__()
        self.reason = reason
        self.failures = list(failures)

    def __str__(self) -> str:
        return self.reason


class ShuttingDown(RealtimeError):
    default_detail = "Server is shutting down; reconnect."
    default_code = "shutting_down"
    close_code = status.WS_4503_SHUTTING_DOWN


class SlowConsumer(RealtimeError):
    default_detail = "Client fell too far behind; reconnect and recover."
    default_code = "slow_consumer"
    close_code = status.WS_4507_SLOW_CONSUMER


class RealtimeConfigError(ImproperlyConfigured):
    """Bad ``REALTIME`` settings or bad event/handler registrations."""


class RedisClusterUnsupported(RealtimeConfigError):
    """A configured Redis is a Redis Cluster node: shard over standalone servers."""


#: Every ``rt.error`` code the server sends (docs/protocol.md), in documented order.
ERROR_CODES = (
    "bad_json",
    "bad_envelope",
    "unknown_type",
    "invalid",
    "forbidden",
    "not_authenticated",
    "rate_limited",
    "too_large",
    "server_error",
    "unavailable",
    "shutting_down",
    "slow_consumer",
    "heartbeat_timeout",
)

#: The codes caused by what a client sent; MAX_INVALID_FRAMES of them close with 4400.
CLIENT_FAULTS = frozenset(
    {
        "bad_json",
        "bad_envelope",
        "unknown_type",
        "invalid",
        "forbidden",
        "not_authenticated",
    }
)
