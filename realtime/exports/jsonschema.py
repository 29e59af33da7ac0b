"""JSON Schema (2020-12) of each event's payload, from its DRF serializer.

The schemas avoid keywords newer than draft-07 so that AsyncAPI (whose default
schema format is a draft-07 superset) can embed them unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rest_framework import fields, relations, serializers

from realtime.schema import EventSpec, Registry, registry

DIALECT = "https://json-schema.org/draft/2020-12/schema"
FieldMapper = Callable[[fields.Field], dict[str, Any]]


def _string(format: str | None = None) -> FieldMapper:
    return lambda field: {"type": "string", **({"format": format} if format else {})}


def _char(field: fields.Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    min_length = getattr(field, "min_length", None)
    if not getattr(field, "allow_blank", True):
        min_length = max(min_length or 0, 1)
    if min_length:
        schema["minLength"] = min_length
    if getattr(field, "max_length", None) is not None:
        schema["maxLength"] = field.max_length
    return schema


def _number(type: str) -> FieldMapper:
    def mapper(field: fields.Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": type}
        if getattr(field, "min_value", None) is not None:
            schema["minimum"] = field.min_value
        if getattr(field, "max_value", None) is not None:
            schema["maximum"] = field.max_value
        return schema

    return mapper


def _decimal(field: fields.Field) -> dict[str, Any]:
    # DRF accepts numbers and numeric strings, and renders Decimals as strings.
    return {"type": ["string", "number"], "format": "decimal"}


def _choice(field: fields.Field) -> dict[str, Any]:
    return {"enum": list(field.choices)}


def _multiple_choice(field: fields.Field) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"enum": list(field.choices)},
        "uniqueItems": True,
    }


def _list(field: fields.Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": field_schema(field.child)}
    min_items = getattr(field, "min_length", None)
    if not getattr(field, "allow_empty", True):
        min_items = max(min_items or 0, 1)
    if min_items:
        schema["minItems"] = min_items
    if getattr(field, "max_length", None) is not None:
        schema["maxItems"] = field.max_length
    return schema


def _dict(field: fields.Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    child = field_schema(field.child)
    if child:
        schema["additionalProperties"] = child
    return schema


def _regex(field: fields.Field) -> dict[str, Any]:
    schema = _char(field)
    for validator in field.validators:
        pattern = getattr(getattr(validator, "regex", None), "pattern", None)
        if pattern:
            schema["pattern"] = pattern
    return schema


def _many_related(field: fields.Field) -> dict[str, Any]:
    return {"type": "array", "items": field_schema(field.child_relation)}


#: DRF field class -> mapper; the first class in a field's MRO that is here wins.
#: Add entries for your own field classes (or give a field a ``json_schema`` dict).
FIELD_SCHEMAS: dict[type, FieldMapper] = {
    fields.BooleanField: lambda field: {"type": "boolean"},
    fields.CharField: _char,
    fields.EmailField: lambda field: {**_char(field), "format": "email"},
    fields.URLField: lambda field: {**_char(field), "format": "uri"},
    fields.SlugField: lambda field: {**_char(field), "pattern": "^[-a-zA-Z0-9_]+$"},
    fields.RegexField: _regex,
    fields.UUIDField: _string("uuid"),
    fields.IPAddressField: _string(),
    fields.IntegerField: _number("integer"),
    fields.FloatField: _number("number"),
    fields.DecimalField: _decimal,
    fields.DateTimeField: _string("date-time"),
    fields.DateField: _string("date"),
    fields.TimeField: _string("time"),
    fields.DurationField: _string("duration"),
    fields.ChoiceField: _choice,
    fields.MultipleChoiceField: _multiple_choice,
    fields.FilePathField: _choice,
    fields.FileField: _string(),
    fields.ListField: _list,
    fields.DictField: _dict,
    fields.HStoreField: _dict,
    fields.JSONField: lambda field: {},
    fields.ReadOnlyField: lambda field: {},
    fields.SerializerMethodField: lambda field: {},
    relations.PrimaryKeyRelatedField: lambda field: {"type": ["integer", "string"]},
    relations.SlugRelatedField: _string(),
    relations.HyperlinkedRelatedField: _string("uri"),
    relations.StringRelatedField: _string(),
    relations.ManyRelatedField: _many_related,
}


def field_schema(field: fields.Field) -> dict[str, Any]:
    """The JSON Schema of one DRF field (nested serializers included)."""
    if isinstance(getattr(field, "json_schema", None), dict):
        schema = dict(field.json_schema)
    elif isinstance(field, serializers.ListSerializer):
        schema = _list(field)
    elif isinstance(field, serializers.BaseSerializer):
        schema = serializer_schema(field)
    else:
        schema = {}
        for klass in type(field).__mro__:
            mapper = FIELD_SCHEMAS.get(klass)
            if mapper is not None:
                schema = mapper(field)
                break
    # Only an explicit label: DRF derives one from every field's name.
    label = getattr(field, "_kwargs", {}).get("label")
    if label and "title" not in schema:
        schema["title"] = str(label)
    if field.help_text:
        schema["description"] = str(field.help_text)
    default = field.default
    if default is not fields.empty and not callable(default) and _is_json(default):
        schema["default"] = default
    if field.read_only:
        schema["readOnly"] = True
    if field.write_only:
        schema["writeOnly"] = True
    if field.allow_null:
        schema = _nullable(schema)
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return {**schema, "type": [*kind, "null"]}
    if not schema or set(schema) <= {"title", "description", "readOnly", "default"}:
        return schema  # already accepts anything
    return {"anyOf": [schema, {"type": "null"}]}


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def serializer_schema(serializer: serializers.BaseSerializer) -> dict[str, Any]:
    """An object schema with one property per (non-hidden) field of ``serializer``."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in serializer.fields.items():
        if isinstance(field, fields.HiddenField):
            continue  # never on the wire
        properties[name] = field_schema(field)
        if field.required and not field.read_only:
            required.append(name)
    # Unknown keys are ignored by DRF on input, so they are allowed here too.
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def event_schema(spec: EventSpec, *, standalone: bool = True) -> dict[str, Any]:
    """The schema of one event version's ``data``; ``standalone`` adds $schema/$id."""
    schema = serializer_schema(spec.serializer_class())
    head: dict[str, Any] = {}
    if standalone:
        head = {
            "$schema": DIALECT,
            "$id": f"urn:realtime:event:{spec.type}:v{spec.version}",
        }
    head["title"] = f"{spec.type} v{spec.version}"
    if spec.description:
        head["description"] = spec.description
    return {**head, **schema}


def export(source: Registry = registry) -> dict[str, dict[str, dict[str, Any]]]:
    """Every event: ``{type: {version (str): schema of data}}``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for spec in source:
        out.setdefault(spec.type, {})[str(spec.version)] = event_schema(spec)
    return out
