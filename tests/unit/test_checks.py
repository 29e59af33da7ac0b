"""System checks and settings."""

import pytest
from django.core.checks import Error, Warning
from django.test import override_settings

from realtime.checks import check_settings
from realtime.exceptions import RealtimeConfigError
from realtime.settings import realtime_settings


@pytest.fixture(autouse=True)
def _debug(settings):
    # The in-memory layer warning (W002) has a test of its own.
    settings.DEBUG = True


def ids(problems):
    return [problem.id for problem in problems]


def test_default_test_settings_are_clean():
    assert check_settings() == []


@override_settings(REALTIME={"HEARTBEAT_INTERVALL": 5})
def test_unknown_key_is_an_error_with_a_hint():
    [problem] = check_settings()
    assert isinstance(problem, Error)
    assert problem.id == "realtime.E001"
    assert "HEARTBEAT_INTERVALL" in problem.msg
    assert problem.hint == "Did you mean 'HEARTBEAT_INTERVAL'?"


@override_settings(REALTIME={"BACKEND": "realtime.backends.nothing.Missing"})
def test_bad_import_string_names_the_setting_and_value():
    [problem] = check_settings()
    assert problem.id == "realtime.E002"
    assert "REALTIME['BACKEND']" in problem.msg
    assert "realtime.backends.nothing.Missing" in problem.msg
    with pytest.raises(RealtimeConfigError):
        realtime_settings.BACKEND  # noqa: B018


@override_settings(ASGI_APPLICATION=None)
def test_missing_asgi_application():
    assert ids(check_settings()) == ["realtime.E003"]


@override_settings(
    DEBUG=False,
    CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
)
def test_in_memory_layer_in_production_warns():
    [problem] = check_settings()
    assert isinstance(problem, Warning)
    assert problem.id == "realtime.W002"


@override_settings(DEBUG=True)
def test_in_memory_layer_with_debug_is_fine():
    assert check_settings() == []


@override_settings(REALTIME={"ALLOWED_ORIGINS": "*"})
def test_disabled_origin_check_warns():
    assert ids(check_settings()) == ["realtime.W003"]


@override_settings(REALTIME={"ALLOWED_ORIGINS": ["https://a.example", "*"]})
def test_wildcard_in_origin_list_warns():
    assert ids(check_settings()) == ["realtime.W003"]


@override_settings(CHANNEL_LAYERS={})
def test_no_channel_layer_warns():
    assert ids(check_settings()) == ["realtime.W001"]


def test_settings_are_read_at_call_time():
    assert realtime_settings.HEARTBEAT_INTERVAL == 25
    with override_settings(REALTIME={"HEARTBEAT_INTERVAL": 7}):
        assert realtime_settings.HEARTBEAT_INTERVAL == 7
    assert realtime_settings.HEARTBEAT_INTERVAL == 25


def test_unknown_attribute_is_refused():
    with pytest.raises(AttributeError):
        realtime_settings.NOPE  # noqa: B018


def test_patterns_that_could_match_personal_groups_warn():
    from realtime.checks import check_subscription_patterns
    from tests.testapp import consumers

    def flagged() -> dict[str, str]:
        return {
            problem.msg.split(".subscriptions")[0]: problem.msg
            for problem in check_subscription_patterns()
            if problem.id == "realtime.W005"
        }

    found = flagged()
    assert (
        "'{feed}.{key}'" in found[consumers.FeedConsumer.__module__ + ".FeedConsumer"]
    )
    assert consumers.EchoConsumer.__module__ + ".EchoConsumer" not in found
    with override_settings(REALTIME={"USER_GROUP": "room.{pk}"}):
        # Now "room.{room_id}" names personal groups too.
        assert "tests.testapp.consumers.EchoConsumer" in flagged()


@pytest.mark.parametrize(
    ("pattern", "overlaps"),
    [
        ("{feed}.{key}", True),
        ("user.{id}", True),
        ("{kind}.1", True),
        ("user.1", True),
        ("u{rest}.{id}", True),
        ("room.{id}", False),
        ("{name}", False),  # one segment never holds the dot
        ("user.{id}.inbox", False),  # pks are one segment
        ("user.", False),
        ("users.{id}", False),
    ],
)
def test_pattern_overlap_with_the_personal_group(pattern, overlaps):
    from realtime.groups import patterns_overlap

    assert patterns_overlap(pattern, "user.{pk}") is overlaps
