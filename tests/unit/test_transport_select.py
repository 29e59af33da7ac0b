"""realtime.transport: which frame writer a connection gets, and the version gate."""

from __future__ import annotations

import logging
from importlib.metadata import version

import pytest
from django.test import override_settings

from realtime import transport
from realtime.transport import daphne, uvicorn, versions


async def plain_send(message: dict) -> None:
    """An ASGI send of no known server (Channels' communicator, hypercorn, ...)."""


def test_a_send_of_another_server_gets_the_asgi_send():
    assert transport.frame_writer(plain_send) is transport.ASGI_SEND


def test_the_asgi_send_declines_every_frame_and_holds_nothing():
    writer = transport.ASGI_SEND
    assert writer(transport.text_frame("x")) is False
    writer.flush()  # nothing held: nothing to write, nothing raised


@pytest.mark.parametrize("server", [daphne, uvicorn])
def test_direct_writes_off_gives_every_server_the_asgi_send(server):
    # A send that looks like the server's: its module is the server's.
    async def send(message: dict) -> None: ...

    send.__module__ = f"{server.NAME}.fake"
    with override_settings(REALTIME={"DIRECT_WRITES": False}):
        assert transport.frame_writer(send) is transport.ASGI_SEND


def test_a_server_outside_its_range_is_logged_once_at_info(monkeypatch, caplog):
    transport.usable.cache_clear()
    monkeypatch.setattr(daphne, "SUPPORTED", ((0,), (0,)))
    with caplog.at_level(logging.INFO, logger="realtime.transport"):
        assert transport.usable("daphne") is False
        assert transport.usable("daphne") is False
    transport.usable.cache_clear()
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        f"daphne: daphne {version('daphne')} is outside the supported range "
        ">=0,<0; every frame goes through the ASGI send"
    )


@pytest.mark.parametrize("server", [daphne, uvicorn])
def test_an_installed_server_in_range_passes_its_check(server):
    # Its internals are what the writer reads (else every deployment of a supported
    # version would quietly lose the direct writes); `nox -s servers` also installs
    # versions from before the range.
    outside = versions.out_of_range(server.NAME, *server.SUPPORTED)
    assert server.check() == outside


def test_installed_reads_the_numeric_release():
    assert versions.installed("daphne") == tuple(
        int(part) for part in version("daphne").split(".")[:3]
    )
    assert versions.installed("no-such-distribution-for-realtime") is None
    assert versions.out_of_range("no-such-distribution-for-realtime", (1,), (2,)) == (
        "no-such-distribution-for-realtime not installed is outside the supported "
        "range >=1,<2"
    )


def test_a_daphne_send_of_an_unknown_shape_gets_no_direct_writer():
    # daphne's module, but not partial(Server.handle_reply, protocol).
    async def send(message: dict) -> None: ...

    send.__module__ = "daphne.server"
    assert daphne.writer(send) is None
    assert transport.frame_writer(send) is transport.ASGI_SEND
