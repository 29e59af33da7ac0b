"""The event registry: declaration errors, system checks, outgoing validation
(tests/integration/test_validation.py: incoming, through the consumer)."""

import gc
import logging

import pytest
from rest_framework import serializers

import realtime
from realtime import checks
from realtime.consumers import RealtimeConsumer
from realtime.exceptions import RealtimeConfigError, UnknownType, ValidationFailed
from realtime.schema import EventSpec, registry
from realtime.testing import capture_notifications

pytestmark = pytest.mark.django_db(transaction=True)


# -- a helper event: nested payloads ---------------------------------------------------


class Line(serializers.Serializer):
    sku = serializers.SlugField(max_length=20)
    qty = serializers.IntegerField(min_value=1, max_value=99)


class Address(serializers.Serializer):
    city = serializers.CharField(max_length=40)
    zip = serializers.RegexField(r"^\d{5}$")


@realtime.event("schema_test.order", direction="both")
class Order(serializers.Serializer):
    """An order with nested and repeated parts."""

    ship_to = Address()
    bill_to = Address(required=False, allow_null=True)
    lines = Line(many=True, allow_empty=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=10), max_length=3, required=False
    )
    extra = serializers.DictField(child=serializers.IntegerField(), required=False)
    author = serializers.CharField(read_only=True)


GOOD_ORDER = {
    "ship_to": {"city": "Lyon", "zip": "69001"},
    "lines": [{"sku": "tea", "qty": 2}],
    "tags": ["gift"],
    "extra": {"points": 3},
}


@pytest.fixture
def scratch_registry():
    """Registrations made by the test are forgotten afterwards."""
    with registry.temporary():
        yield registry


@pytest.fixture
def scratch_consumers():
    """Consumer subclasses made by the test stop existing afterwards (system checks
    find consumers through ``__subclasses__``, which holds weak references)."""
    made: list = []
    yield made
    made.clear()
    gc.collect()


# -- declaring events: import-time errors ----------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Chat.Message",
        "chat message",
        "chat..message",
        ".chat",
        "chat.",
        "1chat",
        "",
        "chat-message",
        "a" * 101,
        5,
        None,
    ],
)
def test_bad_type_names_are_refused_at_import(name, scratch_registry):
    with pytest.raises(RealtimeConfigError, match="lowercase dotted words"):

        @realtime.event(name)
        class Payload(serializers.Serializer):
            pass

    assert name not in registry.events


@pytest.mark.parametrize("name", ["rt", "rt.custom", "rt.presence.join"])
def test_reserved_rt_prefix_is_refused(name, scratch_registry):
    with pytest.raises(RealtimeConfigError, match="reserved for the protocol"):
        realtime.event(name)


def test_duplicate_type_and_version_is_refused_naming_both(scratch_registry):
    @realtime.event("dup.thing", version=1)
    class First(serializers.Serializer):
        pass

    with pytest.raises(RealtimeConfigError) as info:

        @realtime.event("dup.thing", version=1)
        class Second(serializers.Serializer):
            pass

    message = str(info.value)
    assert "registered twice" in message
    assert "First" in message and "Second" in message
    assert "version=2" in message  # the hint
    assert registry.get("dup.thing").serializer_class is First


def test_same_class_registering_again_is_not_a_duplicate(scratch_registry):
    class Payload(serializers.Serializer):
        pass

    realtime.event("dup.again")(Payload)
    realtime.event("dup.again")(Payload)  # a module imported twice
    assert registry.versions("dup.again") == [1]


@pytest.mark.parametrize("version", [0, -1, True, "2", 1.5])
def test_bad_versions_are_refused(version, scratch_registry):
    with pytest.raises(RealtimeConfigError, match="version must be an int >= 1"):
        realtime.event("bad.version", version=version)


def test_bad_direction_is_refused(scratch_registry):
    with pytest.raises(RealtimeConfigError, match="direction must be one of"):

        @realtime.event("bad.direction", direction="sideways")
        class Payload(serializers.Serializer):
            pass


def test_non_serializer_is_refused(scratch_registry):
    with pytest.raises(RealtimeConfigError, match="not a DRF serializer class"):

        @realtime.event("bad.payload")
        class Payload:
            pass


def test_two_upgraders_for_one_step_are_refused(scratch_registry):
    @realtime.upgrader("two.up", from_version=1)
    def first(data):
        return data

    with pytest.raises(RealtimeConfigError, match="two upgraders from v1"):

        @realtime.upgrader("two.up", from_version=1)
        def second(data):
            return data


def test_temporary_registry_forgets_registrations():
    with registry.temporary():

        @realtime.event("temp.thing", version=1)
        class Payload(serializers.Serializer):
            pass

        realtime.upgrader("temp.thing", from_version=1)(lambda data: data)
        assert "temp.thing" in registry
    assert "temp.thing" not in registry
    assert ("temp.thing", 1) not in registry.upgraders
    assert "test.greet" in registry  # what was there before stays


# -- system checks -----------------------------------------------------------------------


def _errors(check_id, needle):
    return [
        error
        for error in checks.check_registry()
        if error.id == check_id and needle in error.msg
    ]


def test_the_project_registry_passes_its_checks():
    assert checks.check_registry() == []


def test_missing_upgrader_is_a_system_check_error(scratch_registry):
    for version in (1, 2):
        registry.register(
            EventSpec("chk.noup", version, "client", serializers.Serializer)
        )
    (problem,) = [p for p in registry.check() if "chk.noup" in p]
    assert "accepts v1 from clients but has no upgrader to v2" in problem
    assert "@realtime.upgrader('chk.noup', from_version=1)" in problem.hint
    assert _errors("realtime.E004", "chk.noup")
    from django.core.checks import run_checks

    assert any("chk.noup" in error.msg for error in run_checks())


def test_server_only_old_version_needs_no_upgrader(scratch_registry):
    registry.register(EventSpec("chk.srv", 1, "server", serializers.Serializer))
    registry.register(EventSpec("chk.srv", 2, "server", serializers.Serializer))
    assert not [p for p in registry.check() if "chk.srv" in p]


@pytest.mark.parametrize(
    ("kind", "from_version", "needle"),
    [
        ("upgrader", 2, "upgrader of 'chk.conv' from v2"),  # v2 is the latest
        ("upgrader", 7, "upgrader of 'chk.conv' from v7"),
        ("downgrader", 1, "downgrader of 'chk.conv' from v1"),  # v1 is the oldest
    ],
)
def test_converter_with_nothing_to_convert_is_an_error(
    kind, from_version, needle, scratch_registry
):
    registry.register(EventSpec("chk.conv", 1, "server", serializers.Serializer))
    registry.register(EventSpec("chk.conv", 2, "server", serializers.Serializer))
    getattr(realtime, kind)("chk.conv", from_version=from_version)(lambda data: data)
    (problem,) = [p for p in registry.check() if needle in p]
    assert "declared versions: [1, 2]" in problem
    assert problem.hint


def test_handler_for_undeclared_type_is_a_system_check_error(scratch_consumers):
    class Undeclared(RealtimeConsumer):
        @realtime.handler("chk.nowhere")
        async def nowhere(self, message):
            pass

    scratch_consumers.append(Undeclared)
    (error,) = _errors("realtime.E005", "chk.nowhere")
    assert "Undeclared handles 'chk.nowhere'" in error.msg
    assert "@realtime.event" in error.hint


def test_handler_for_server_only_type_is_a_system_check_error(scratch_consumers):
    class ServerOnly(RealtimeConsumer):
        @realtime.handler("test.note")
        async def note(self, message):
            pass

    scratch_consumers.append(ServerOnly)
    (error,) = _errors("realtime.E006", "ServerOnly")
    assert "direction='client'" in error.hint


def test_check_errors_disappear_with_the_consumer(scratch_consumers):
    class Gone(RealtimeConsumer):
        @realtime.handler("chk.gone")
        async def gone(self, message):
            pass

    del Gone
    gc.collect()
    assert not _errors("realtime.E005", "chk.gone")


# -- outgoing validation: INVALID_OUTGOING -------------------------------------------


BAD_OUTGOING = {"lines": [{"sku": "tea", "qty": 500}]}


def test_notify_raises_on_invalid_payload_in_tests():
    with capture_notifications() as sent, pytest.raises(ValidationFailed) as info:
        realtime.notify("public.x", "schema_test.order", BAD_OUTGOING, on_commit=False)
    assert sent == []
    assert "ship_to" in info.value.errors
    # many=True: DRF keys the errors by the failing item's index (a str on the wire).
    assert info.value.errors["lines"] == {
        "0": {"qty": ["Ensure this value is less than or equal to 99."]}
    }


def test_notify_raises_with_debug_policy_default(settings, monkeypatch):
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    settings.DEBUG = True
    with capture_notifications() as sent, pytest.raises(ValidationFailed):
        realtime.notify("public.x", "schema_test.order", BAD_OUTGOING, on_commit=False)
    assert sent == []


def test_notify_logs_and_drops_in_production_by_default(settings, monkeypatch, caplog):
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    settings.DEBUG = False
    with capture_notifications() as sent, caplog.at_level(logging.ERROR, "realtime"):
        result = realtime.notify(
            "public.x", "schema_test.order", BAD_OUTGOING, on_commit=False
        )
    assert result is None
    assert sent == []
    (record,) = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert "schema_test.order" in record.getMessage()


@pytest.mark.parametrize("policy", ["log", "raise"])
async def test_anotify_follows_the_explicit_policy(policy, settings, caplog):
    settings.REALTIME = {"INVALID_OUTGOING": policy}
    with capture_notifications() as sent:
        if policy == "raise":
            with pytest.raises(ValidationFailed):
                await realtime.anotify("public.x", "schema_test.order", BAD_OUTGOING)
        else:
            assert (
                await realtime.anotify("public.x", "schema_test.order", BAD_OUTGOING)
                is None
            )
            assert "dropped" in caplog.text
        # A valid payload still goes out, read-only fields included.
        await realtime.anotify(
            "public.x", "schema_test.order", {**GOOD_ORDER, "author": "server"}
        )
    assert [(item["type"], item["data"]["author"]) for item in sent] == [
        ("schema_test.order", "server")
    ]


def test_notify_of_unknown_type_or_version_is_refused():
    with pytest.raises(UnknownType, match="unknown event type"):
        realtime.notify("public.x", "schema_test.nothing", {}, on_commit=False)
    with pytest.raises(UnknownType, match=r"expected version in \[1, 2\], got 5"):
        realtime.notify("public.x", "test.greet", {}, v=5, on_commit=False)


def test_validation_reuses_a_serializer_yet_keeps_calls_apart(scratch_registry):
    """One serializer per thread is reused; validate() still sees this call's
    initial_data, and one call's errors do not leak into the next."""

    @realtime.event("schema_test.range", direction="both")
    class Range(serializers.Serializer):
        low = serializers.IntegerField()
        high = serializers.IntegerField()

        def validate(self, attrs):
            if set(self.initial_data) - {"low", "high"}:
                raise serializers.ValidationError("unexpected keys")
            if attrs["low"] > attrs["high"]:
                raise serializers.ValidationError("low is above high")
            return attrs

    spec = registry.get("schema_test.range")
    assert spec.validate({"low": 1, "high": 2}) == {"low": 1, "high": 2}
    with pytest.raises(ValidationFailed) as failed:
        spec.validate({"low": 3, "high": 2})
    assert failed.value.errors == {"non_field_errors": ["low is above high"]}
    with pytest.raises(ValidationFailed) as failed:
        spec.validate({"low": 1, "high": 2, "extra": 0})
    assert failed.value.errors == {"non_field_errors": ["unexpected keys"]}
    with pytest.raises(ValidationFailed) as failed:
        spec.validate({"low": "x"})
    assert set(failed.value.errors) == {"low", "high"}
    assert spec.validate({"low": 5, "high": 9}) == {"low": 5, "high": 9}
    assert spec._serializer() is spec._serializer()
