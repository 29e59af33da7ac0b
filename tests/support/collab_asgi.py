"""``daphne tests.support.collab_asgi:application``: the shared-documents consumer of
tests/support/collab.py in a real server process (e2e settings)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e_settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from tests.support.collab import application as _build  # noqa: E402

application = _build()
