"""Re-checking session-authenticated connections: which sessions have ended, for
each of Django's session engines."""

from importlib import import_module

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

from realtime.auth import ended_sessions

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("engine", ["db", "cached_db", "cache", "file"])
def test_logout_and_password_change_end_sessions(
    engine, settings, django_user_model, tmp_path
):
    settings.SESSION_ENGINE = f"django.contrib.sessions.backends.{engine}"
    settings.SESSION_FILE_PATH = str(tmp_path)
    store = import_module(settings.SESSION_ENGINE).SessionStore
    alice = django_user_model.objects.create_user("s-alice", password="one")
    bob = django_user_model.objects.create_user("s-bob", password="two")

    def login(user) -> str:
        session = store()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        return session.session_key

    kept, logged_out, changed = login(alice), login(alice), login(bob)
    store(logged_out).delete()
    bob.set_password("three")
    bob.save()
    check = async_to_sync(ended_sessions)
    assert check({kept: alice.pk, logged_out: alice.pk, changed: bob.pk}) == {
        logged_out,
        changed,
    }
    # A session that names another user than the connection's is not the one
    # the connection was opened with.
    assert check({kept: bob.pk}) == {kept}
    assert check({"no-such-session": alice.pk}) == {"no-such-session"}
    assert check({}) == set()
