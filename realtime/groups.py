"""Group names: Channels' naming rule, subscription patterns and per-user groups."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from realtime.exceptions import BadEnvelope, PermissionDenied
from realtime.settings import realtime_settings

# Channels' own rule (channels.layers.BaseChannelLayer.group_name_regex), checked early
# so users get a clear message instead of a TypeError from deep inside the layer.
# Always with fullmatch: ``$`` also matches before a final newline.
GROUP_NAME_RE = re.compile(r"[a-zA-Z\d\-_.]{1,99}")
_PLACEHOLDER_RE = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
# A placeholder matches one dot-free segment so "room.{id}" never admits "room.1.x".
_SEGMENT = r"[a-zA-Z\d\-_]+"
_SEGMENT_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
)


def validate_group_name(group: Any) -> str:
    """Return ``group`` if it is a valid group name, else raise BadEnvelope."""
    if not isinstance(group, str):
        raise BadEnvelope(f"group must be a string, got {type(group).__name__}")
    if not GROUP_NAME_RE.fullmatch(group):
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
        self.regex = re.compile(regex)

    def match(self, group: str) -> dict[str, str] | None:
        found = self.regex.fullmatch(group)
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
    pk = getattr(user_or_pk, "pk", user_or_pk)
    return realtime_settings.USER_GROUP.format(pk=pk)


def is_personal_group(group: str) -> bool:
    """Return True if ``group`` is some user's personal group (USER_GROUP for any pk)."""
    return GroupPattern(realtime_settings.USER_GROUP).match(group) is not None


def check_not_personal(group: str) -> None:
    """Raise PermissionDenied if ``group`` is a personal group: only the server joins
    those, whatever a consumer's subscription patterns would admit."""
    if is_personal_group(group):
        raise PermissionDenied(f"group {group!r} is joined by the server only")


def patterns_overlap(pattern: str, other: str) -> bool:
    """Return True if some group name matches both subscription patterns.

    Each pattern is a chain of literal characters and placeholders (one or more
    segment characters), so the product of the two chains is searched directly.
    """
    first, second = _tokens(pattern), _tokens(other)
    todo, seen = [(0, 0)], set()
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        i, j = state
        if i == len(first) and j == len(second):
            return True
        for chars, next_i in _moves(first, i):
            for other_chars, next_j in _moves(second, j):
                if chars & other_chars:
                    todo.append((next_i, next_j))
    return False


@functools.lru_cache(maxsize=256)
def _tokens(pattern: str) -> tuple[tuple[frozenset[str], bool], ...]:
    # (characters it accepts, whether it repeats): one per literal or placeholder.
    tokens: list[tuple[frozenset[str], bool]] = []
    for index, part in enumerate(_PLACEHOLDER_RE.split(pattern)):
        if index % 2:
            tokens.append((_SEGMENT_CHARS, True))
        else:
            tokens.extend((frozenset(char), False) for char in part)
    return tuple(tokens)


def _moves(
    tokens: tuple[tuple[frozenset[str], bool], ...], position: int
) -> list[tuple[frozenset[str], int]]:
    # From ``position`` (tokens consumed so far): take the next token, or one more
    # character of the placeholder just taken.
    moves = []
    if position < len(tokens):
        moves.append((tokens[position][0], position + 1))
    if position and tokens[position - 1][1]:
        moves.append((tokens[position - 1][0], position))
    return moves
