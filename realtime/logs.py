"""Logging helpers: connection context on every line, and a JSON formatter.

``consumer.log`` is a ``ConnectionLog``: each record it emits carries
``connection_id`` and ``user_id`` attributes (read when the line is logged, so a
user who authenticated with ``rt.auth`` appears from then on). ``ContextFilter``
gives every other record the same attributes (``"-"``), so a text format may name
them; ``JSONFormatter`` writes one JSON object per line. See docs/operations.md.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import orjson

CONTEXT = ("connection_id", "user_id")
# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class ConnectionLog(logging.LoggerAdapter):
    """A logger bound to one connection: adds its connection id and user id."""

    def __init__(self, logger: logging.Logger, consumer: Any) -> None:
        super().__init__(logger, {})
        self.consumer = consumer

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        user = getattr(self.consumer, "user", None)
        user_id = (
            str(user.pk) if user is not None and user.is_authenticated else "anonymous"
        )
        kwargs["extra"] = {
            "connection_id": getattr(self.consumer, "connection_id", "-"),
            "user_id": user_id,
            **(kwargs.get("extra") or {}),
        }
        return msg, kwargs


class ContextFilter(logging.Filter):
    """Give records that are not about a connection ``connection_id``/``user_id`` "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in CONTEXT:
            if not hasattr(record, name):
                setattr(record, name, "-")
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()
