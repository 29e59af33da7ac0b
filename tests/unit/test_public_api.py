"""The public names and the import paths the README and docs/ show users."""

import inspect
from importlib import import_module

import pytest

import realtime

TOP_LEVEL = {
    # name: the module that implements it
    "Message": "realtime.envelope",
    "RealtimeConsumer": "realtime.consumers",
    "anotify": "realtime.publishing",
    "anotify_user": "realtime.publishing",
    "batch": "realtime.publishing",
    "broadcast_model": "realtime.broadcast",
    "downgrader": "realtime.schema",
    "event": "realtime.schema",
    "handler": "realtime.consumers",
    "notify": "realtime.publishing",
    "notify_user": "realtime.publishing",
    "registry": "realtime.schema",
    "upgrader": "realtime.schema",
    "websocket_app": "realtime.asgi",
}

# (module, name) pairs written in the README and docs/, and the settings' defaults.
DOCUMENTED = [
    ("realtime.consumers", "RealtimeConsumer"),
    ("realtime.consumers", "Message"),
    ("realtime.consumers", "handler"),
    ("realtime.permissions", "BasePermission"),
    ("realtime.permissions", "AllowAny"),
    ("realtime.permissions", "IsAuthenticated"),
    ("realtime.permissions", "IsStaff"),
    ("realtime.auth", "BaseAuthenticator"),
    ("realtime.auth", "SessionAuthenticator"),
    ("realtime.auth", "TicketAuthenticator"),
    ("realtime.auth", "HeaderAuthenticator"),
    ("realtime.auth", "FirstMessageAuthenticator"),
    ("realtime.auth", "Credential"),
    ("realtime.connection", "ConnectionState"),
    ("realtime.asgi", "websocket_app"),
    ("realtime.testing", "RealtimeCommunicator"),
    ("realtime.testing", "capture_notifications"),
    ("realtime.exceptions", "RealtimeError"),
    ("realtime.exceptions", "PermissionDenied"),
    ("realtime.exceptions", "NotifyFailed"),
    ("realtime.exceptions", "ValidationFailed"),
    ("realtime.schema", "registry"),
    ("realtime.presence", "members"),
    ("realtime.presence", "amembers"),
    ("realtime.logs", "ConnectionLog"),
    ("realtime.logs", "ContextFilter"),
    ("realtime.logs", "JSONFormatter"),
    ("realtime.inbox.models", "Notification"),
    ("realtime.inbox.store", "store"),
    ("realtime.inbox.urls", "urlpatterns"),
    ("realtime.urls", "urlpatterns"),
    ("realtime.exports.jsonschema", "export"),
    ("realtime.exports.jsonschema", "FIELD_SCHEMAS"),
    ("realtime.exports.typescript", "build"),
    ("realtime.exports.asyncapi", "build"),
    ("realtime.backends.base", "BaseBackend"),
    ("realtime.backends.memory", "MemoryBackend"),
    ("realtime.backends.redis", "RedisBackend"),
]


def test_public_names_are_pinned():
    assert sorted(realtime.__all__) == sorted(["__version__", *TOP_LEVEL])
    assert sorted(dir(realtime)) == sorted(realtime.__all__)
    assert realtime.__version__ == "0.1.0"


@pytest.mark.parametrize("name", sorted(TOP_LEVEL))
def test_top_level_name_is_the_implementation(name):
    value = getattr(realtime, name)
    assert value is getattr(import_module(TOP_LEVEL[name]), name)
    # Functions and classes, except the registry instance.
    assert inspect.isclass(value) or inspect.isfunction(value) or name == "registry"


def test_from_realtime_import_the_functions():
    from realtime import anotify, notify, notify_user

    assert inspect.isfunction(notify) and notify is realtime.notify
    assert inspect.iscoroutinefunction(anotify)
    assert inspect.isfunction(notify_user)


def test_unknown_top_level_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'notiffy'"):
        realtime.notiffy  # noqa: B018


@pytest.mark.parametrize(("module", "name"), DOCUMENTED)
def test_documented_import_path_works(module, name):
    assert hasattr(import_module(module), name)
    if name in TOP_LEVEL:
        assert getattr(import_module(module), name) is getattr(realtime, name)


def test_settings_default_import_strings_resolve():
    from realtime.settings import DEFAULTS, IMPORT_STRINGS

    for setting in IMPORT_STRINGS:
        value = DEFAULTS[setting]
        for path in value if isinstance(value, (list, tuple)) else [value]:
            if path is None:
                continue
            module, _, name = path.rpartition(".")
            assert inspect.isclass(getattr(import_module(module), name)), path
