"""Exports of the registry, checked with the jsonschema package; the npm tools (the
official AsyncAPI 3.0 JSON Schema, tsc) check them in tests/e2e/test_exports_tools.py."""

from __future__ import annotations

import json

import jsonschema
import pytest
from django.core.management import CommandError, call_command
from rest_framework import serializers

import realtime
from realtime.exports import asyncapi, typescript
from realtime.exports import jsonschema as export_jsonschema
from realtime.schema import registry


class Address(serializers.Serializer):
    city = serializers.CharField(max_length=40)
    zip = serializers.RegexField(r"^\d{5}$")


class Line(serializers.Serializer):
    sku = serializers.SlugField(max_length=20)
    qty = serializers.IntegerField(min_value=1, max_value=99)


@realtime.event("export_test.order", version=1, direction="client")
class OrderV1(serializers.Serializer):
    """An order (first shape)."""

    city = serializers.CharField(max_length=40)


@realtime.event("export_test.order", version=2, direction="both")
class OrderV2(serializers.Serializer):
    """An order with nested and repeated parts."""

    ship_to = Address()
    bill_to = Address(required=False, allow_null=True)
    lines = Line(many=True, allow_empty=False)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=10), max_length=3, required=False
    )
    extra = serializers.DictField(child=serializers.IntegerField(), required=False)
    status = serializers.ChoiceField(choices=["new", "paid"], default="new")
    note = serializers.CharField(
        allow_null=True, allow_blank=True, required=False, help_text="Free */ text."
    )
    email = serializers.EmailField(required=False)
    author = serializers.CharField(read_only=True)
    secret = serializers.HiddenField(default="x")
    flag = serializers.BooleanField(required=False)
    price = serializers.DecimalField(max_digits=6, decimal_places=2, required=False)
    when = serializers.DateTimeField(required=False)
    kind = serializers.ChoiceField(choices=[1, 2], allow_null=True, required=False)


realtime.upgrader("export_test.order", from_version=1)(
    lambda data: {"ship_to": {"city": data["city"], "zip": "00000"}, "lines": []}
)

GOOD = {
    "ship_to": {"city": "Lyon", "zip": "69001"},
    "lines": [{"sku": "tea", "qty": 2}],
}
SAMPLES = [
    (GOOD, True),
    ({**GOOD, "bill_to": None, "note": None, "kind": None}, True),
    ({**GOOD, "tags": ["a", "b"], "extra": {"n": 1}, "status": "paid"}, True),
    ({**GOOD, "author": "ignored", "unknown": 1, "note": ""}, True),
    ({**GOOD, "email": "a@example.com", "flag": True, "price": 3.5}, True),
    ({**GOOD, "when": "2024-01-01T10:00:00Z", "kind": 2}, True),
    ({"lines": [{"sku": "tea", "qty": 2}]}, False),
    ({**GOOD, "lines": []}, False),
    ({**GOOD, "lines": [{"sku": "tea", "qty": 100}]}, False),
    ({**GOOD, "lines": [{"sku": "t e a", "qty": 1}]}, False),
    ({**GOOD, "ship_to": {"city": "x" * 41, "zip": "69001"}}, False),
    ({**GOOD, "ship_to": {"city": "Lyon", "zip": "6900"}}, False),
    ({**GOOD, "ship_to": None}, False),
    ({**GOOD, "tags": ["a", "b", "c", "d"]}, False),
    ({**GOOD, "tags": ["x" * 11]}, False),
    ({**GOOD, "extra": {"n": "many"}}, False),
    ({**GOOD, "status": "lost"}, False),
    ({**GOOD, "kind": 3}, False),
    ({**GOOD, "flag": "maybe"}, False),
]


def order_schema(version=2):
    return export_jsonschema.export()["export_test.order"][str(version)]


# -- JSON Schema ----------------------------------------------------------------------


def test_every_exported_schema_is_valid_2020_12():
    exported = export_jsonschema.export()
    assert {"test.greet", "test.echo", "export_test.order"} <= set(exported)
    assert set(exported["test.greet"]) == {"1", "2"}
    for versions in exported.values():
        for schema in versions.values():
            assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(("payload", "valid"), SAMPLES)
def test_json_schema_agrees_with_the_serializer(payload, valid):
    spec = registry.get("export_test.order", 2)
    drf_valid = spec.serializer_class(data=payload).is_valid()
    validator = jsonschema.Draft202012Validator(
        order_schema(), format_checker=jsonschema.FormatChecker()
    )
    schema_valid = validator.is_valid(payload)
    assert (drf_valid, schema_valid) == (valid, valid)


def test_field_mapping_details():
    schema = order_schema()
    props = schema["properties"]
    assert schema["title"] == "export_test.order v2"
    assert schema["description"] == "An order with nested and repeated parts."
    assert schema["required"] == ["ship_to", "lines"]
    assert props["ship_to"]["properties"]["city"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 40,
    }
    assert props["ship_to"]["properties"]["zip"]["pattern"] == r"^\d{5}$"
    assert props["bill_to"]["type"] == ["object", "null"]
    assert props["lines"]["type"] == "array"
    assert props["lines"]["minItems"] == 1
    assert props["lines"]["items"]["properties"]["qty"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 99,
    }
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 10},
        "maxItems": 3,
    }
    assert props["extra"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }
    assert props["status"] == {"enum": ["new", "paid"], "default": "new"}
    assert props["kind"] == {"enum": [1, 2, None]}
    assert props["note"] == {"type": ["string", "null"], "description": "Free */ text."}
    assert props["email"]["format"] == "email"
    assert props["author"] == {"type": "string", "minLength": 1, "readOnly": True}
    assert "secret" not in props
    assert props["price"]["type"] == ["string", "number"]
    assert props["when"] == {"type": "string", "format": "date-time"}


# -- AsyncAPI -------------------------------------------------------------------------


def test_asyncapi_structure():
    doc = asyncapi.build(title="Shop", version="2.1.0", address="/ws/shop/")
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] == "Shop"
    assert doc["channels"]["realtime"]["address"] == "/ws/shop/"
    messages = doc["components"]["messages"]
    for key in ("test.greet.v1", "test.greet.v2", "rt.welcome", "rt.error", "rt.hello"):
        assert key in messages
        assert doc["channels"]["realtime"]["messages"][key] == {
            "$ref": f"#/components/messages/{key}"
        }
    ops = doc["operations"]
    assert ops["sendTestNote"]["action"] == "send"
    assert "receiveTestNote" not in ops  # server-only
    assert "sendTestEcho" not in ops  # client-only
    assert ops["receiveTestGreet"]["messages"] == [
        {"$ref": "#/channels/realtime/messages/test.greet.v1"},
        {"$ref": "#/channels/realtime/messages/test.greet.v2"},
    ]
    # export_test.order v1 is client-only, v2 goes both ways.
    assert len(ops["receiveExportTestOrder"]["messages"]) == 2
    assert len(ops["sendExportTestOrder"]["messages"]) == 1
    assert ops["receiveRtSubscribe"]["action"] == "receive"
    assert ops["sendRtWelcome"]["action"] == "send"
    assert {"sendRtPing", "receiveRtPing"} <= set(ops)


def test_asyncapi_payloads_describe_the_wire_frames():
    messages = asyncapi.build()["components"]["messages"]

    def valid(key, frame):
        return jsonschema.Draft7Validator(messages[key]["payload"]).is_valid(frame)

    assert valid(
        "test.greet.v1",
        {"type": "test.greet", "v": 1, "data": {"room": "a", "text": "hi"}},
    )
    assert not valid(
        "test.greet.v1",
        {"type": "test.greet", "v": 2, "data": {"room": "a", "text": "hi"}},
    )
    assert not valid(
        "test.greet.v2",
        {"type": "test.greet", "v": 2, "data": {"room": "a", "text": "hi"}},
    )
    assert valid(
        "rt.error",
        {
            "type": "rt.error",
            "id": "1",
            "data": {"code": "invalid", "message": "m", "errors": {"a": ["b"]}},
        },
    )
    assert not valid(
        "rt.error", {"type": "rt.error", "data": {"code": "oops", "message": "m"}}
    )
    assert valid(
        "rt.subscribe",
        {"type": "rt.subscribe", "id": "x", "data": {"group": "room.1", "since": 3}},
    )


def test_typescript_structure():
    text = typescript.build()
    assert "export interface TestGreetV1 {\n  room: string;\n  text: string;\n}" in text
    assert 'lang: "en" | "fr";' in text
    assert "readonly author?: string;" in text
    assert "bill_to?: {" in text and "} | null;" in text
    assert "lines: Array<{" in text
    assert "extra?: { [key: string]: number };" in text
    assert "/** Free * / text. */" in text  # a */ in help text cannot end the comment
    assert "kind?: 1 | 2 | null;" in text
    assert '| { type: "test.greet"; v: 1; id?: string; data: TestGreetV1 }' in text
    assert '"test.greet": 2;' in text


def test_interface_names_do_not_collide():
    assert typescript.interface_name("chat.message", 2) == "ChatMessageV2"
    with registry.temporary():
        realtime.event("coll.a_b")(type("P1", (serializers.Serializer,), {}))
        realtime.event("coll_a.b")(type("P2", (serializers.Serializer,), {}))
        text = typescript.build()
    assert "interface CollABV1 " in text and "interface CollABV1_2 " in text


# -- the management command ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonschema", "asyncapi", "typescript"])
def test_management_command_writes_each_format(fmt, tmp_path, capsys):
    out = tmp_path / f"schema.{fmt}"
    call_command("realtime_schema", "--format", fmt, "--output", str(out))
    text = out.read_text()
    call_command("realtime_schema", "--format", fmt)
    assert capsys.readouterr().out == text
    if fmt == "typescript":
        assert "export type ServerEvent" in text
    else:
        document = json.loads(text)
        key = "asyncapi" if fmt == "asyncapi" else "test.greet"
        assert key in document


def test_management_command_options(capsys):
    call_command(
        "realtime_schema",
        "--title",
        "Shop",
        "--api-version",
        "3.2.1",
        "--address",
        "/live/",
    )
    document = json.loads(capsys.readouterr().out)
    assert document["info"]["title"] == "Shop"
    assert document["info"]["version"] == "3.2.1"
    assert document["channels"]["realtime"]["address"] == "/live/"
    with pytest.raises(CommandError):
        call_command("realtime_schema", "--format", "yaml")
