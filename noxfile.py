"""The tested matrix: Django 4.2, 5.2 and 6.1 on the Pythons each supports among 3.11,
3.12 and 3.13.

``nox -s servers`` runs the server adapters' tests (the bytes realtime.transport
writes against each server's own framing) on every supported daphne and uvicorn
version (SERVERS). ``nox -s subset`` runs the unit-level test files (no daphne, no browser; a real
``redis-server`` where a test needs one) on every combination but one; that one,
Python 3.11 with Django 5.2, runs the whole suite through the README's command
(``.ci/run``), or ``nox -s full``. nox finds interpreters as ``python3.11``,
``python3.12``, ``python3.13`` on ``PATH`` (``.ci/run`` adds pyenv's).
"""

from __future__ import annotations

import nox

# uv when installed (the [test] extra brings it): installs take seconds, not a minute.
nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["subset"]

# Django release -> the Pythons it supports among ours (Django 6 needs 3.12+, 4.2
# stops at 3.12).
DJANGO = {
    "4.2": ["3.11", "3.12"],
    "5.2": ["3.11", "3.12", "3.13"],
    "6.1": ["3.12", "3.13"],
}
FULL = ("3.11", "5.2")  # the combination that runs the whole suite

# Unit-level test files: tests/unit (one module at a time), and from tests/integration
# the consumer through Channels' communicator, notify() (memory and Redis), the
# registry, the test helpers and packaging. Together they import every module of the
# package; the other end-to-end and browser files run once, in FULL.
SUBSET = [
    "tests/unit/test_public_api.py",
    "tests/unit/test_checks.py",
    "tests/unit/test_schema.py",
    "tests/unit/test_exports.py",
    "tests/unit/test_exceptions.py",
    "tests/unit/test_hub.py",
    "tests/unit/test_client.py",
    "tests/integration/test_continuity.py",
    "tests/integration/test_first_day.py",
    "tests/integration/test_versioning.py",
    "tests/integration/test_consumers.py",
    "tests/integration/test_consumer_errors.py",
    "tests/integration/test_validation.py",
    "tests/integration/test_broadcast.py",
    "tests/integration/test_notify.py",
    "tests/integration/test_backends.py",
    "tests/integration/test_inbox.py",
    "tests/integration/test_testing.py",
    "tests/integration/test_docs_testing.py",
    "tests/integration/test_packaging.py",
    # The exports checked by tsc and the AsyncAPI schema (split from test_exports).
    "tests/e2e/test_exports_tools.py",
]

# What SUBSET needs beyond the package (the [test] extra also brings Playwright,
# uvicorn, ruff and mypy for the whole suite).
SUBSET_DEPS = [
    "pytest>=8",
    "pytest-django>=4.8",
    "pytest-asyncio>=0.24",
    "pytest-timeout>=2.3",
    "websockets>=13",
    "jsonschema>=4.18",
    "hypothesis>=6.100",
    "httpx>=0.27",
    # realtime.collab (its optional extra), imported by the tests that walk the package
    "pycrdt>=0.14,<0.15",
    "build>=1.2",
    "setuptools>=61",
    "wheel>=0.40",
]

COMBINATIONS = [
    (python, django)
    for django, pythons in DJANGO.items()
    for python in pythons
    if (python, django) != FULL
]


@nox.session
@nox.parametrize(
    ("python", "django"),
    [
        nox.param(python, django, id=f"{python}-django{django}")
        for python, django in COMBINATIONS
    ],
)
def subset(session: nox.Session, django: str) -> None:
    """The unit-level test files on one Python and Django."""
    session.install("-e", ".", *SUBSET_DEPS, f"django~={django}.0")
    session.run(
        "python",
        "-c",
        "import sys, django; print(sys.version, 'Django', django.__version__)",
    )
    session.run("python", "-m", "pytest", "-q", *SUBSET, *session.posargs)


@nox.session(python=FULL[0])
def full(session: nox.Session) -> None:
    """The whole suite, as the README's command runs it."""
    session.install("-e", ".[test]", f"django~={FULL[1]}.0")
    session.run("python", "-m", "pytest", *session.posargs)


# The supported server versions (setup.cfg: daphne>=4.2.3, uvicorn>=0.30, websockets
# >=13): the oldest and newest of each, plus uvicorn 0.35, the first with the
# websockets-sansio protocol its direct writer serves, with the oldest and newest
# websockets (whose sans-I/O state that writer reads).
SERVERS = [
    # (daphne, uvicorn, websockets)
    ("4.2.3", "0.30.0", "13.1"),
    ("4.2.3", "0.35.0", "13.1"),
    ("4.2.3", "0.35.0", "17.4"),
    ("4.2.3", "0.54.0", "17.4"),
]
SERVER_TESTS = [
    "tests/e2e/test_transport_bytes.py",
    "tests/unit/test_transport_select.py",
    # The graceful stop reads the servers' signal handlers (transport.listening).
    "tests/e2e/test_limits.py::test_shutdown_closes_4503",
    "tests/e2e/test_limits.py::test_a_stopping_process_refuses_new_connections",
]


@nox.session(python=FULL[0])
@nox.parametrize(
    ("daphne", "uvicorn", "websockets"),
    [
        nox.param(*versions, id="daphne{}-uvicorn{}-websockets{}".format(*versions))
        for versions in SERVERS
    ],
)
def servers(session: nox.Session, daphne: str, uvicorn: str, websockets: str) -> None:
    """The server adapters' byte tests and the graceful stop on one daphne, uvicorn
    and websockets version."""
    session.install(
        "-e",
        ".",
        *SUBSET_DEPS,
        f"django~={FULL[1]}.0",
        f"daphne=={daphne}",
        f"uvicorn[standard]=={uvicorn}",
        f"websockets=={websockets}",
        "wsproto>=1.2",
    )
    session.run(
        "python",
        "-c",
        "from importlib.metadata import version as v; "
        "print('daphne', v('daphne'), 'uvicorn', v('uvicorn'), "
        "'websockets', v('websockets'), 'autobahn', v('autobahn'))",
    )
    session.run("python", "-m", "pytest", "-q", *SERVER_TESTS, *session.posargs)
