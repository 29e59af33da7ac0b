"""Which groups keep history (seq numbers and a bounded log) and how to read it."""

from __future__ import annotations

from fnmatch import fnmatchcase

from realtime.backends import get_backend
from realtime.backends.base import HistoryRead
from realtime.settings import realtime_settings


def keeps_history(group: str) -> bool:
    return any(fnmatchcase(group, p) for p in realtime_settings.HISTORY_GROUPS)


async def read_since(group: str, since: int, epoch: str | None) -> HistoryRead:
    """Frames of ``group`` after ``since`` (see BaseBackend.since)."""
    return await get_backend().since(group, since, epoch)


async def position(group: str) -> tuple[int, str | None]:
    return await get_backend().position(group)
