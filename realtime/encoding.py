"""JSON encoding of everything realtime sends: ``dumps`` (orjson, Django's types).

A leaf module: the frames of every layer (published events, replies, the inbox's
stored copy) are encoded here, so they all represent values the same way.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.utils.duration import duration_iso_string
from django.utils.functional import Promise

_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # orjson handles datetime, date, time, UUID and dataclasses itself; the rest
    # follows DjangoJSONEncoder (and DRF's output) so payloads look the same.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return duration_iso_string(value)
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Encode ``value`` as JSON (dates, UUIDs, Decimals, lazy strings included)."""
    return orjson.dumps(value, default=_default, option=_ORJSON_OPTIONS)
