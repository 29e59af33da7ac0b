"""realtime.runtime: the loop's hub and, once per hub, the services' periodic jobs."""

from __future__ import annotations

import asyncio

from realtime import runtime
from realtime.backends import get_backend
from realtime.backends.registry import PROCESS_ID
from realtime.hub import get_hub


def job_names(hub) -> list[str]:
    return sorted(task.get_coro().__qualname__ for task in hub._tasks)


async def test_each_job_runs_once_per_hub_however_many_connections_start():
    first, second = await asyncio.gather(runtime.start(), runtime.start())
    assert first is second is await get_hub()
    assert await runtime.start() is first
    names = job_names(first)
    for job in runtime.JOBS:
        assert names.count(job.__qualname__) == 1, names


async def test_the_jobs_are_the_hubs_tasks_and_stop_with_it():
    hub = await runtime.start()
    async with asyncio.timeout(5):  # the heartbeat's first beat registers the process
        while not any(p["id"] == PROCESS_ID for p in await get_backend().processes()):
            await asyncio.sleep(0.01)
    tasks = list(hub._tasks)
    await runtime.stop()
    assert all(task.done() for task in tasks)
    # The heartbeat unregisters the process when it is cancelled.
    assert not any(p["id"] == PROCESS_ID for p in await get_backend().processes())


async def test_a_new_hub_gets_the_jobs_again():
    old = await runtime.start()
    await runtime.stop()
    new = await runtime.start()
    assert new is not old
    assert set(job_names(new)) >= {job.__qualname__ for job in runtime.JOBS}
