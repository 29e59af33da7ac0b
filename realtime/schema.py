"""The event registry: every event type, its versions, payload serializer and upgraders.

Events are declared with ``@realtime.event("chat.message", version=2)`` on a DRF
serializer. Incoming frames are validated before a handler runs; outgoing payloads are
validated by ``notify()``. Consecutive versions are bridged by upgraders (old to new,
for what old clients send) and downgraders (new to old, for what old clients receive).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from realtime.exceptions import RealtimeConfigError, UnknownType, ValidationFailed

Direction = Literal["client", "server", "both"]
DIRECTIONS = ("client", "server", "both")
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$|^[a-z][a-z0-9_]*$")
Converter = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class EventSpec:
    """One registered (type, version) pair."""

    type: str
    version: int
    direction: str
    serializer_class: type
    description: str = ""
    origin: str = field(default="", compare=False)

    def accepts_from_client(self) -> bool:
        return self.direction in ("client", "both")

    def sent_by_server(self) -> bool:
        return self.direction in ("server", "both")

    def validate(self, data: Any, *, outgoing: bool = False) -> dict[str, Any]:
        """Return validated data or raise ValidationFailed with DRF's field errors."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValidationFailed(
                f"data of {self.type} v{self.version} must be an object, "
                f"got {type(data).__name__}",
                errors={"non_field_errors": ["Expected an object."]},
            )
        serializer = self.serializer_class(data=data)
        if not serializer.is_valid():
            raise ValidationFailed(
                f"invalid data for {self.type} v{self.version}",
                errors=_plain(serializer.errors),
            )
        # Outgoing: what the caller gave, once it is known to be valid (read-only
        # fields such as a server-set author must survive); orjson encodes it.
        return dict(data) if outgoing else dict(serializer.validated_data)


def _plain(errors: Any) -> Any:
    if isinstance(errors, dict):
        return {key: _plain(value) for key, value in errors.items()}
    if isinstance(errors, list):
        return [_plain(value) for value in errors]
    return str(errors)


class Registry:
    """All declared events; one instance, ``realtime.schema.registry``."""

    def __init__(self) -> None:
        self.events: dict[str, dict[int, EventSpec]] = {}
        self.upgraders: dict[tuple[str, int], Converter] = {}
        self.downgraders: dict[tuple[str, int], Converter] = {}

    def register(self, spec: EventSpec) -> None:
        if not isinstance(spec.type, str) or not TYPE_RE.match(spec.type):
            raise RealtimeConfigError(
                f"event type must be lowercase dotted words such as 'chat.message', "
                f"got {spec.type!r}"
            )
        if spec.type.startswith("rt.") or spec.type == "rt":
            raise RealtimeConfigError(
                f"event type {spec.type!r}: the 'rt.' prefix is reserved for the protocol"
            )
        if not isinstance(spec.version, int) or spec.version < 1:
            raise RealtimeConfigError(
                f"event {spec.type!r}: version must be an int >= 1, got {spec.version!r}"
            )
        if spec.direction not in DIRECTIONS:
            raise RealtimeConfigError(
                f"event {spec.type!r}: direction must be one of {DIRECTIONS}, "
                f"got {spec.direction!r}"
            )
        versions = self.events.setdefault(spec.type, {})
        existing = versions.get(spec.version)
        if existing is not None and existing.origin != spec.origin:
            raise RealtimeConfigError(
                f"event {spec.type!r} version {spec.version} is registered twice: "
                f"{existing.origin} and {spec.origin}"
            )
        versions[spec.version] = spec

    def unregister(self, type: str, version: int | None = None) -> None:
        """Remove a registration (for tests)."""
        if version is None:
            self.events.pop(type, None)
        else:
            self.events.get(type, {}).pop(version, None)

    def __contains__(self, type: str) -> bool:
        return bool(self.events.get(type))

    def versions(self, type: str) -> list[int]:
        return sorted(self.events.get(type, {}))

    def latest(self, type: str) -> int:
        versions = self.events.get(type)
        if not versions:
            raise UnknownType(f"unknown event type {type[:100]!r}")
        return max(versions)

    def get(self, type: str, version: int | None = None) -> EventSpec:
        versions = self.events.get(type)
        if not versions:
            raise UnknownType(f"unknown event type {type[:100]!r}")
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise UnknownType(
                f"event {type!r}: expected version in {set(sorted(versions))}, "
                f"got {version}"
            ) from None

    def upgrade(
        self, type: str, data: dict, from_version: int, to_version: int
    ) -> dict:
        """Convert ``data`` from an old version to a newer one, step by step."""
        for version in range(from_version, to_version):
            converter = self.upgraders.get((type, version))
            if converter is None:
                raise ValidationFailed(
                    f"event {type!r}: no upgrader from v{version} to v{version + 1}"
                )
            data = converter(dict(data))
        return data

    def downgrade(
        self, type: str, data: dict, from_version: int, to_version: int
    ) -> dict:
        """Convert ``data`` from a newer version to an older one, or raise LookupError."""
        for version in range(from_version, to_version, -1):
            converter = self.downgraders.get((type, version))
            if converter is None:
                raise LookupError(f"event {type!r}: no downgrader from v{version}")
            data = converter(dict(data))
        return data

    def check(self) -> list[str]:
        """Problems that make the registry unusable (reported by system checks)."""
        problems = []
        for type, versions in self.events.items():
            ordered = sorted(versions)
            for older, newer in pairwise(ordered):
                client = versions[older].accepts_from_client()
                if (
                    client
                    and (type, older) not in self.upgraders
                    and newer == older + 1
                ):
                    problems.append(
                        f"event {type!r} accepts v{older} from clients but has no "
                        f"upgrader to v{newer}"
                    )
        return problems


registry = Registry()


def event(
    type: str,
    *,
    version: int = 1,
    direction: Direction = "both",
    description: str | None = None,
) -> Callable[[type], type]:
    """Class decorator that registers a DRF serializer as the payload of an event."""

    def decorator(serializer_class: type) -> type:
        registry.register(
            EventSpec(
                type=type,
                version=version,
                direction=direction,
                serializer_class=serializer_class,
                description=description or (serializer_class.__doc__ or "").strip(),
                origin=f"{serializer_class.__module__}.{serializer_class.__qualname__}",
            )
        )
        return serializer_class

    return decorator


def upgrader(type: str, *, from_version: int) -> Callable[[Converter], Converter]:
    """Register ``fn(data) -> data`` that turns v``from_version`` into the next version."""

    def decorator(fn: Converter) -> Converter:
        registry.upgraders[(type, from_version)] = fn
        return fn

    return decorator


def downgrader(type: str, *, from_version: int) -> Callable[[Converter], Converter]:
    """Register ``fn(data) -> data`` that turns v``from_version`` into the previous one."""

    def decorator(fn: Converter) -> Converter:
        registry.downgraders[(type, from_version)] = fn
        return fn

    return decorator
