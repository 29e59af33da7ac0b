"""transport.adapter.defer_debug_formatting: autobahn's debug-line arguments are
formatted only when a line is emitted, and an emitted line reads the same."""

from __future__ import annotations

import pprint
from types import ModuleType

import pytest
from django.test import override_settings

from realtime import transport
from realtime.transport import daphne as adapter


class Counted:
    """A value that counts how often it is formatted."""

    calls = 0

    def __repr__(self) -> str:
        Counted.calls += 1
        return "Counted()"


@pytest.fixture
def protocol(monkeypatch) -> ModuleType:
    """autobahn's websocket protocol module, undeferred, restored after the test."""
    import autobahn.util
    import daphne.server  # noqa: F401  (what serving on daphne has imported)
    from autobahn.twisted import websocket
    from autobahn.websocket import protocol

    originals = {
        "pformat": pprint.pformat,
        "hltype": autobahn.util.hltype,
        "hlval": autobahn.util.hlval,
    }
    for module in (protocol, websocket):
        for name in adapter.DEFERRED_FORMATTERS[module.__name__]:
            monkeypatch.setattr(module, name, originals[name])
    monkeypatch.setattr(protocol.Timings, "__str__", vars(protocol.Timings)["__str__"])
    return protocol


def config_log(protocol: ModuleType) -> list:
    """What WebSocketProtocol._connectionMade hands pformat (factory defaults)."""
    from autobahn.twisted.websocket import WebSocketServerFactory

    factory = WebSocketServerFactory()
    return [
        (name, getattr(factory, name), "WebSocketServerFactory")
        for name in protocol.WebSocketServerProtocol.CONFIG_ATTRS
    ]


def test_a_debug_argument_is_not_formatted_until_shown(protocol):
    assert adapter.defer_debug_formatting() is None
    Counted.calls = 0
    argument = protocol.pformat([Counted()])
    protocol.hlval(Counted())
    assert Counted.calls == 0
    assert str(argument) == "[Counted()]"
    assert Counted.calls == 1


def test_an_emitted_debug_line_reads_the_same(protocol):
    from autobahn.twisted import websocket
    from twisted.logger import Logger, formatEvent

    attrs = config_log(protocol)
    server = protocol.WebSocketServerProtocol
    eager = [
        "\n" + pprint.pformat(attrs),
        f"{protocol.hltype(server._connectionMade)}: {protocol.hlval(17)} bytes",
        f"{websocket.hltype(server.onConnect)} peer={websocket.hlval('tcp:1')}",
    ]
    assert adapter.defer_debug_formatting() is None
    events: list[dict] = []
    log = Logger(observer=events.append)
    log.debug("\n{attrs}", attrs=protocol.pformat(attrs))
    log.debug(
        "{func}: {n} bytes",
        func=protocol.hltype(server._connectionMade),
        n=protocol.hlval(17),
    )
    log.debug(
        "{func} peer={peer}",
        func=websocket.hltype(server.onConnect),
        peer=websocket.hlval("tcp:1"),
    )
    assert [formatEvent(event) for event in events] == eager
    assert repr(protocol.pformat(attrs)) == repr(pprint.pformat(attrs))


def test_timings_still_print(protocol):
    assert adapter.defer_debug_formatting() is None
    timings = protocol.Timings()
    timings.track("onOpen")
    assert str(timings) == pprint.pformat(timings._timings)


def test_deferring_twice_wraps_once(protocol):
    assert adapter.defer_debug_formatting() is None
    deferred = protocol.pformat
    assert adapter.defer_debug_formatting() is None
    assert protocol.pformat is deferred
    assert protocol.pformat.__wrapped__ is pprint.pformat


def test_an_autobahn_outside_the_checked_range_is_left_alone(protocol, monkeypatch):
    monkeypatch.setattr(adapter, "AUTOBAHN_SUPPORTED", ((0,), (0,)))
    assert "outside the supported range" in (adapter.defer_debug_formatting() or "")
    assert protocol.pformat is pprint.pformat


def test_a_formatter_replaced_by_someone_else_is_left_alone(protocol, monkeypatch):
    monkeypatch.setattr(protocol, "hlval", repr)
    assert adapter.defer_debug_formatting() == (
        "autobahn.websocket.protocol.hlval is not hlval"
    )
    assert protocol.pformat is pprint.pformat


def test_direct_writes_off_leaves_autobahn_alone(protocol):
    with override_settings(REALTIME={"DIRECT_WRITES": False}):
        transport.defer_server_formatting()
    assert protocol.pformat is pprint.pformat


def test_the_first_daphne_connection_defers(protocol):
    transport.usable.cache_clear()
    try:
        transport.usable("daphne")
    finally:
        transport.usable.cache_clear()
    assert protocol.pformat.__wrapped__ is pprint.pformat


def test_the_app_being_ready_defers(protocol):
    from django.apps import apps

    apps.get_app_config("realtime").ready()
    assert protocol.pformat.__wrapped__ is pprint.pformat
