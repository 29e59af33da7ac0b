"""Installed server versions, compared against the ranges each writer supports."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

Release = tuple[int, ...]


def installed(distribution: str) -> Release | None:
    """The numeric release of an installed distribution: "0.35.0rc1" -> (0, 35, 0)."""
    try:
        text = version(distribution)
    except PackageNotFoundError:
        return None
    found = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(part) for part in found.group().split(".")) if found else None


def out_of_range(distribution: str, oldest: Release, before: Release) -> str | None:
    """Why the installed ``distribution`` is not in [oldest, before); None if it is."""
    found = installed(distribution)
    if found is not None and oldest <= found < before:
        return None
    have = "not installed" if found is None else ".".join(map(str, found))
    return (
        f"{distribution} {have} is outside the supported range "
        f">={'.'.join(map(str, oldest))},<{'.'.join(map(str, before))}"
    )
