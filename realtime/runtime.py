"""What runs for a serving process, per event loop: the hub and the services' jobs.

A connection's first step is ``await runtime.start()``: it starts the loop's hub (one
channel-layer subscription, fan-out, continuity checks; realtime.hub) and, once per
hub, the periodic jobs of the services: connection deadlines (realtime.deadlines),
presence leases (realtime.presence), credential re-checks (realtime.auth), the
process heartbeat and the SIGTERM handler (realtime.processes). The jobs run as the
hub's tasks, so ``shutdown_hub()`` (tests, or the end of the loop) stops them all.
"""

from __future__ import annotations

import weakref

from realtime import auth, deadlines, presence, processes
from realtime.hub import Hub, Job, get_hub, shutdown_hub

__all__ = ["JOBS", "add_job", "start", "stop"]

#: The periodic jobs every hub runs, each ``job(hub)``.
JOBS: tuple[Job, ...] = (
    deadlines.tick_connections,
    processes.heartbeat,
    presence.renew_leases,
    auth.revalidate,
)

_running: weakref.WeakSet[Hub] = weakref.WeakSet()
# Jobs of optional apps (realtime.collab), added when they load.
_added: list[Job] = []


def add_job(job: Job) -> None:
    """Run ``job(hub)`` in every hub started from now on, like the ``JOBS``."""
    if job not in _added:
        _added.append(job)


async def start() -> Hub:
    """The running loop's hub, started with this process's jobs on first use."""
    hub = await get_hub()
    if hub not in _running:  # no await since the look-up: one caller starts them
        _running.add(hub)
        for job in (*JOBS, *_added):
            hub.run(job)
        processes.install_shutdown(hub)
    return hub


async def stop() -> None:
    """Stop the running loop's hub and its jobs."""
    await shutdown_hub()
