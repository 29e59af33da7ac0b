from pathlib import Path

from django.urls import include, path
from django.views.static import serve

TESTS = Path(__file__).resolve().parent

urlpatterns = [
    path("realtime/", include("realtime.urls")),
    path("inbox/", include("realtime.inbox.urls")),
    # The JS client and its browser test page (tests/e2e/test_browser.py).
    path(
        "rt-static/<path:path>",
        serve,
        {"document_root": TESTS.parent / "realtime/static"},
    ),
    path("rt-test/<path:path>", serve, {"document_root": TESTS / "js"}),
]
