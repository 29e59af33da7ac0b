"""The ``REALTIME`` settings dict: defaults, import strings and a lazy reader.

Values are read at call time (never frozen into class bodies) and the cache is
dropped on ``setting_changed`` so ``override_settings`` works in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from realtime.exceptions import RealtimeConfigError

DEFAULTS: dict[str, Any] = {
    # Authentication, tried in order at the handshake; the first that finds
    # credentials decides. FirstMessageAuthenticator enables ``rt.auth``.
    "AUTHENTICATORS": [
        "realtime.auth.SessionAuthenticator",
        "realtime.auth.TicketAuthenticator",
        "realtime.auth.HeaderAuthenticator",
        "realtime.auth.FirstMessageAuthenticator",
    ],
    # DRF authentication classes for HeaderAuthenticator and rt.auth tokens.
    # None: DRF's DEFAULT_AUTHENTICATION_CLASSES without SessionAuthentication
    # (cookies are SessionAuthenticator's job; the Origin check replaces CSRF).
    "HEADER_AUTHENTICATION_CLASSES": None,
    "DEFAULT_PERMISSION_CLASSES": [],
    # Allowed browser origins: full origins such as "https://app.example.com".
    # None: same origin as the handshake's Host, which must be in ALLOWED_HOSTS.
    # "*" disables the check (a system check warns).
    "ALLOWED_ORIGINS": None,
    "TICKET_TTL": 30,
    # Seconds between re-checks that connected users are still active (one query
    # per process); a deactivated or deleted user's sockets close with 4401. 0: off.
    "REVALIDATE_INTERVAL": 60,
    "AUTH_TIMEOUT": 10,
    "HEARTBEAT_INTERVAL": 25,
    # Close with 4408 when nothing arrived from the client for this long.
    "HEARTBEAT_TIMEOUT": 60,
    "MAX_FRAME_BYTES": 64 * 1024,
    # Deeper JSON nesting is bad_json (Python code that walks data recurses).
    "MAX_NESTING": 64,
    # Token bucket per connection: RATE frames per second, BURST at once.
    "RATE": 20.0,
    "BURST": 40,
    # rt.error rate_limited this many times within a minute closes with 4429.
    "RATE_LIMIT_CLOSE_AFTER": 10,
    # This many bad frames (any rt.error caused by the client) close with 4400.
    "MAX_INVALID_FRAMES": 20,
    "MAX_SUBSCRIPTIONS": 100,
    # Ephemeral client events (typing indicators) have a token bucket of their own.
    "EPHEMERAL_RATE": 2.0,
    "EPHEMERAL_BURST": 5,
    # Presence groups a connection may leave (rt.unsubscribe) per second, and at
    # once: each leave and the join after it are events to every member.
    "PRESENCE_CHURN_RATE": 1.0,
    "PRESENCE_CHURN_BURST": 5,
    # Bytes sent but not yet acknowledged by the client (rt.pong) before 4507.
    "MAX_PENDING_BYTES": 1024 * 1024,
    "BACKEND": None,  # None: Redis when the channel layer is channels-redis
    "REDIS_URL": None,  # None: each group's shard of the layer's hosts
    "KEY_PREFIX": "rt",
    # Groups whose events get seq numbers and history: glob patterns.
    "HISTORY_GROUPS": ["*"],
    "HISTORY_SIZE": 1000,
    "HISTORY_TTL": 600,
    # Seconds a group's position (epoch and last seq) outlives its last event. A
    # group quiet for longer starts a new epoch: subscribers are told (rt.reset).
    "HISTORY_EPOCH_TTL": 24 * 3600,
    # Groups that track presence: glob patterns (user groups never do).
    "PRESENCE_GROUPS": ["*"],
    "USER_GROUP": "user.{pk}",
    "NOTIFY_ON_COMMIT": True,
    # What notify() does with a payload that fails validation: "raise" or "log".
    # None: "raise" when DEBUG is on (and in tests), "log" in production.
    "INVALID_OUTGOING": None,
    # Upper bound, in seconds, for one notify() when the layer or Redis is down or
    # slow; past it notify() raises NotifyFailed (or logs, see NOTIFY_FAILURE).
    "NOTIFY_TIMEOUT": 5.0,
    # What notify() does when publishing fails: "raise" NotifyFailed or "log" and
    # return None. Persisted notifications are stored before either happens.
    "NOTIFY_FAILURE": "raise",
    "CHANNEL_LAYER": "default",
    # Messages each process's hub channel may hold on channels-redis' core layer
    # before the layer drops them (its own default, 100, is reached by a loop of
    # notify() calls in milliseconds).
    "HUB_CAPACITY": 10_000,
    # Group events written as ready-made frames to daphne's and uvicorn's sockets
    # (realtime.transport); False: every frame goes through the server's ASGI send.
    "DIRECT_WRITES": True,
    # permessage-deflate negotiated for daphne and uvicorn so that each group event
    # is compressed once per process, and the same bytes go to every socket that
    # negotiated it (realtime.compression); events shorter than
    # COMPRESSION_MIN_BYTES go uncompressed.
    "COMPRESSION": False,
    "COMPRESSION_MIN_BYTES": 256,
    # Seconds between checks that each history group's position on this process
    # matches the backend's (a gap nothing revealed is repaired from history), and
    # between checks that the layer's Redis servers have not restarted. 0: off.
    "POSITION_CHECK_INTERVAL": 2.0,
    # Seconds between process heartbeats (manage.py realtime_status); a process
    # is forgotten three beats after its last one.
    "PROCESS_HEARTBEAT": 10,
    # Prometheus metrics at ``realtime/metrics/`` (docs/operations.md). Off by
    # default; when on, a request must come from METRICS_ALLOWED_IPS (addresses or
    # networks; requests relayed by a proxy never qualify) or carry
    # ``Authorization: Bearer <METRICS_TOKEN>``.
    "METRICS_ENABLED": False,
    "METRICS_ALLOWED_IPS": ["127.0.0.1", "::1"],
    "METRICS_TOKEN": None,
    # Shared documents (realtime.collab, docs/collab.md).
    # Largest Yjs update a client may send, in bytes (the frame limit applies too).
    "COLLAB_MAX_UPDATE_BYTES": 256 * 1024,
    # Largest document, in bytes of encoded state: past it updates are too_large.
    "COLLAB_MAX_DOCUMENT_BYTES": 4 * 1024 * 1024,
    # Documents a process keeps open at once; the least recently used goes first.
    "COLLAB_MAX_OPEN_DOCUMENTS": 500,
    # Seconds an open document stays in memory after its last use.
    "COLLAB_IDLE_SECONDS": 300,
    # Token bucket per connection for document updates and awareness changes.
    "COLLAB_RATE": 20.0,
    "COLLAB_BURST": 40,
    # Updates stored after the snapshot before they are merged into it.
    "COLLAB_COMPACT_AFTER": 200,
}


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    )


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _strings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _imports(value: Any) -> bool:
    # Import strings, or the classes themselves.
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, (str, type)) for v in value
    )


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


_NUMBER = ("a number >= 0", _number)
_INTEGER = ("an integer >= 0", _integer)
_STRING = ("a string", lambda value: isinstance(value, str))
_BOOL = ("True or False", lambda value: isinstance(value, bool))
_GLOBS = ("a list of strings (glob patterns)", _strings)

#: What each key accepts: (description, test). A key missing here is not checked.
TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "AUTHENTICATORS": ("a list of import strings", _imports),
    "HEADER_AUTHENTICATION_CLASSES": (
        "a list of import strings or None",
        _optional(_imports),
    ),
    "DEFAULT_PERMISSION_CLASSES": ("a list of import strings", _imports),
    "ALLOWED_ORIGINS": (
        'a list of origins ("https://app.example.com"), "*" or None',
        lambda value: value is None or value == "*" or _strings(value),
    ),
    "TICKET_TTL": _NUMBER,
    "REVALIDATE_INTERVAL": _NUMBER,
    "AUTH_TIMEOUT": _NUMBER,
    "HEARTBEAT_INTERVAL": _NUMBER,
    "HEARTBEAT_TIMEOUT": _NUMBER,
    "MAX_FRAME_BYTES": _INTEGER,
    "MAX_NESTING": _INTEGER,
    "RATE": _NUMBER,
    "BURST": _NUMBER,
    "RATE_LIMIT_CLOSE_AFTER": _INTEGER,
    "MAX_INVALID_FRAMES": _INTEGER,
    "MAX_SUBSCRIPTIONS": _INTEGER,
    "EPHEMERAL_RATE": _NUMBER,
    "EPHEMERAL_BURST": _NUMBER,
    "MAX_PENDING_BYTES": _INTEGER,
    "BACKEND": (
        "an import string or None",
        lambda value: value is None or isinstance(value, (str, type)),
    ),
    "REDIS_URL": ("a string or None", _optional(lambda value: isinstance(value, str))),
    "KEY_PREFIX": _STRING,
    "HISTORY_GROUPS": _GLOBS,
    # Sent to Redis as integers (EXPIRE, LTRIM).
    "HISTORY_SIZE": ("an integer >= 0 (events)", _integer),
    "HISTORY_TTL": ("an integer >= 0 (seconds)", _integer),
    "HISTORY_EPOCH_TTL": ("an integer >= 0 (seconds)", _integer),
    "HUB_CAPACITY": ("an integer >= 0 (messages)", _integer),
    "COMPRESSION": _BOOL,
    "COMPRESSION_MIN_BYTES": ("an integer >= 0 (bytes)", _integer),
    "POSITION_CHECK_INTERVAL": _NUMBER,
    "PRESENCE_GROUPS": _GLOBS,
    "USER_GROUP": _STRING,
    "NOTIFY_ON_COMMIT": _BOOL,
    "INVALID_OUTGOING": (
        "'raise' or 'log' (or None)",
        lambda value: value in (None, "raise", "log"),
    ),
    "NOTIFY_TIMEOUT": _NUMBER,
    "PRESENCE_CHURN_RATE": _NUMBER,
    "PRESENCE_CHURN_BURST": _NUMBER,
    "NOTIFY_FAILURE": ("'raise' or 'log'", lambda value: value in ("raise", "log")),
    "CHANNEL_LAYER": _STRING,
    "PROCESS_HEARTBEAT": _NUMBER,
    "METRICS_ENABLED": _BOOL,
    "METRICS_ALLOWED_IPS": ("a list of strings (addresses or networks)", _strings),
    "METRICS_TOKEN": (
        "a string or None",
        _optional(lambda value: isinstance(value, str)),
    ),
    "COLLAB_MAX_UPDATE_BYTES": _INTEGER,
    "COLLAB_MAX_DOCUMENT_BYTES": _INTEGER,
    "COLLAB_MAX_OPEN_DOCUMENTS": _INTEGER,
    "COLLAB_IDLE_SECONDS": _NUMBER,
    "COLLAB_RATE": _NUMBER,
    "COLLAB_BURST": _NUMBER,
    "COLLAB_COMPACT_AFTER": _INTEGER,
}


def type_error(name: str, value: Any) -> str | None:
    """Why ``REALTIME[name] = value`` has the wrong type, or None when it is fine."""
    expected = TYPES.get(name)
    if expected is None or expected[1](value):
        return None
    return (
        f"REALTIME[{name!r}] must be {expected[0]}, got {type(value).__name__} "
        f"{value!r:.100}."
    )


def channel_layer_config() -> dict[str, Any]:
    """The ``CHANNEL_LAYERS`` entry realtime uses; ``{}`` when there is none.

    Without ``CHANNEL_LAYERS`` Channels has no layer and realtime delivers within
    this one process (system check W001 says so).
    """
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    return layers.get(realtime_settings.CHANNEL_LAYER) or {}


def describe_allowed_origins(host: str | None) -> str:
    """The origins a handshake to ``host`` may come from, in words (for logs)."""
    allowed = realtime_settings.ALLOWED_ORIGINS
    if allowed is None:
        return (
            f"the page's own origin (Host {host!r}), when that host is in "
            f"ALLOWED_HOSTS {list(settings.ALLOWED_HOSTS)!r}"
        )
    return repr(allowed if isinstance(allowed, str) else list(allowed))


def require_app_installed() -> None:
    """Raise when ``realtime`` is missing from INSTALLED_APPS: its ``ready()`` never
    ran, so no app's ``events.py`` was imported and no system check is registered."""
    from django.apps import apps

    if apps.ready and not apps.is_installed("realtime"):
        raise RealtimeConfigError(
            "'realtime' is not in INSTALLED_APPS, so no events.py module was "
            "imported and no event type is declared: add 'realtime' to "
            "INSTALLED_APPS (after 'channels' and 'rest_framework')."
        )


IMPORT_STRINGS = {
    "AUTHENTICATORS",
    "HEADER_AUTHENTICATION_CLASSES",
    "DEFAULT_PERMISSION_CLASSES",
    "BACKEND",
}


def perform_import(value: Any, setting_name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return import_string(value)
        except ImportError as exc:
            raise RealtimeConfigError(
                f"Could not import {value!r} for REALTIME[{setting_name!r}]: {exc}"
            ) from exc
    if isinstance(value, (list, tuple)):
        return [perform_import(item, setting_name) for item in value]
    return value


class RealtimeSettings:
    """Attribute access to ``settings.REALTIME`` with defaults filled in."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        return getattr(settings, "REALTIME", None) or {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid REALTIME setting: {name!r}")
        try:
            return self._cache[name]
        except KeyError:
            pass
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in self.user_settings:
            # Caught here too: daphne and uvicorn run no system checks.
            problem = type_error(name, value)
            if problem is not None:
                raise RealtimeConfigError(problem + " See docs/settings.md.")
        if name in IMPORT_STRINGS:
            value = perform_import(value, name)
        self._cache[name] = value
        return value

    def reload(self) -> None:
        self._cache.clear()


realtime_settings = RealtimeSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting in ("REALTIME", "CHANNEL_LAYERS", "DEBUG", "ALLOWED_HOSTS"):
        realtime_settings.reload()


setting_changed.connect(_reload)
