"""This process's own counters, read by the dashboard.

Each daphne process counts for itself; the dashboard shows one line per process.
"""

import os
import socket
import time

PROCESS = f"{socket.gethostname()}:{os.getpid()}"
STARTED = time.monotonic()


class Counters:
    connections = 0  # open, authenticated WebSocket connections in this process
    viewers = 0  # of which on the dashboard
    messages = 0  # chat messages stored by this process


counters = Counters()


def library_figures() -> dict | None:
    """realtime's own Prometheus metrics for this process, when prometheus-client is
    installed (``realtime.metrics.enabled``); None otherwise."""
    try:
        from realtime import metrics
    except ImportError:
        return None
    if not getattr(metrics, "enabled", False):
        return None
    return {
        "connections": _total(metrics.CONNECTIONS_OPEN, "realtime_connections_open"),
        "deliveries": _total(metrics.DELIVERIES, "realtime_deliveries_total"),
    }


def _total(metric, sample_name: str) -> float:
    return sum(
        sample.value
        for family in metric.collect()
        for sample in family.samples
        if sample.name == sample_name
    )
