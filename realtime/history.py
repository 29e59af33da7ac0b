"""Which groups keep history (seq numbers and a bounded log) and how to read it."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from django.core.signals import setting_changed

from realtime.backends import get_backend
from realtime.backends.base import HistoryRead
from realtime.settings import realtime_settings


def keeps_history(group: str) -> bool:
    keeps = _known.get(group)
    if keeps is None:
        keeps = any(fnmatchcase(group, p) for p in realtime_settings.HISTORY_GROUPS)
        if len(_known) >= 4096:  # many groups (one per user): start over
            _known.clear()
        _known[group] = keeps
    return keeps


_known: dict[str, bool] = {}


def _forget(**kwargs: Any) -> None:
    # HISTORY_GROUPS may have changed (override_settings), like the fast path's.
    _known.clear()


setting_changed.connect(_forget)


async def read_since(group: str, since: int, epoch: str | None) -> HistoryRead:
    """Frames of ``group`` after ``since`` (see BaseBackend.since)."""
    return await get_backend().since(group, since, epoch)


async def position(group: str) -> tuple[int, str | None]:
    return await get_backend().position(group)
