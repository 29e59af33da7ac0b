"""An AsyncAPI 3.0 document of the WebSocket endpoint: every event and rt.* frame.

The document describes the server: clients' events are operations it ``receive``s,
server events are operations it ``send``s. Each message's payload is the whole
envelope (``type``, ``v``, ``id``, ``group``, ``seq``, ``data``), as sent on the wire.
"""

from __future__ import annotations

from typing import Any

from realtime.exceptions import ERROR_CODES
from realtime.exports.jsonschema import event_schema
from realtime.schema import Registry, registry

CHANNEL = "realtime"
_ANY: dict[str, Any] = {}
_USER = {
    "type": ["object", "null"],
    "properties": {"id": {}, "username": {"type": "string"}},
}


def _obj(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_GROUP = {"type": "string", "maxLength": 99, "pattern": "^[a-zA-Z0-9_.-]+$"}
_SEQ = {"type": ["integer", "null"]}
_EPOCH = {"type": ["string", "null"]}
_MEMBER = _obj({"id": _ANY, "username": {"type": "string"}})

#: The protocol's own frames: type -> (directions, summary, schema of data).
PROTOCOL: dict[str, tuple[tuple[str, ...], str, dict[str, Any]]] = {
    "rt.welcome": (
        ("send",),
        "First frame after accept.",
        _obj(
            {
                "protocol": {"const": 1},
                "connection_id": {"type": "string"},
                "heartbeat": {"type": "number"},
                "user": _USER,
                "auth_required": {"type": "boolean"},
                "max_frame_bytes": {"type": "integer"},
            },
            "protocol",
            "connection_id",
            "heartbeat",
            "user",
        ),
    ),
    "rt.auth": (
        ("receive",),
        "First-message authentication with a ticket or a DRF token.",
        _obj({"token": {"type": "string"}}, "token"),
    ),
    "rt.hello": (
        ("receive",),
        "The highest version of each event the client understands.",
        _obj(
            {
                "events": {
                    "type": "object",
                    "additionalProperties": {"type": "integer", "minimum": 1},
                }
            },
            "events",
        ),
    ),
    "rt.subscribe": (
        ("receive",),
        "Join a group, optionally resuming after `since` in `epoch`.",
        _obj(
            {
                "group": _GROUP,
                "since": {"type": "integer", "minimum": 0},
                "epoch": {"type": "string"},
            },
            "group",
        ),
    ),
    "rt.unsubscribe": (
        ("receive",),
        "Leave a group.",
        _obj({"group": _GROUP}, "group"),
    ),
    "rt.presence": (
        ("receive",),
        "Ask who is in a subscribed group.",
        _obj({"group": _GROUP}, "group"),
    ),
    "rt.ping": (("send", "receive"), "Application heartbeat.", _ANY),
    "rt.pong": (("send", "receive"), "Answer to rt.ping.", _ANY),
    "rt.ack": (
        ("send",),
        "Success reply to a frame with an id: the handler's result, or for "
        "rt.subscribe {group, seq, epoch, recovered}.",
        _ANY,
    ),
    "rt.error": (
        ("send",),
        "Failure reply; `errors` holds DRF field errors for code `invalid`.",
        _obj(
            {
                "code": {"enum": list(ERROR_CODES)},
                "message": {"type": "string"},
                "errors": _ANY,
            },
            "code",
            "message",
        ),
    ),
    "rt.presence.join": (("send",), "A user joined a subscribed group.", _MEMBER),
    "rt.presence.leave": (("send",), "A user left a subscribed group.", _MEMBER),
}


def _envelope(type: str, version: int | None, data: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {"type": {"const": type}}
    if version is not None:
        properties["v"] = {"const": version}
    properties.update(
        {
            "id": {"type": "string", "minLength": 1, "maxLength": 128},
            "group": {"type": "string"},
            "seq": {"type": "integer"},
            "data": data,
        }
    )
    return _obj(properties, "type")


def _key(type: str, version: int | None = None) -> str:
    return type if version is None else f"{type}.v{version}"


def _op_id(action: str, key: str) -> str:
    return action + "".join(
        part.capitalize() for part in key.replace("_", ".").split(".")
    )


def build(
    source: Registry = registry,
    *,
    title: str = "realtime",
    version: str = "1.0.0",
    address: str = "/ws/",
    description: str = "",
    servers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the AsyncAPI 3.0 document (a dict ready for JSON or YAML)."""
    messages: dict[str, Any] = {}
    by_action: dict[str, dict[str, list[str]]] = {"send": {}, "receive": {}}
    for spec in source:
        key = _key(spec.type, spec.version)
        data = event_schema(spec, standalone=False)
        messages[key] = {
            "name": spec.type,
            "title": f"{spec.type} v{spec.version}",
            "summary": spec.description or f"{spec.type} version {spec.version}",
            "contentType": "application/json",
            "payload": _envelope(spec.type, spec.version, data),
            "x-realtime-direction": spec.direction,
        }
        if spec.sent_by_server():
            by_action["send"].setdefault(spec.type, []).append(key)
        if spec.accepts_from_client():
            by_action["receive"].setdefault(spec.type, []).append(key)
    for type, (actions, summary, data) in PROTOCOL.items():
        messages[type] = {
            "name": type,
            "title": type,
            "summary": summary,
            "contentType": "application/json",
            "payload": _envelope(type, None, data),
        }
        for action in actions:
            by_action[action].setdefault(type, []).append(type)

    operations: dict[str, Any] = {}
    for action, types in by_action.items():
        for type, keys in sorted(types.items()):
            operations[_op_id(action, type)] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "summary": f"The server {action}s {type}.",
                "messages": [
                    {"$ref": f"#/channels/{CHANNEL}/messages/{key}"} for key in keys
                ],
            }
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": description
            or "WebSocket events of this site (realtime protocol 1).",
        },
        "defaultContentType": "application/json",
        "channels": {
            CHANNEL: {
                "address": address,
                "title": "The realtime WebSocket endpoint",
                "messages": {
                    key: {"$ref": f"#/components/messages/{key}"} for key in messages
                },
            }
        },
        "operations": operations,
        "components": {"messages": messages},
    }
    if servers:
        document["servers"] = servers
        document["channels"][CHANNEL]["servers"] = [
            {"$ref": f"#/servers/{name}"} for name in servers
        ]
    return document
