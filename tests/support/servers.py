"""Real daphne / uvicorn processes serving tests.asgi on a shared e2e database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.processes import ROOT, free_port, start_server


class Daphne:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def e2e_db(tmp_path_factory):
    """A migrated SQLite file shared by the test process and its daphne processes."""
    path = tmp_path_factory.mktemp("e2e") / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
        "RT_TEST_DB": str(path),
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return path


def django_shell(e2e_db: Path, code: str, *, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in ``manage.py shell`` on the e2e database; return its last line."""
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
        "RT_TEST_DB": str(e2e_db),
        **(env or {}),
    }
    full_env.pop("PYTEST_CURRENT_TEST", None)
    done = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", code],
        cwd=ROOT,
        env=full_env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def e2e_users(e2e_db):
    """Users in the e2e database: name -> {"token", "pk"}."""
    code = (
        "import json\n"
        "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        "out = {}\n"
        "for name, staff, active in [('alice', True, True), ('bob', False, True),"
        " ('mallory', False, True), ('ghost', False, False)]:\n"
        "    u, _ = User.objects.get_or_create(username=name)\n"
        "    u.is_staff = staff; u.is_active = active; u.set_password(name + '-pw'); u.save()\n"
        "    t, _ = Token.objects.get_or_create(user=u)\n"
        "    out[name] = {'token': t.key, 'pk': u.pk}\n"
        "print(json.dumps(out))\n"
    )
    return json.loads(django_shell(e2e_db, code))


class DaphneFactory:
    """Starts real daphne (or uvicorn) processes on free ports; stop_all() ends them."""

    def __init__(self, e2e_db: Path, log_dir: Path) -> None:
        self.e2e_db, self.log_dir = e2e_db, log_dir
        self.started: list[Daphne] = []

    def __call__(
        self,
        *,
        redis_url: str | None = None,
        layer: str | None = None,
        server: str = "daphne",
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        **realtime_settings,
    ) -> Daphne:
        port = port or free_port()
        extra_env = env or {}
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.e2e_settings",
            "RT_TEST_DB": str(self.e2e_db),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("PYTEST_CURRENT_TEST", None)
        env.update(extra_env)
        if redis_url:
            env["REDIS_URL"] = redis_url
        if layer:
            env["RT_LAYER"] = layer
        for key, value in realtime_settings.items():
            # Every value travels as JSON (tests/e2e_settings.py reads it back), so
            # its type survives: REALTIME's types are checked.
            env[f"RT_SET_{key}"] = json.dumps(value)
        log = self.log_dir / f"{server}-{port}-{len(self.started)}.log"
        proc = start_server(
            "tests.asgi:application", port, env=env, log=log, server=server, args=args
        )
        instance = Daphne(proc, port, log)
        self.started.append(instance)
        return instance

    def stop_all(self) -> None:
        for instance in self.started:
            instance.stop()


@pytest.fixture
def daphne(e2e_db, tmp_path):
    """Factory: start real daphne processes on free ports; all stopped at teardown."""
    factory = DaphneFactory(e2e_db, tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def daphne_module(e2e_db, tmp_path_factory):
    """Like ``daphne``, but the processes live for the whole test module."""
    factory = DaphneFactory(e2e_db, tmp_path_factory.mktemp("daphne"))
    yield factory
    factory.stop_all()
