"""notify_user(persist=True) stores through the hook the inbox app registers, and says
clearly what to install when the app is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

import realtime
from realtime import publishing
from realtime.exceptions import RealtimeConfigError
from realtime.inbox.models import Notification
from realtime.inbox.store import store
from realtime.testing import capture_notifications
from tests.support.processes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

WITHOUT_INBOX = """
import django
from django.conf import settings
import tests.settings as base

names = [n for n in dir(base) if n.isupper() and n != "INSTALLED_APPS"]
settings.configure(
    INSTALLED_APPS=[a for a in base.INSTALLED_APPS if a != "realtime.inbox"],
    **{n: getattr(base, n) for n in names},
)
django.setup()
import asyncio
import realtime
from realtime.exceptions import RealtimeConfigError

try:
    realtime.notify_user(1, "test.note", {"text": "x"}, persist=True)
except RealtimeConfigError as error:
    print("sync:", error)
try:
    asyncio.run(realtime.anotify_user(1, "test.note", {"text": "x"}, persist=True))
except RealtimeConfigError as error:
    print("async:", error)
"""


def test_the_inbox_app_hands_publishing_its_store():
    assert publishing._persister is store


def test_persist_without_the_inbox_app_says_what_to_install():
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_INBOX],
        cwd=ROOT,
        env={"PATH": "", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["sync", "async"], done.stderr
    for line in lines:
        assert "add 'realtime.inbox' to INSTALLED_APPS" in line


def test_no_hook_means_no_row_and_no_push():
    publishing.set_persister(None)
    try:
        with (
            capture_notifications() as sent,
            pytest.raises(RealtimeConfigError, match=r"realtime\.inbox"),
        ):
            realtime.notify_user(1, "test.note", {"text": "x"}, persist=True)
    finally:
        publishing.set_persister(store)
    assert sent == []
    assert not Notification.objects.exists()
