"""``python manage.py follow_room lobby``: print a room's messages as they are posted.

A script-side client of the chat, on ``realtime.client``: it signs in with the
user's DRF token, subscribes to ``room.<slug>``, prints each ``chat.message``, and
reprints the latest stored messages when the server says some may have been missed.
"""

import asyncio

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from example_project.chat.models import Message, Room
from realtime.client import ClientError, RealtimeClient, RecoveryFailed


class Command(BaseCommand):
    help = "Follow a chat room over the WebSocket and print its messages."

    def add_arguments(self, parser):
        parser.add_argument("room", help="the room's slug, e.g. lobby")
        parser.add_argument("--user", default="alice", help="who follows the room")
        parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/")
        parser.add_argument(
            "--count", type=int, default=None, help="stop after this many messages"
        )

    def handle(self, *args, room, user, url, count, **options):
        if not Room.objects.filter(slug=room).exists():
            raise CommandError(f"no room {room!r} (try: python manage.py demo)")
        try:
            account = get_user_model().objects.get(username=user)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {user!r}")
        token, _ = Token.objects.get_or_create(user=account)
        try:
            asyncio.run(self.follow(url, token.key, room, count))
        except KeyboardInterrupt:
            pass

    async def follow(self, url: str, token: str, room: str, count: int | None):
        async with RealtimeClient(url, token=token) as client:
            try:
                sub = await client.subscribe(f"room.{room}")
            except ClientError as error:
                raise CommandError(f"cannot follow {room}: {error.code}")
            self.stdout.write(f"Following #{room} as {client.user['username']}")
            self.stdout.flush()
            printed = 0
            while count is None or printed < count:
                try:
                    async for event in sub:
                        if event.type == "chat.message":
                            self.print_message(event.data)
                            printed += 1
                            if count is not None and printed >= count:
                                break
                except RecoveryFailed:
                    # Messages may have been missed (a server or Redis restarted):
                    # the database has them all.
                    self.stdout.write("(reconnected: latest messages)")
                    for data in await sync_to_async(latest)(room):
                        self.print_message(data)

    def print_message(self, data: dict) -> None:
        self.stdout.write(f"[{data['room']}] {data['author']}: {data['text']}")
        self.stdout.flush()


def latest(room: str, limit: int = 10) -> list[dict]:
    messages = Message.objects.filter(room__slug=room).select_related("author", "room")
    return [m.as_event() for m in reversed(messages.order_by("-id")[:limit])]
