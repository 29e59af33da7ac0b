"""``python manage.py demo``: migrate, create demo users, serve with daphne."""

import os
import sys

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

DEMO_USERS = [
    ("alice", "alice-password"),
    ("bob", "bob-password"),
    ("carol", "carol-password"),
]


class Command(BaseCommand):
    help = "Migrate, create demo users and serve the example project with daphne."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--no-serve", action="store_true")

    def handle(self, *args, host, port, no_serve, **options):
        call_command("migrate", interactive=False, verbosity=0)
        User = get_user_model()
        for name, password in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=name)
            user.set_password(password)
            user.is_staff = user.is_superuser = name == "alice"
            user.save()
        self.stdout.write("Demo users (username / password):")
        for name, password in DEMO_USERS:
            self.stdout.write(f"  {name} / {password}")
        self.stdout.write(f"Open http://{host}:{port}/ and log in.")
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
