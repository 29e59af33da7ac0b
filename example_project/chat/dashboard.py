"""The dashboard's push loop: one asyncio task per process, alive while it has viewers.

The first dashboard connection starts it; it publishes this process's figures to the
``dashboard`` group once a second and ends by itself when the last viewer has left.
With several processes behind Redis, every process that has viewers reports, and each
viewer sees them all (the group spans processes).
"""

import asyncio
import logging
import time

import realtime
from example_project.chat.metrics import PROCESS, STARTED, counters, library_figures

logger = logging.getLogger(__name__)
GROUP = "dashboard"
INTERVAL = 1.0

_task: asyncio.Task | None = None


def viewer_joined() -> None:
    global _task
    counters.viewers += 1
    if _task is None or _task.done():
        _task = asyncio.get_running_loop().create_task(_push_loop())


def viewer_left() -> None:
    counters.viewers -= 1  # the loop notices and ends


async def _push_loop() -> None:
    loop = asyncio.get_running_loop()
    figures = library_figures()
    last_messages, last_at = counters.messages, loop.time()
    last_deliveries = figures["deliveries"] if figures else 0
    next_at = loop.time()
    while counters.viewers > 0:
        now = loop.time()
        elapsed = max(now - last_at, 1e-3)
        rate = (counters.messages - last_messages) / elapsed
        # realtime.metrics (prometheus-client) when installed, else our own counter.
        figures = library_figures()
        connections = counters.connections
        deliveries_rate = 0.0
        if figures is not None:
            connections = int(figures["connections"])
            deliveries_rate = (figures["deliveries"] - last_deliveries) / elapsed
            last_deliveries = figures["deliveries"]
        last_messages, last_at = counters.messages, now
        try:
            await realtime.anotify(
                GROUP,
                "dashboard.tick",
                {
                    "process": PROCESS,
                    "at": time.time(),
                    "connections": connections,
                    "viewers": counters.viewers,
                    "messages": counters.messages,
                    "messages_per_second": round(rate, 2),
                    "deliveries_per_second": round(max(deliveries_rate, 0.0), 2),
                    "uptime": round(time.monotonic() - STARTED, 1),
                },
                history=False,
            )
        except Exception:
            logger.exception("dashboard tick failed")
        # Tick on a fixed schedule rather than drift by the send time.
        next_at += INTERVAL
        await asyncio.sleep(max(0.0, next_at - loop.time()))
