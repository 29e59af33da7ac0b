"""System checks for dangerous or broken configurations.

Imported by realtime.apps while Django loads the apps, before any model can be
imported: nothing here imports the consumers (they import django.contrib.auth's
models). The checks that walk the consumers find them as subclasses of Channels'
``AsyncConsumer`` that declare handlers the way ``RealtimeConsumer`` does
(``_handlers``), once ``load_consumers()`` has imported the ASGI application.
"""

from __future__ import annotations

import asyncio
import difflib
import json
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import (
    Distribution,
    PackageNotFoundError,
    distribution,
    packages_distributions,
    version,
)
from pathlib import Path
from typing import Any, TypeVar

from channels.consumer import AsyncConsumer
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.module_loading import import_string

from realtime.backends.connections import (
    ALTERNATIVE,
    configured_servers,
    describe,
    diagnose,
)
from realtime.groups import patterns_overlap
from realtime.schema import registry
from realtime.settings import (
    DEFAULTS,
    IMPORT_STRINGS,
    realtime_settings,
    type_error,
)

#: The name this package is published under (setup.cfg); its import name is realtime.
DISTRIBUTION = "django-realtime-events"

T = TypeVar("T")


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list:
    problems: list = []
    user = getattr(settings, "REALTIME", {}) or {}
    if not isinstance(user, dict):
        return [Error("REALTIME must be a dict.", id="realtime.E001")]
    for key in user:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(key, DEFAULTS, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else "See docs/settings.md."
            problems.append(
                Error(f"Unknown REALTIME key {key!r}.", hint=hint, id="realtime.E001")
            )
    for key in IMPORT_STRINGS & set(user):
        if type_error(key, user[key]) is not None:
            continue  # check_setting_types reports it
        try:
            getattr(realtime_settings, key)
        except Exception as exc:
            problems.append(Error(str(exc), id="realtime.E002"))
    if not getattr(settings, "ASGI_APPLICATION", None):
        problems.append(
            Error(
                "ASGI_APPLICATION is not set.",
                hint="Set ASGI_APPLICATION = 'mysite.asgi.application' (see README).",
                id="realtime.E003",
            )
        )
    alias = user.get("CHANNEL_LAYER", "default")
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    layer = layers.get(alias) if isinstance(alias, str) else None
    if not layer:
        problems.append(
            Warning(
                "No channel layer is configured (CHANNEL_LAYERS has no "
                f"{alias!r} entry): realtime works, but "
                "events reach only clients connected to this process.",
                hint="Fine for one process. For several processes set "
                "CHANNEL_LAYERS to channels_redis.core.RedisChannelLayer; to silence "
                "this on one process, set it to channels.layers.InMemoryChannelLayer.",
                id="realtime.W001",
            )
        )
    elif "InMemoryChannelLayer" in layer.get("BACKEND", "") and not settings.DEBUG:
        problems.append(
            Warning(
                "The in-memory channel layer is used with DEBUG=False: events sent from "
                "one process never reach clients connected to another.",
                hint="Use channels_redis.core.RedisChannelLayer in production.",
                id="realtime.W002",
            )
        )
    origins = user.get("ALLOWED_ORIGINS", DEFAULTS["ALLOWED_ORIGINS"])
    if origins == "*" or (isinstance(origins, (list, tuple)) and "*" in origins):
        problems.append(
            Warning(
                "REALTIME['ALLOWED_ORIGINS'] allows every origin: any web page can open "
                "a WebSocket with your users' cookies (cross-site WebSocket hijacking).",
                hint="List your sites' origins, e.g. ['https://app.example.com'].",
                id="realtime.W003",
            )
        )
    if layer and "channels_redis" in layer.get("BACKEND", ""):
        try:
            major = int(version("redis").split(".")[0])
        except (PackageNotFoundError, ValueError):
            major = 0
        if major >= 8:
            problems.append(
                Warning(
                    f"redis-py {version('redis')} breaks channels-redis 4.3 (socket "
                    "timeouts kill idle consumers).",
                    hint="pip install 'redis<8'",
                    id="realtime.W004",
                )
            )
    return problems


@register(Tags.compatibility)
def check_setting_types(app_configs: Any = None, **kwargs: Any) -> list:
    """REALTIME values of the wrong type (``"HISTORY_TTL": "600"``)."""
    user = getattr(settings, "REALTIME", None) or {}
    if not isinstance(user, dict):
        return []  # check_settings reports it
    return [
        Error(problem, hint="See docs/settings.md for each key.", id="realtime.E007")
        for key, value in user.items()
        if (problem := type_error(key, value)) is not None
    ]


@register(Tags.compatibility)
def check_foreign_distributions(app_configs: Any = None, **kwargs: Any) -> list:
    """Another installed distribution that also installs a top-level ``realtime``."""
    others = foreign_distributions(packages_distributions().get("realtime", []))
    if not others:
        return []
    names = ", ".join(sorted(others))
    return [
        Warning(
            f"Another installed distribution also provides the top-level package "
            f"'realtime': {names}. Both install into the same directory, so one "
            "overwrites the other's files (the Supabase client is published as "
            "'realtime').",
            hint=f"Use separate virtualenvs, or `pip uninstall {sorted(others)[0]}` "
            f"and `pip install --force-reinstall {DISTRIBUTION}`.",
            id="realtime.W007",
        )
    ]


def foreign_distributions(names: list[str]) -> set[str]:
    """The distributions among ``names`` that are not this package.

    Editable installs are left out: they write nothing into site-packages/realtime,
    so they overwrite nothing (a developer's checkout, maybe under a former name). So
    is setuptools' metadata inside the source checkout this package is imported from.
    """
    found = set()
    for name in names:
        if _normalize(name) == _normalize(DISTRIBUTION):
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        if _in_this_checkout(dist):
            continue
        direct_url = dist.read_text("direct_url.json")
        if direct_url:
            try:
                editable = json.loads(direct_url).get("dir_info", {}).get("editable")
            except ValueError:
                editable = False
            if editable:
                continue
        found.add(name)
    return found


def _in_this_checkout(dist: Distribution) -> bool:
    here = Path(__file__).resolve().parent.parent
    if not (here / "setup.cfg").exists():
        return False  # an installed copy: site-packages holds no setup.cfg
    try:
        return Path(str(dist.locate_file(""))).resolve() == here
    except (OSError, NotImplementedError):
        return False


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@register(Tags.compatibility)
def check_registry(app_configs: Any = None, **kwargs: Any) -> list:
    problems = [
        Error(problem, hint=getattr(problem, "hint", None), id="realtime.E004")
        for problem in registry.check()
    ]
    problems += load_consumers()
    for consumer in realtime_consumers():
        for type_ in consumer._handlers:
            origin = f"{consumer.__module__}.{consumer.__qualname__}"
            if type_ not in registry:
                problems.append(
                    Error(
                        f"{origin} handles {type_!r}, which is not a declared event.",
                        hint="Declare it with @realtime.event(...) in an events.py.",
                        id="realtime.E005",
                    )
                )
            elif not any(
                spec.accepts_from_client() for spec in registry.events[type_].values()
            ):
                problems.append(
                    Error(
                        f"{origin} handles {type_!r}, which clients may not send.",
                        hint="Declare it with direction='client' or 'both'.",
                        id="realtime.E006",
                    )
                )
    return problems


def load_consumers() -> list:
    """Import ASGI_APPLICATION, so that the consumers it routes are defined.

    ``manage.py check`` and ``runserver`` import no consumer by themselves: the
    routing lives in the ASGI module. Checks that walk the consumers call this first.
    """
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path or not isinstance(path, str):
        return []  # check_settings reports it
    try:
        import_string(path)
    except Exception as error:
        return [
            Error(
                f"ASGI_APPLICATION {path!r} could not be imported, so its consumers "
                f"cannot be checked: {type(error).__name__}: {error}",
                hint="Run `python -c 'import <your asgi module>'` to see the whole "
                "traceback.",
                id="realtime.E008",
            )
        ]
    return []


@register(Tags.security)
def check_subscription_patterns(app_configs: Any = None, **kwargs: Any) -> list:
    """Subscription patterns that could also match personal groups."""
    personal = realtime_settings.USER_GROUP
    problems: list = load_consumers()
    for consumer in realtime_consumers():
        for pattern in vars(consumer).get("subscriptions", {}):
            if patterns_overlap(pattern, personal):
                origin = f"{consumer.__module__}.{consumer.__qualname__}"
                problems.append(
                    Warning(
                        f"{origin}.subscriptions pattern {pattern!r} also matches "
                        f"personal groups ({personal!r}); clients are refused those "
                        "groups whatever the pattern says.",
                        hint="Give the pattern a fixed prefix of its own, e.g. "
                        "'feed.{name}', so that it names only the groups you mean.",
                        id="realtime.W005",
                    )
                )
    return problems


@register("realtime", "redis", deploy=True)
def check_redis_servers(app_configs: Any = None, **kwargs: Any) -> list:
    """Connect to every configured Redis (``check --deploy``): credentials, TLS,
    Redis Cluster."""
    servers = configured_servers()
    if not servers:
        return []

    async def diagnose_all() -> list[tuple[str, str]]:
        return list(await asyncio.gather(*(diagnose(host) for _, host in servers)))

    # A thread of its own: checks may run inside a running event loop.
    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(asyncio.run, diagnose_all()).result()
    problems: list = []
    for (setting, host), (fault, detail) in zip(servers, results, strict=True):
        where = f"{setting} ({describe(host)})"
        if fault == "auth":
            problems.append(
                Error(
                    f"{where}: Redis authentication failed: {detail}",
                    hint="Give the right 'password' (and 'username' for an ACL "
                    "user) in the host dict, or in the URL "
                    "(redis://user:password@host:6379/0).",
                    id="realtime.E009",
                )
            )
        elif fault == "tls":
            problems.append(
                Error(
                    f"{where}: the TLS connection to Redis failed: {detail}",
                    hint="Use rediss:// (or ssl=True) only for a port Redis serves "
                    "TLS on (tls-port), and check ssl_ca_certs, ssl_certfile, "
                    "ssl_keyfile and ssl_cert_reqs.",
                    id="realtime.E009",
                )
            )
        elif fault == "cluster":
            problems.append(
                Error(
                    f"{where} is a Redis Cluster node ({detail}): realtime does not "
                    "support Redis Cluster.",
                    hint=ALTERNATIVE,
                    id="realtime.E010",
                )
            )
        elif fault == "error":
            problems.append(
                Error(f"{where}: Redis refused: {detail}", id="realtime.E009")
            )
        elif fault == "unreachable":
            problems.append(
                Warning(
                    f"{where}: could not connect to Redis: {detail}",
                    hint="Run the deploy check where the servers can reach Redis.",
                    id="realtime.W008",
                )
            )
    return problems


def realtime_consumers() -> list[Any]:
    """Every subclass of ``RealtimeConsumer`` defined so far: the classes below one
    that declares ``_handlers``, which its ``__init_subclass__`` gives each its own."""
    return [
        consumer
        for consumer in _subclasses(AsyncConsumer)
        if "_handlers" in vars(consumer)
        and any("_handlers" in vars(base) for base in consumer.__mro__[1:])
    ]


def _subclasses(cls: type[T]) -> list[type[T]]:
    found: list[type[T]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found
