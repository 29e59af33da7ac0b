"""Prometheus metrics (``pip install 'django-realtime-events[metrics]'``).

Every function here is a no-op when prometheus-client is not installed. Label values
are bounded: event types come from the registry (anything else is ``"other"``), close
codes and error codes from a small set, so a hostile client cannot create series.
Fan-out is counted once per dispatch with the number of sockets, never per socket.

With several processes per machine set ``PROMETHEUS_MULTIPROC_DIR`` (see
docs/operations.md): the metrics view then aggregates every process's files.
"""

from __future__ import annotations

import atexit
import hmac
import ipaddress
import os
import time
from typing import Any

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
)

from realtime.connection import Connection
from realtime.exceptions import ERROR_CODES
from realtime.schema import registry
from realtime.settings import realtime_settings

prom: Any
try:
    import prometheus_client as prom
except ImportError:  # pragma: no cover - exercised by the no-op test
    prom = None

PROTOCOL_TYPES = frozenset(
    {
        "rt.welcome",
        "rt.auth",
        "rt.hello",
        "rt.subscribe",
        "rt.unsubscribe",
        "rt.presence",
        "rt.ping",
        "rt.pong",
        "rt.ack",
        "rt.error",
        "rt.presence.join",
        "rt.presence.leave",
    }
)
# Reasons an authentication failed, matched against the (server-written) detail.
AUTH_REASONS = (
    ("ticket expired", "ticket_expired"),
    ("already used", "ticket_reused"),
    ("ticket", "ticket_invalid"),
    ("auth timeout", "auth_timeout"),
    ("needs data.token", "token_missing"),
    ("session", "session_invalid"),
    ("inactive", "user_inactive"),
    ("no longer exists", "user_inactive"),
    ("not provided", "credentials_required"),
    ("token", "token_invalid"),
)
MAX_CONSUMER_CLASSES = 50

enabled = prom is not None
now = time.perf_counter


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


if prom is not None:
    CONNECTIONS_OPEN = prom.Gauge(
        "realtime_connections_open",
        "WebSocket connections currently open, per consumer class.",
        ["consumer"],
        multiprocess_mode="livesum",
    )
    CONNECTS = prom.Counter(
        "realtime_connects",
        "WebSocket handshakes handled, per consumer class.",
        ["consumer"],
    )
    DISCONNECTS = prom.Counter(
        "realtime_disconnects",
        "Closed connections by close code (4429 rate limit, 4507 slow consumer, ...).",
        ["consumer", "code"],
    )
    FRAMES_IN = prom.Counter(
        "realtime_frames_in", "Frames received from clients, by type.", ["type"]
    )
    FRAMES_OUT = prom.Counter(
        "realtime_frames_out",
        "Frames sent to clients, by type (group events counted per socket).",
        ["type"],
    )
    ERRORS = prom.Counter("realtime_errors", "rt.error frames sent, by code.", ["code"])
    AUTH_FAILURES = prom.Counter(
        "realtime_auth_failures", "Connections closed with 4401, by reason.", ["reason"]
    )
    NOTIFY = prom.Counter(
        "realtime_notify", "Events published by notify() and friends.", ["type"]
    )
    NOTIFY_SECONDS = prom.Histogram(
        "realtime_notify_seconds",
        "Time to publish one event (history append + channel-layer send).",
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
    )
    DISPATCHES = prom.Counter(
        "realtime_dispatches",
        "Group events that reached this process's hub with local subscribers.",
    )
    DELIVERIES = prom.Counter(
        "realtime_deliveries",
        "Sockets a group event was handed to by this process's hub (fan-out).",
    )
    RECOVERIES = prom.Counter(
        "realtime_recoveries",
        "Subscriptions with since: recovered from history or not.",
        ["outcome"],
    )
    REPAIRS = prom.Counter(
        "realtime_gap_repairs",
        "Live gaps in a group's seqs filled from history on this process.",
    )
    RESETS = prom.Counter(
        "realtime_resets",
        "rt.reset frames sent: a socket told it missed events, by reason.",
        ["reason"],
    )
    LOSSES = prom.Counter(
        "realtime_events_lost",
        "Events that could not reach every subscriber (the subscribers are told), "
        "by reason.",
        ["reason"],
    )
    PRESENCE = prom.Counter(
        "realtime_presence_changes",
        "Users joining or leaving a group's presence (first/last connection).",
        ["change"],
    )
    if _multiprocess():
        from prometheus_client import multiprocess

        # Drop this process's live gauges when it exits, so livesum stays right.
        atexit.register(multiprocess.mark_process_dead, os.getpid())

_type_labels: dict[str, str] = {}
_consumer_labels: dict[type, str] = {}
_connection_metrics: dict[str, tuple[Any, Any]] = {}


def type_label(type_: str) -> str:
    """A bounded label for an event type: registered, rt.*, else "other"."""
    label = _type_labels.get(type_)
    if label is None:
        if type_ in PROTOCOL_TYPES or type_ in registry:
            label = type_
            _type_labels[type_] = label  # bounded: only known types are cached
        else:
            label = "other"
    return label


def code_label(code: int | None) -> str:
    if code is None:
        return "none"
    if 1000 <= code <= 1015 or 3000 <= code <= 4999:
        return str(code)
    return "other"


def auth_reason(detail: str) -> str:
    text = detail.lower()
    for needle, reason in AUTH_REASONS:
        if needle in text:
            return reason
    return "other"


def _consumer_label(consumer: Connection) -> str:
    cls = type(consumer)
    label = _consumer_labels.get(cls)
    if label is None:
        label = (
            cls.__qualname__
            if len(_consumer_labels) < MAX_CONSUMER_CLASSES
            else "other"
        )
        _consumer_labels[cls] = label
    return label


# -- instrumentation points (each one line at its call site) --------------------------


def connection_opened(consumer: Connection) -> None:
    if enabled:
        connects, open_ = _connection_children(_consumer_label(consumer))
        connects.inc()
        open_.inc()


def connection_closed(consumer: Connection) -> None:
    if enabled:
        label = _consumer_label(consumer)
        _connection_children(label)[1].dec()
        DISCONNECTS.labels(label, code_label(consumer.close_code)).inc()


def _connection_children(label: str) -> tuple[Any, Any]:
    # CONNECTS and CONNECTIONS_OPEN for a consumer label, looked up once per label
    # (labels() costs a few microseconds, twice per connection); as bounded as the
    # consumer labels.
    children = _connection_metrics.get(label)
    if children is None:
        children = (CONNECTS.labels(label), CONNECTIONS_OPEN.labels(label))
        _connection_metrics[label] = children
    return children


def closing(error: Any, code: int) -> None:
    """A server-side close: counts authentication failures (4401) by reason."""
    if enabled and code == 4401:
        AUTH_FAILURES.labels(auth_reason(getattr(error, "detail", "") or "")).inc()


def _child(metric: Any, cache: dict[str, Any], type_: str) -> Any:
    # labels() costs a few microseconds; a cached child is one locked add. Only
    # known types are cached, so the cache is as bounded as the labels.
    child = cache.get(type_)
    if child is None:
        label = type_label(type_)
        child = metric.labels(label)
        if label != "other":
            cache[type_] = child
    return child


_in_children: dict[str, Any] = {}
_out_children: dict[str, Any] = {}
_notify_children: dict[str, Any] = {}


def frame_in(type_: str) -> None:
    if enabled:
        _child(FRAMES_IN, _in_children, type_).inc()


def frame_out(type_: str, count: int = 1) -> None:
    if enabled:
        _child(FRAMES_OUT, _out_children, type_).inc(count)


def error(code: str) -> None:
    if enabled:
        ERRORS.labels(code if code in ERROR_CODES else "other").inc()


def published(type_: str, started: float) -> None:
    """One event published; ``started`` is the ``time.perf_counter()`` before it."""
    if enabled:
        NOTIFY_SECONDS.observe(time.perf_counter() - started)
        _child(NOTIFY, _notify_children, type_).inc()
        if type_ == "rt.presence.join":
            PRESENCE.labels("join").inc()
        elif type_ == "rt.presence.leave":
            PRESENCE.labels("leave").inc()


def fanout(type_: str, sockets: int) -> None:
    """One hub dispatch to ``sockets`` local subscribers (counted once, not per socket)."""
    if enabled:
        DISPATCHES.inc()
        DELIVERIES.inc(sockets)
        _child(FRAMES_OUT, _out_children, type_).inc(sockets)


def repaired() -> None:
    """A live gap of one group was filled from history."""
    if enabled:
        REPAIRS.inc()


def reset(reason: str) -> None:
    """A socket was sent ``rt.reset`` (it missed events it cannot get back)."""
    if enabled:
        RESETS.labels(reason).inc()


def lost(reason: str, count: int = 1) -> None:
    """Events that did not reach every subscriber (e.g. a layer channel over capacity)."""
    if enabled and count:
        LOSSES.labels(reason).inc(count)


def recovery(since: int | None, recovered: bool) -> None:
    if enabled and since is not None:
        RECOVERIES.labels("recovered" if recovered else "not_recovered").inc()


# -- exposition -----------------------------------------------------------------------


def render() -> tuple[bytes, str]:
    """The metrics in the Prometheus text format: (body, content type)."""
    if prom is None:
        raise RuntimeError(
            "prometheus-client is not installed: pip install 'django-realtime-events[metrics]'"
        )
    if _multiprocess():
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST
    return prom.generate_latest(), prom.CONTENT_TYPE_LATEST


# Headers a reverse proxy adds: a relayed request never passes the address check,
# since behind a local proxy every request would come from 127.0.0.1.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def allowed(request: HttpRequest) -> bool:
    """Return True if ``request`` may read the metrics (see METRICS_* settings)."""
    token = realtime_settings.METRICS_TOKEN
    if token:
        offered = request.headers.get("Authorization", "")
        if hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
            return True
    if any(name in request.META for name in PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in realtime_settings.METRICS_ALLOWED_IPS or ()
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET realtime/metrics/``: the Prometheus text format, when allowed."""
    if not realtime_settings.METRICS_ENABLED:
        raise Http404("metrics are disabled (REALTIME['METRICS_ENABLED'])")
    if not allowed(request):
        return HttpResponseForbidden("metrics: address or token not allowed\n")
    if prom is None:
        return HttpResponse(
            "prometheus-client is not installed: "
            "pip install 'django-realtime-events[metrics]'\n",
            status=501,
            content_type="text/plain",
        )
    body, content_type = render()
    return HttpResponse(body, content_type=content_type)
