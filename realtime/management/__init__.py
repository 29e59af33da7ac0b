"""Management commands of realtime (``realtime_*``)."""

from __future__ import annotations

from django.core.management.base import CommandError

from realtime.exceptions import BadEnvelope
from realtime.groups import validate_group_name


def group_argument(value: str) -> str:
    """Return ``value`` if it is a valid group name, else raise CommandError."""
    try:
        return validate_group_name(value)
    except BadEnvelope as error:
        raise CommandError(error.detail) from None
