"""A newcomer's mistakes are caught at ``manage.py check`` or at first use, with an
error that says what is wrong and how to fix it (docs/troubleshooting.md).

The project-level cases build a small Django project in a temporary directory and
run ``manage.py check`` / ``shell`` on it in a process of its own, as a user would.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import override_settings

import realtime
from realtime import checks
from realtime.exceptions import RealtimeConfigError
from realtime.settings import realtime_settings
from realtime.testing import RealtimeCommunicator
from tests.asgi import application
from tests.support.processes import ROOT

# -- a newcomer's project on disk -----------------------------------------------------

SETTINGS = """\
SECRET_KEY = "first-day"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = {apps!r}
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "shop.urls"
ASGI_APPLICATION = "shop.asgi.application"
USE_TZ = True
{extra}
"""

EVENTS = """\
from rest_framework import serializers

import realtime


@realtime.event("order.status_changed", direction="server")
class OrderStatusChanged(serializers.Serializer):
    order = serializers.IntegerField()
    status = serializers.CharField()


@realtime.event("order.note", direction="client")
class OrderNote(serializers.Serializer):
    text = serializers.CharField()
"""

CONSUMERS = """\
import realtime
from realtime.consumers import RealtimeConsumer


class OrderConsumer(RealtimeConsumer):
    subscriptions = {{"orders.{{pk}}": []}}

    @realtime.handler({handled!r})
    async def handle(self, message):
        return {{}}
"""

ASGI = """\
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
http = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.urls import path  # noqa: E402

import realtime.asgi  # noqa: E402
from orders.consumers import OrderConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {{"http": http, "websocket": realtime.asgi.websocket_app([path("ws/", OrderConsumer.as_asgi())])}}
)
"""

APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "daphne",
    "channels",
    "rest_framework",
    "realtime",
    "orders",
]
LAYER = (
    'CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}'
)


def make_project(
    root: Path, *, apps: list[str] = APPS, extra: str = LAYER, handled: str = ""
) -> Path:
    """Write the project ``shop`` with the app ``orders``; return its directory."""
    files = {
        "shop/__init__.py": "",
        "shop/settings.py": SETTINGS.format(apps=apps, extra=extra),
        "shop/urls.py": "urlpatterns = []\n",
        "shop/asgi.py": ASGI.format(),
        "orders/__init__.py": "",
        "orders/events.py": EVENTS,
        "orders/consumers.py": CONSUMERS.format(handled=handled or "order.note"),
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def django(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(project)]),
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_correct_project_passes_check(tmp_path):
    done = django(make_project(tmp_path), "check", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


def test_handler_for_an_undeclared_type_fails_check_though_only_asgi_routes_it(
    tmp_path,
):
    # The consumer is imported by the ASGI module only, as in every Channels project.
    done = django(make_project(tmp_path, handled="order.cancel"), "check")
    assert done.returncode == 1
    assert "realtime.E005" in done.stderr
    assert "orders.consumers.OrderConsumer handles 'order.cancel'" in done.stderr


def test_handler_for_a_server_only_type_fails_check(tmp_path):
    done = django(make_project(tmp_path, handled="order.status_changed"), "check")
    assert done.returncode == 1
    assert "realtime.E006" in done.stderr


def test_an_asgi_module_that_does_not_import_is_a_check_error(tmp_path):
    project = make_project(tmp_path)
    (project / "shop/asgi.py").write_text("import no_such_module\n")
    done = django(project, "check")
    assert done.returncode == 1
    assert "realtime.E008" in done.stderr
    assert "no_such_module" in done.stderr


def test_without_realtime_in_installed_apps_first_use_says_so(tmp_path):
    apps = [app for app in APPS if app != "realtime"]
    project = make_project(tmp_path, apps=apps)
    done = django(
        project,
        "shell",
        "-c",
        "import realtime; realtime.notify('orders.1', 'order.status_changed',"
        " {'order': 1, 'status': 'shipped'})",
    )
    assert done.returncode == 1
    assert "RealtimeConfigError" in done.stderr
    assert "add 'realtime' to INSTALLED_APPS" in done.stderr


def test_without_channel_layers_check_says_one_process_and_notify_works(tmp_path):
    project = make_project(tmp_path, extra="")
    done = django(project, "check")
    assert done.returncode == 0, done.stderr
    assert "realtime.W001" in done.stderr
    done = django(
        project,
        "shell",
        "-c",
        "import realtime; realtime.notify('orders.1', 'order.status_changed',"
        " {'order': 1, 'status': 'shipped'}); print('sent')",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("sent")
    assert "Traceback" not in done.stderr
    assert "never awaited" not in done.stderr


def test_wrongly_typed_setting_fails_check(tmp_path):
    project = make_project(
        tmp_path, extra=LAYER + '\nREALTIME = {"HISTORY_TTL": "600"}'
    )
    done = django(project, "check")
    assert done.returncode == 1
    assert "realtime.E007" in done.stderr
    assert "REALTIME['HISTORY_TTL'] must be an integer" in done.stderr


# -- in-process --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_without_channel_layers_one_process_delivers(settings):
    del settings.CHANNEL_LAYERS
    comm = RealtimeCommunicator(application, "/ws/")
    assert (await comm.connect())[0]
    ack = await comm.subscribe("public.first")
    assert ack["type"] == "rt.ack", ack
    await sync_to_async(realtime.notify)("public.first", "test.note", {"text": "hi"})
    event = await comm.receive_event(type="test.note", timeout=5)
    assert event["data"] == {"text": "hi"}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_foreign_origin_is_logged_at_warning_with_the_allowed_list(caplog):
    comm = RealtimeCommunicator(
        application, "/ws/", headers=[(b"origin", b"http://evil.example")]
    )
    with caplog.at_level(logging.WARNING, logger="realtime.asgi"):
        connected, _ = await comm.connect()
    assert not connected
    [record] = [r for r in caplog.records if r.name == "realtime.asgi"]
    assert record.levelno == logging.WARNING
    assert "http://evil.example" in record.getMessage()
    assert "http://allowed.example" in record.getMessage()
    assert "ALLOWED_ORIGINS" in record.getMessage()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("HISTORY_TTL", "600", "an integer"),
        ("HISTORY_TTL", 6.5, "an integer"),
        ("HEARTBEAT_INTERVAL", True, "a number"),
        ("RATE", -1, ">= 0"),
        ("NOTIFY_ON_COMMIT", "yes", "True or False"),
        ("NOTIFY_FAILURE", "ignore", "'raise' or 'log'"),
        ("HISTORY_GROUPS", "room.*", "a list of strings"),
        ("ALLOWED_ORIGINS", "https://app.example.com", "a list of origins"),
        ("REDIS_URL", 6379, "a string or None"),
    ],
)
def test_setting_types_are_checked(key, value, expected):
    with override_settings(REALTIME={key: value}):
        [problem] = checks.check_setting_types()
        assert problem.id == "realtime.E007"
        assert f"REALTIME[{key!r}] must be" in problem.msg
        assert expected in problem.msg
        assert repr(value) in problem.msg
        # At first use too (daphne runs no system checks).
        with pytest.raises(RealtimeConfigError, match=expected.replace("*", r"\*")):
            getattr(realtime_settings, key)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HISTORY_TTL", 600),
        ("HEARTBEAT_INTERVAL", 0.5),
        ("RATE", 5),
        ("ALLOWED_ORIGINS", "*"),
        ("ALLOWED_ORIGINS", ("https://a.example",)),
        ("INVALID_OUTGOING", None),
        ("BACKEND", "realtime.backends.memory.MemoryBackend"),
    ],
)
def test_well_typed_settings_pass(key, value):
    with override_settings(REALTIME={key: value}):
        assert checks.check_setting_types() == []


def test_the_default_settings_are_well_typed():
    assert checks.check_setting_types() == []


def test_realtime_status_on_the_memory_backend_says_why_it_shows_zeros():
    out = StringIO()
    call_command("realtime_status", stdout=out)
    assert "processes: 0" in out.getvalue()
    assert "reports zeros" in out.getvalue()
    assert "channels_redis" in out.getvalue()
