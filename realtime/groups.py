"""Group names: Channels' naming rule, subscription patterns and per-user groups."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from realtime.exceptions import BadEnvelope

# Channels' own rule (channels.layers.BaseChannelLayer.group_name_regex), checked early
# so users get a clear message instead of a TypeError from deep inside the layer.
GROUP_NAME_RE = re.compile(r"^[a-zA-Z\d\-_.]{1,99}$")
_PLACEHOLDER_RE = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
# A placeholder matches one dot-free segment so "room.{id}" never admits "room.1.x".
_SEGMENT = r"[a-zA-Z\d\-_]+"


def validate_group_name(group: Any) -> str:
    """Return ``group`` if it is a valid group name, else raise BadEnvelope."""
    if not isinstance(group, str):
        raise BadEnvelope(f"group must be a string, got {type(group).__name__}")
    if not GROUP_NAME_RE.match(group):
        raise BadEnvelope(
            "group must be 1-99 ASCII letters, digits, '-', '_' or '.', "
            f"got {group[:40]!r}{'...' if len(group) > 40 else ''}"
        )
    return group


class GroupPattern:
    """A subscription pattern such as ``"room.{room_id}"``."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        parts = _PLACEHOLDER_RE.split(pattern)
        regex = ""
        for index, part in enumerate(parts):
            regex += f"(?P<{part}>{_SEGMENT})" if index % 2 else re.escape(part)
        self.regex = re.compile(f"^{regex}$")

    def match(self, group: str) -> dict[str, str] | None:
        found = self.regex.match(group)
        return found.groupdict() if found else None

    def __repr__(self) -> str:
        return f"GroupPattern({self.pattern!r})"


def compile_patterns(patterns: Mapping[str, Any]) -> list[tuple[GroupPattern, Any]]:
    return [(GroupPattern(pattern), value) for pattern, value in patterns.items()]


def match_patterns(
    compiled: Iterable[tuple[GroupPattern, Any]], group: str
) -> tuple[dict[str, str], Any] | None:
    for pattern, value in compiled:
        params = pattern.match(group)
        if params is not None:
            return params, value
    return None


def user_group(user_or_pk: Any) -> str:
    """Return the personal group of a user (every connection of that user joins it)."""
    from realtime.settings import realtime_settings

    pk = getattr(user_or_pk, "pk", user_or_pk)
    return realtime_settings.USER_GROUP.format(pk=pk)
