"""The event registry: every event type, its versions, payload serializer and upgraders.

Events are declared with ``@realtime.event("chat.message", version=2)`` on a DRF
serializer. Incoming frames are validated before a handler runs; outgoing payloads are
validated by ``notify()``. Consecutive versions are bridged by upgraders (old to new,
for what old clients send) and downgraders (new to old, for what old clients receive).
"""

from __future__ import annotations

import contextlib
import inspect
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from rest_framework.exceptions import ValidationError as FieldErrors

from realtime.exceptions import RealtimeConfigError, UnknownType, ValidationFailed
from realtime.settings import require_app_installed

Direction = Literal["client", "server", "both"]
DIRECTIONS = ("client", "server", "both")
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
Converter = Callable[[dict[str, Any]], dict[str, Any]]
# The builtin, under a name that the ``type`` field and parameters do not shadow.
Class = type


class NoDowngrade(LookupError):
    """An event cannot be turned into a version that a client understands."""


class Problem(str):
    """A registry problem (a message) with a ``hint`` on how to fix it."""

    hint: str | None = None

    def __new__(cls, message: str, hint: str | None = None) -> Problem:
        problem = super().__new__(cls, message)
        problem.hint = hint
        return problem


@dataclass
class EventSpec:
    """One registered (type, version) pair."""

    type: str
    version: int
    direction: str
    serializer_class: Class
    description: str = ""
    origin: str = field(default="", compare=False)
    # One serializer per thread, reused: building one deep-copies every declared
    # field, which cost notify() more than its Redis round trip.
    _serializers: threading.local = field(
        default_factory=threading.local, init=False, repr=False, compare=False
    )

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
        serializer = self._serializer()
        serializer.initial_data = data  # validate() methods may read it, as usual
        try:
            validated = serializer.run_validation(data)
        except FieldErrors as exc:
            raise ValidationFailed(
                f"invalid data for {self.type} v{self.version}",
                errors=_plain(exc.detail),
            ) from None
        # Outgoing: what the caller gave, once it is known to be valid (read-only
        # fields such as a server-set author must survive); orjson encodes it.
        return dict(data) if outgoing else dict(validated)

    def _serializer(self) -> Any:
        serializer = getattr(self._serializers, "instance", None)
        if serializer is None:
            serializer = self._serializers.instance = self.serializer_class()
        return serializer


def _plain(errors: Any) -> Any:
    if isinstance(errors, dict):
        # ListField and DictField errors are keyed by int index; JSON needs str.
        return {str(key): _plain(value) for key, value in errors.items()}
    if isinstance(errors, list):
        if any(isinstance(value, dict) for value in errors):
            # many=True items: DRF before 3.18 lists every item ({} when valid), 3.18
            # keys the failing ones by index; the wire always has the latter.
            return {str(i): _plain(value) for i, value in enumerate(errors) if value}
        return [_plain(value) for value in errors]
    return str(errors)


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"


def _check_type_name(type: Any) -> None:
    if not isinstance(type, str) or not TYPE_RE.match(type) or len(type) > 100:
        raise RealtimeConfigError(
            "event type must be lowercase dotted words such as 'chat.message' "
            f"(letters, digits, '_', at most 100 characters), got {type!r}"
        )
    if type == "rt" or type.startswith("rt."):
        raise RealtimeConfigError(
            f"event type {type!r}: the 'rt.' prefix is reserved for the protocol; "
            "choose another prefix such as your app's name"
        )


def _check_version(type: str, version: Any) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RealtimeConfigError(
            f"event {type!r}: version must be an int >= 1, got {version!r}"
        )


class Registry:
    """All declared events; one instance, ``realtime.schema.registry``."""

    def __init__(self) -> None:
        self.events: dict[str, dict[int, EventSpec]] = {}
        self.upgraders: dict[tuple[str, int], Converter] = {}
        self.downgraders: dict[tuple[str, int], Converter] = {}

    def register(self, spec: EventSpec) -> None:
        """Add ``spec``; raise RealtimeConfigError for a bad or duplicate one."""
        _check_type_name(spec.type)
        _check_version(spec.type, spec.version)
        if spec.direction not in DIRECTIONS:
            raise RealtimeConfigError(
                f"event {spec.type!r}: direction must be one of {DIRECTIONS}, "
                f"got {spec.direction!r}"
            )
        versions = self.events.setdefault(spec.type, {})
        existing = versions.get(spec.version)
        # The same class registering again is a module imported twice, not a clash.
        if existing is not None and existing.origin != spec.origin:
            raise RealtimeConfigError(
                f"event {spec.type!r} version {spec.version} is registered twice: "
                f"{existing.origin} and {spec.origin}; give the newer one "
                f"version={max(versions) + 1}"
            )
        versions[spec.version] = spec

    def add_converter(
        self, kind: str, type: str, from_version: int, fn: Converter
    ) -> None:
        """Register an upgrader or downgrader (``kind``) of ``type``."""
        _check_type_name(type)
        _check_version(type, from_version)
        table = self.upgraders if kind == "upgrader" else self.downgraders
        existing = table.get((type, from_version))
        if existing is not None and _origin(existing) != _origin(fn):
            raise RealtimeConfigError(
                f"{type!r} has two {kind}s from v{from_version}: "
                f"{_origin(existing)} and {_origin(fn)}"
            )
        table[(type, from_version)] = fn

    def unregister(self, type: str, version: int | None = None) -> None:
        """Remove a registration (for tests); without ``version``, the whole type."""
        if version is None:
            self.events.pop(type, None)
            for table in (self.upgraders, self.downgraders):
                for key in [key for key in table if key[0] == type]:
                    del table[key]
        else:
            self.events.get(type, {}).pop(version, None)

    @contextlib.contextmanager
    def temporary(self) -> Iterator[Registry]:
        """Forget every registration made inside the block when it ends (tests)."""
        saved = (
            {type: dict(versions) for type, versions in self.events.items()},
            dict(self.upgraders),
            dict(self.downgraders),
        )
        try:
            yield self
        finally:
            self.events, self.upgraders, self.downgraders = saved

    def __contains__(self, type: str) -> bool:
        return bool(self.events.get(type))

    def __iter__(self) -> Iterator[EventSpec]:
        """Every spec, sorted by type then version."""
        for type in sorted(self.events):
            for version in sorted(self.events[type]):
                yield self.events[type][version]

    def versions(self, type: str) -> list[int]:
        return sorted(self.events.get(type, {}))

    def latest(self, type: str) -> int:
        versions = self.events.get(type)
        if not versions:
            raise UnknownType(f"unknown event type {type[:100]!r}")
        return max(versions)

    def get(self, type: str, version: int | None = None) -> EventSpec:
        """The spec of ``type`` at ``version`` (None: the latest)."""
        versions = self.events.get(type)
        if not versions:
            require_app_installed()
            raise UnknownType(f"unknown event type {type[:100]!r}")
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise UnknownType(
                f"event {type!r}: expected version in {sorted(versions)}, got {version}"
            ) from None

    def upgrade(
        self, type: str, data: dict, from_version: int, to_version: int
    ) -> dict:
        """Convert ``data`` from an old version to a newer one, step by step."""
        steps = [v for v in self.versions(type) if from_version <= v < to_version]
        for version in steps:
            converter = self.upgraders.get((type, version))
            if converter is None:
                raise ValidationFailed(
                    f"event {type!r}: no upgrader from v{version} to a newer version"
                )
            data = converter(dict(data))
        return data

    def downgrade(
        self, type: str, data: dict, from_version: int, to_version: int
    ) -> dict:
        """Convert ``data`` from a newer version to an older one, or raise NoDowngrade."""
        steps = [v for v in self.versions(type) if to_version < v <= from_version]
        for version in reversed(steps):
            converter = self.downgraders.get((type, version))
            if converter is None:
                raise NoDowngrade(f"event {type!r}: no downgrader from v{version}")
            data = converter(dict(data))
        return data

    def negotiate(self, type: str, understood: int) -> int | None:
        """The version of ``type`` sent to a client that understands up to
        ``understood``, or None when nothing it understands can be produced."""
        versions = self.versions(type)
        fitting = [v for v in versions if v <= understood]
        if not fitting:
            return None
        target = fitting[-1]
        for version in versions:
            if version > target and (type, version) not in self.downgraders:
                return None
        return target

    def downgrade_for(
        self, type: str, data: dict, from_version: int, understood: int
    ) -> tuple[int, dict]:
        """Return (version, data) for a client that understands up to ``understood``.

        Raises NoDowngrade when no registered version fits or a downgrader is missing
        or produced data that fails the older version's serializer.
        """
        fitting = [v for v in self.versions(type) if v <= understood]
        if not fitting:
            raise NoDowngrade(
                f"event {type!r}: the client understands up to v{understood}, "
                f"the oldest registered version is v{self.versions(type)[0]}"
                if type in self
                else f"unknown event type {type[:100]!r}"
            )
        target = fitting[-1]
        if target >= from_version:
            return from_version, data
        data = self.downgrade(type, data, from_version, target)
        try:
            return target, self.get(type, target).validate(data, outgoing=True)
        except ValidationFailed as exc:
            raise NoDowngrade(
                f"event {type!r}: the downgrader to v{target} produced invalid "
                f"data: {exc.errors}"
            ) from None

    def check(self) -> list[Problem]:
        """Problems that make the registry unusable (reported by system checks)."""
        problems = []
        for type, versions in sorted(self.events.items()):
            for older, newer in pairwise(sorted(versions)):
                if (
                    versions[older].accepts_from_client()
                    and (type, older) not in self.upgraders
                ):
                    problems.append(
                        Problem(
                            f"event {type!r} accepts v{older} from clients but has "
                            f"no upgrader to v{newer}.",
                            hint=f"Add @realtime.upgrader({type!r}, from_version="
                            f"{older}), or declare v{older} with direction='server'.",
                        )
                    )
        for kind, table, edge in (
            ("upgrader", self.upgraders, max),
            ("downgrader", self.downgraders, min),
        ):
            for type, version in sorted(table):
                declared = self.versions(type)
                if version not in declared or version == edge(declared):
                    problems.append(
                        Problem(
                            f"{_origin(table[(type, version)])} is a {kind} of "
                            f"{type!r} from v{version}, which has nothing to "
                            f"convert to (declared versions: {declared}).",
                            hint="Check the event type and from_version.",
                        )
                    )
        return problems


registry = Registry()


def event(
    type: str,
    *,
    version: int = 1,
    direction: Direction = "both",
    description: str | None = None,
) -> Callable[[Class], Class]:
    """Class decorator that registers a DRF serializer as the payload of an event."""
    _check_type_name(type)
    _check_version(type, version)

    def decorator(serializer_class: Class) -> Class:
        from rest_framework.serializers import BaseSerializer

        if not (
            inspect.isclass(serializer_class)
            and issubclass(serializer_class, BaseSerializer)
        ):
            raise RealtimeConfigError(
                f"@realtime.event({type!r}) decorates {_origin(serializer_class)}, "
                "which is not a DRF serializer class"
            )
        registry.register(
            EventSpec(
                type=type,
                version=version,
                direction=direction,
                serializer_class=serializer_class,
                description=description or (serializer_class.__doc__ or "").strip(),
                origin=_origin(serializer_class),
            )
        )
        return serializer_class

    return decorator


def upgrader(type: str, *, from_version: int) -> Callable[[Converter], Converter]:
    """Register ``fn(data) -> data`` that turns v``from_version`` into the next version."""

    def decorator(fn: Converter) -> Converter:
        registry.add_converter("upgrader", type, from_version, fn)
        return fn

    return decorator


def downgrader(type: str, *, from_version: int) -> Callable[[Converter], Converter]:
    """Register ``fn(data) -> data`` that turns v``from_version`` into the previous one."""

    def decorator(fn: Converter) -> Converter:
        registry.add_converter("downgrader", type, from_version, fn)
        return fn

    return decorator
