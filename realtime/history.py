"""Which groups keep history (seq numbers and a bounded log) and how to read it."""

from __future__ import annotations

from fnmatch import fnmatchcase

from realtime.backends import get_backend
from realtime.backends.base import HistoryRead
from realtime.settings import realtime_settings


def keeps_history(group: str) -> bool:
    patterns = realtime_settings.HISTORY_GROUPS
    known = _known.get(group)
    if known is not None and known[0] is patterns:
        return known[1]
    keeps = any(fnmatchcase(group, p) for p in patterns)
    if len(_known) >= 4096:  # many groups (one per user): start over
        _known.clear()
    # Keyed by the patterns object too: a settings change brings a new one.
    _known[group] = (patterns, keeps)
    return keeps


_known: dict[str, tuple[object, bool]] = {}


async def read_since(group: str, since: int, epoch: str | None) -> HistoryRead:
    """Frames of ``group`` after ``since`` (see BaseBackend.since)."""
    return await get_backend().since(group, since, epoch)


async def position(group: str) -> tuple[int, str | None]:
    return await get_backend().position(group)
