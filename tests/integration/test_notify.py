"""notify(): payloads, the sync/async split, transactions and the Redis fast path."""

import datetime
import subprocess
import sys
import uuid
from decimal import Decimal

import orjson
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils.translation import gettext_lazy

import realtime
from realtime.exceptions import BadEnvelope, ValidationFailed
from realtime.fastpath import fast_path
from realtime.testing import RealtimeCommunicator, capture_notifications
from tests.asgi import application
from tests.support.processes import ROOT

PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"


async def subscribed(group):
    comm = RealtimeCommunicator(application, "/ws/")
    connected, _ = await comm.connect()
    assert connected
    reply = await comm.subscribe(group)
    assert reply["type"] == "rt.ack", reply
    return comm


async def next_event(comm, timeout=5):
    frame = await comm.receive_frame(timeout)
    while frame["type"] in ("rt.ping", "rt.presence.join"):
        frame = await comm.receive_frame(timeout)
    return frame


def test_payload_with_dates_uuids_decimals_is_serialised():
    moment = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    with capture_notifications() as sent:
        realtime.notify(
            "public.x",
            "test.note",
            {
                "text": "hi",
                "label": gettext_lazy("lazy"),
                "at": moment,
                "day": moment.date(),
                "id": ident,
                "price": Decimal("9.90"),
                "took": datetime.timedelta(seconds=90),
                "tags": ("a", "b"),
                "by_id": {1: "one"},
            },
        )
    assert sent == [
        {
            "group": "public.x",
            "type": "test.note",
            "v": 1,
            "seq": 1,
            "data": {
                "text": "hi",
                "label": "lazy",
                "at": "2024-05-01T12:30:00+00:00",
                "day": "2024-05-01",
                "id": "12345678-1234-5678-1234-567812345678",
                "price": "9.90",
                "took": "P0DT00H01M30S",
                "tags": ["a", "b"],
                "by_id": {"1": "one"},
            },
            "sent": True,
        }
    ]


def test_invalid_payload_raises_before_anything_is_sent():
    with capture_notifications() as sent:
        with pytest.raises(ValidationFailed) as info:
            realtime.notify("public.x", "test.note", {"n": "not a number"})
        with pytest.raises(BadEnvelope):
            realtime.notify("bad group!", "test.note", {"text": "x"})
    assert "text" in info.value.errors and "n" in info.value.errors
    assert sent == []


def test_notify_user_targets_the_personal_group():
    with capture_notifications() as sent:
        realtime.notify_user(42, "test.note", {"text": "yours"})
    assert [(s["group"], s["data"]) for s in sent] == [("user.42", {"text": "yours"})]


@pytest.mark.parametrize("name", ["notify", "notify_user"])
async def test_sync_form_inside_an_event_loop_names_the_async_twin(name):
    with pytest.raises(RuntimeError, match=f"await realtime.a{name}"):
        getattr(realtime, name)("public.x", "test.note", {"text": "x"})


def test_realtime_notify_stays_the_function_whatever_is_imported():
    # No submodule is named ``notify``: importing every module of the package, in a
    # fresh interpreter, cannot rebind ``realtime.notify``, and calling it notifies.
    code = (
        "import django; django.setup()\n"
        "import importlib, pkgutil, realtime\n"
        "for info in pkgutil.walk_packages(realtime.__path__, 'realtime.'):\n"
        "    importlib.import_module(info.name)\n"
        "from realtime import notify\n"
        "from realtime.publishing import notify as implementation\n"
        "from realtime.testing import capture_notifications\n"
        "assert notify is realtime.notify is implementation, realtime.notify\n"
        "with capture_notifications() as sent:\n"
        "    realtime.notify('public.x', 'test.note', {'text': 'hi'})\n"
        "print(len(sent))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "1", done.stderr


# -- transactions ---------------------------------------------------------------------


def in_atomic(*, fail=False, **kw):
    """Notify inside atomic(); return how many events left before the block ended."""
    with capture_notifications() as sent:
        try:
            with transaction.atomic():
                realtime.notify("public.tx", "test.note", {"text": "in tx"}, **kw)
                before_exit = len(sent.sent)  # published, not waiting for commit
                if fail:
                    raise ValueError("roll back")
        except ValueError:
            pass
    return before_exit


def marker():
    realtime.notify("public.tx", "test.note", {"text": "marker"})


@pytest.mark.django_db(transaction=True)
async def test_event_leaves_after_commit():
    comm = await subscribed("public.tx")
    assert await database_sync_to_async(in_atomic)() == 0
    frame = await next_event(comm)
    assert frame["data"] == {"text": "in tx"}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_event_is_dropped_on_rollback():
    comm = await subscribed("public.tx")
    assert await database_sync_to_async(in_atomic)(fail=True) == 0
    await database_sync_to_async(marker)()
    # The first event to arrive is the marker sent after the rollback.
    assert (await next_event(comm))["data"] == {"text": "marker"}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_on_commit_false_sends_at_once_even_if_rolled_back():
    comm = await subscribed("public.tx")
    assert await database_sync_to_async(in_atomic)(fail=True, on_commit=False) == 1
    assert (await next_event(comm))["data"] == {"text": "in tx"}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_setting_turns_on_commit_off(settings):
    settings.REALTIME = {**settings.REALTIME, "NOTIFY_ON_COMMIT": False}
    comm = await subscribed("public.tx")
    assert await database_sync_to_async(in_atomic)(fail=True) == 1
    assert (await next_event(comm))["data"] == {"text": "in tx"}
    # ...and the argument still wins over the setting.
    assert await database_sync_to_async(in_atomic)(fail=True, on_commit=True) == 0
    await database_sync_to_async(marker)()
    assert (await next_event(comm))["data"] == {"text": "marker"}
    await comm.disconnect()


# -- Redis: the one-round-trip path -----------------------------------------------------


def use_pubsub(settings, redis_url):
    from channels.layers import channel_layers

    from realtime import backends

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": PUBSUB, "CONFIG": {"hosts": [redis_url]}}
    }
    channel_layers.backends = {}
    backends.reset()


@pytest.mark.parametrize("layer", ["core", "pubsub"])
@pytest.mark.django_db(transaction=True)
async def test_sync_notify_on_redis_reaches_subscribers_with_history(
    layer, redis_layer, settings
):
    if layer == "pubsub":
        use_pubsub(settings, redis_layer)
    assert fast_path(history=True) is not None
    comm = await subscribed("public.fast")

    def send(text):
        realtime.notify("public.fast", "test.note", {"text": text})

    await database_sync_to_async(send)("one")
    await database_sync_to_async(send)("two")
    first, second = await next_event(comm), await next_event(comm)
    assert (first["seq"], first["data"]) == (1, {"text": "one"})
    assert (second["seq"], second["data"]) == (2, {"text": "two"})
    assert first["group"] == "public.fast" and first["v"] == 1
    # History written by the fast path replays through the async Redis backend.
    await comm.request("rt.unsubscribe", {"group": "public.fast"})
    reply = await comm.subscribe("public.fast", since=1)
    assert reply["data"]["recovered"] is True, reply
    assert (await next_event(comm))["data"] == {"text": "two"}
    await comm.disconnect()


def test_fast_path_writes_what_the_layer_itself_would(redis_layer):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("public.wire", channel)
    realtime.notify("public.wire", "test.note", {"text": "x"}, history=False)
    realtime.notify("public.wire", "test.note", {"text": "y"})

    async def receive_two():
        # One loop for both: channels-redis' receive buffers per loop, and two
        # async_to_sync calls (two loops) can hand out the same message twice.
        return [await layer.receive(channel) for _ in range(2)]

    got = async_to_sync(receive_two)()
    assert got[0] == {
        "type": "rt.event",
        "group": "public.wire",
        "event": "test.note",
        "v": 1,
        "seq": None,
        "epoch": None,
        "text": '{"type":"test.note","v":1,"group":"public.wire","data":{"text":"x"}}',
    }
    assert got[1]["seq"] == 1
    assert isinstance(got[1]["epoch"], str) and got[1]["epoch"]
    assert orjson.loads(got[1]["text"])["seq"] == 1


def test_fast_path_from_many_threads_keeps_replies_apart(redis_layer):
    """Each thread has its own connection: every call gets its own seq back."""
    from concurrent.futures import ThreadPoolExecutor

    def send(i: int) -> None:
        realtime.notify("public.threads", "test.note", {"text": str(i)})

    with capture_notifications() as sent, ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(200)))
    assert sorted(event["seq"] for event in sent) == list(range(1, 201))
    assert {event["data"]["text"] for event in sent} == {str(i) for i in range(200)}


def test_connections_are_reused_across_threads_and_bounded_by_concurrency(
    redis_layer,
):
    """A thread per request (runserver, gevent) must not mean a connection per
    request: idle connections outlive their thread; concurrent callers get one each."""
    import threading

    import redis

    from realtime.fastpath import CLIENT_NAME

    probe = redis.Redis.from_url(redis_layer)

    def ours() -> set[int]:
        return {c["id"] for c in probe.client_list() if c["name"] == CLIENT_NAME}

    def in_threads(count: int, calls: int, barrier: threading.Barrier | None) -> None:
        def work() -> None:
            if barrier is not None:
                barrier.wait(5)  # all callers at once
            for i in range(calls):
                realtime.notify("public.conn", "test.note", {"text": str(i)})

        threads = [threading.Thread(target=work) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)

    before = ours()  # an earlier test's, if its sender is not collected yet
    in_threads(1, 1, None)
    first = ours() - before
    assert len(first) == 1
    for _ in range(10):  # ten short-lived threads, one after the other
        in_threads(1, 3, None)
    assert ours() - before == first  # the same connection, never reopened
    in_threads(4, 20, threading.Barrier(4))
    new = ours() - before
    assert first <= new and len(new) <= 4  # at most one per concurrent caller


def test_nested_captures_with_equal_contents_end_separately():
    with capture_notifications() as outer:
        with capture_notifications() as inner:
            realtime.notify("public.cap", "test.note", {"text": "same"})
        realtime.notify("public.cap", "test.note", {"text": "outer only"})
    assert [e["data"]["text"] for e in inner] == ["same"]
    assert [e["data"]["text"] for e in outer] == ["same", "outer only"]


def test_fast_path_steps_aside_when_it_cannot_match_the_layer(redis_layer, settings):
    from channels.layers import channel_layers

    config = {"hosts": [redis_layer], "channel_capacity": {"x.*": 5}}
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": config,
        }
    }
    channel_layers.backends = {}
    assert fast_path(history=False) is None
    with capture_notifications() as sent:
        realtime.notify("public.y", "test.note", {"text": "via the loop"})
    assert sent[0]["seq"] == 1


@pytest.mark.e2e
def test_benchmark_script_runs():
    done = subprocess.run(
        [sys.executable, "benchmarks/notify_sync.py", "-n", "30"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "speed-up of notify() with history over baseline" in done.stdout


@pytest.mark.parametrize(
    "chunks, expected",
    [
        ([b"*2\r\n:5\r\n:0\r\n"], [5, 0]),
        ([b"*2\r\n:1", b"2\r\n:3\r", b"\n"], [12, 3]),  # in pieces
        ([b"*2\r\n$-1\r\n:0\r\n"], [None, 0]),  # no history: seq is nil
        ([b"-NOSCRIPT No matching script.\r\n"], "NoScriptError"),
        ([b"-ERR boom\r\n"], "ResponseError"),
        ([b"+OK\r\n"], "InvalidResponse"),
        ([b"*2\r\n:5", None], "InvalidResponse"),  # cut: the script ran, no retry
        ([None], "ConnectionError"),  # nothing back: a stale socket, retried once
        ([], "TimeoutError"),
    ],
)
def test_fast_path_reads_only_the_scripts_reply(chunks, expected):
    import socket

    import redis

    from realtime.fastpath.resp import exchange

    ours, server = socket.socketpair()
    ours.settimeout(0.3)

    class Conn:
        _sock = ours

        def connect(self):
            raise AssertionError("already connected")

    try:
        for chunk in chunks:
            if chunk is None:
                server.shutdown(socket.SHUT_WR)  # the server hangs up after this
            else:
                server.sendall(chunk)
        if isinstance(expected, list):
            assert exchange(Conn(), b"PING\r\n") == expected
        else:
            with pytest.raises(getattr(redis.exceptions, expected)) as raised:
                exchange(Conn(), b"PING\r\n")
            # Only "nothing came back" may be retried by the caller.
            retried = isinstance(raised.value, redis.exceptions.ConnectionError)
            assert retried == (expected == "ConnectionError")
    finally:
        ours.close()
        server.close()


def test_history_policy_follows_a_settings_change(settings):
    from realtime.history import keeps_history

    assert keeps_history("public.a") is True
    settings.REALTIME = {**settings.REALTIME, "HISTORY_GROUPS": ["room.*"]}
    assert keeps_history("public.a") is False  # not the answer remembered above
    assert keeps_history("room.1") is True
    settings.REALTIME = {**settings.REALTIME, "HISTORY_GROUPS": []}
    assert keeps_history("room.1") is False
