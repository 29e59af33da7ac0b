"""realtime.permissions: the one permission loop, for sync and async classes."""

from __future__ import annotations

import ast
import asyncio
import threading
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser

from realtime.exceptions import PermissionDenied
from realtime.permissions import (
    AllowAny,
    BasePermission,
    IsAuthenticated,
    IsStaff,
    check_permissions,
    denied_by,
)

# Sync checks run through database_sync_to_async, which touches the connections.
pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = Path(__file__).resolve().parents[2] / "realtime"


class Conn:
    """What a permission reads of a connection."""

    def __init__(self, user=None) -> None:
        self.user = user or AnonymousUser()


class Staff:
    is_authenticated = True
    is_staff = True


class Member:
    is_authenticated = True
    is_staff = False


calls: list[tuple[str, object]] = []


class SyncAllows(BasePermission):
    def has_permission(self, consumer):
        calls.append(("sync", threading.get_ident()))
        return True


class AsyncRefuses(BasePermission):
    message = "async says no"

    async def has_permission(self, consumer):
        calls.append(("async", threading.get_ident()))
        return False


class SyncRoom(BasePermission):
    message = "not your room"

    def has_subscribe_permission(self, consumer, group, room_id):
        calls.append(("room", (group, room_id)))
        return room_id == "1"


class AsyncMessage(BasePermission):
    message = "no shouting"

    async def has_message_permission(self, consumer, message):
        return message != "SHOUT"


class SyncOverAsync(IsAuthenticated):
    """A sync override returning what the async parent returns: a coroutine."""

    def has_subscribe_permission(self, consumer, group, **params):
        return super().has_permission(consumer)


@pytest.fixture(autouse=True)
def _clear():
    calls.clear()


async def test_sync_checks_run_in_a_thread_async_ones_on_the_loop():
    loop_thread = threading.get_ident()
    assert await denied_by([SyncAllows], "has_permission", Conn()) is None
    refusing = await denied_by([SyncAllows, AsyncRefuses], "has_permission", Conn())
    assert isinstance(refusing, AsyncRefuses)
    assert calls[0][1] != loop_thread  # a sync check may use the ORM
    assert calls[2] == ("async", loop_thread)


async def test_the_first_refusal_stops_the_loop_and_gives_the_reason():
    with pytest.raises(PermissionDenied) as refused:
        await check_permissions(
            [AsyncRefuses, SyncAllows], "has_message_permission", Conn(), "hi"
        )
    assert refused.value.detail == "async says no"
    assert refused.value.code == "forbidden"
    assert [kind for kind, _ in calls] == ["async"]  # SyncAllows never asked


async def test_subscribe_checks_get_the_pattern_parameters():
    await check_permissions(
        [SyncRoom], "has_subscribe_permission", Conn(Member()), "room.1", room_id="1"
    )
    with pytest.raises(PermissionDenied, match="not your room"):
        await check_permissions(
            [SyncRoom], "has_subscribe_permission", Conn(), "room.2", room_id="2"
        )
    assert calls == [("room", ("room.1", "1")), ("room", ("room.2", "2"))]


async def test_a_default_check_before_an_overriding_one_leaves_it_its_arguments():
    # The usual order, [IsAuthenticated, RoomExists]: the first defers to
    # has_permission; the second still gets the group and the pattern's parameters.
    await check_permissions(
        [SyncAllows, SyncRoom],
        "has_subscribe_permission",
        Conn(Member()),
        "room.1",
        room_id="1",
    )
    assert [call[0] for call in calls] == ["sync", "room"]
    assert calls[1] == ("room", ("room.1", "1"))


async def test_subscribe_and_message_checks_default_to_has_permission():
    # Not overridden, they run has_permission as it is written, sync or async.
    for check, args in (
        ("has_subscribe_permission", ("room.1",)),
        ("has_message_permission", ("hi",)),
    ):
        assert await denied_by([SyncAllows], check, Conn(), *args, room_id="1") is None
        refusing = await denied_by([AsyncRefuses], check, Conn(), *args)
        assert isinstance(refusing, AsyncRefuses)
    assert [kind for kind, _ in calls] == ["sync", "async", "sync", "async"]


async def test_message_checks_may_be_async():
    await check_permissions([AsyncMessage], "has_message_permission", Conn(), "hi")
    with pytest.raises(PermissionDenied, match="no shouting"):
        await check_permissions(
            [AsyncMessage], "has_message_permission", Conn(), "SHOUT"
        )


async def test_a_coroutine_returned_by_a_sync_check_is_awaited_not_truthy():
    refusing = await denied_by(
        [SyncOverAsync], "has_subscribe_permission", Conn(), "room.1"
    )
    assert isinstance(refusing, SyncOverAsync)
    assert (
        await denied_by(
            [SyncOverAsync], "has_subscribe_permission", Conn(Member()), "r"
        )
        is None
    )


@pytest.mark.parametrize(
    ("permission", "user", "allowed"),
    [
        (AllowAny, None, True),
        (IsAuthenticated, None, False),
        (IsAuthenticated, Member(), True),
        (IsStaff, Member(), False),
        (IsStaff, Staff(), True),
    ],
)
async def test_built_in_permissions_at_every_check(permission, user, allowed):
    for check, args in (
        ("has_permission", ()),
        ("has_subscribe_permission", ("room.1",)),
        ("has_message_permission", ("hi",)),
    ):
        refusing = await denied_by([permission], check, Conn(user), *args)
        assert (refusing is None) is allowed


async def test_classes_and_instances_both_work():
    instance = AsyncRefuses()
    assert await denied_by([instance], "has_permission", Conn()) is instance
    assert await denied_by([], "has_permission", Conn()) is None


async def test_a_sync_check_may_query_the_database(django_user_model):
    class HasAccount(BasePermission):
        def has_permission(self, consumer):
            return django_user_model.objects.filter(username="alice").exists()

    assert isinstance(
        await denied_by([HasAccount], "has_permission", Conn()), HasAccount
    )
    await django_user_model.objects.acreate(username="alice")
    assert await denied_by([HasAccount], "has_permission", Conn()) is None


def test_no_other_module_runs_permission_checks_itself():
    # One loop: every module asks realtime.permissions, none calls a check method.
    checks = {"has_permission", "has_subscribe_permission", "has_message_permission"}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "permissions.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in checks:
                raise AssertionError(f"{path.relative_to(PACKAGE)} calls {node.attr}")


async def test_checks_run_one_after_another():
    order: list[str] = []

    class Slow(BasePermission):
        async def has_permission(self, consumer):
            order.append("slow start")
            await asyncio.sleep(0.01)
            order.append("slow end")
            return True

    class Fast(BasePermission):
        async def has_permission(self, consumer):
            order.append("fast")
            return True

    assert await denied_by([Slow, Fast], "has_permission", Conn()) is None
    assert order == ["slow start", "slow end", "fast"]
