"""``python manage.py demo``: migrate, create demo users and rooms, serve with daphne."""

import os
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from example_project.chat.models import Message, Room
from example_project.notes.models import Note

DEMO_USERS = [
    ("alice", "alice-password"),
    ("bob", "bob-password"),
    ("carol", "carol-password"),
]
DEMO_ROOMS = [("lobby", "Lobby"), ("random", "Random"), ("dev", "Dev")]
# Shared documents: carol may read the release notes, not change them.
DEMO_NOTES = [("meeting", "Meeting notes", []), ("release", "Release notes", ["carol"])]


class Command(BaseCommand):
    help = "Migrate, create demo users and rooms, and serve the project with daphne."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="Set up the database and users, but do not start daphne.",
        )

    def handle(self, *args, host, port, no_serve, **options):
        call_command("migrate", interactive=False, verbosity=0)
        User = get_user_model()
        for name, password in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=name)
            user.set_password(password)
            user.is_staff = user.is_superuser = name == "alice"
            user.save()
        for slug, name in DEMO_ROOMS:
            Room.objects.get_or_create(slug=slug, defaults={"name": name})
        for slug, title, viewers in DEMO_NOTES:
            note, _ = Note.objects.get_or_create(slug=slug, defaults={"title": title})
            note.viewers.set(User.objects.filter(username__in=viewers))
        lobby = Room.objects.get(slug="lobby")
        if not lobby.messages.exists():
            Message.objects.create(
                room=lobby,
                author=User.objects.get(username="carol"),
                text="Welcome! Open a second browser window as @bob and say hi.",
            )

        layer = "Redis at " + settings.REDIS_URL if settings.REDIS_URL else "in-memory"
        self.stdout.write(f"Database: {settings.DATABASES['default']['NAME']}")
        self.stdout.write(f"Channel layer, history and presence: {layer}")
        self.stdout.write("Demo users (username / password):")
        for name, password in DEMO_USERS:
            admin = "  (staff: /admin/)" if name == "alice" else ""
            self.stdout.write(f"  {name} / {password}{admin}")
        self.stdout.write(
            self.style.SUCCESS(f"Open http://{host}:{port}/ and log in.")
            if not no_serve
            else f"Serve it with: daphne -p {port} example_project.asgi:application"
        )
        if no_serve:
            return
        sys.stdout.flush()
        os.execvp(
            sys.executable,
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                host,
                "-p",
                str(port),
                "example_project.asgi:application",
            ],
        )
