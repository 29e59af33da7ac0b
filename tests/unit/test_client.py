"""realtime.client alone: importable without a Django project, and its reconnect backoff
(tests/e2e/test_client_python.py: the client against real servers)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from realtime.client import backoff_delay
from tests.support.processes import ROOT


def test_importable_without_django_settings():
    """A script imports the client without a Django project."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import sys, realtime.client\n"
        "assert 'django' not in sys.modules, 'django imported'\n"
        "assert 'websockets' not in sys.modules, 'websockets imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


def test_backoff_is_exponential_with_full_jitter():
    assert backoff_delay(0, random=lambda: 0.999) < 0.5
    assert backoff_delay(3, random=lambda: 0.5) == pytest.approx(2.0)
    assert backoff_delay(30, random=lambda: 0.5) == pytest.approx(15.0)  # the cap
    assert backoff_delay(5, random=lambda: 0.0) == 0
