"""Settings for daphne processes started by the e2e tests (see conftest.daphne).

``RT_SET_<KEY>`` environment variables override ``REALTIME[<KEY>]``, as JSON:
numbers, null, lists and dicts (``RT_SET_HISTORY_GROUPS='["public.h-*"]'``).
"""

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import ALLOWED_HOSTS, REALTIME

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["RT_TEST_DB"],
        "OPTIONS": {"timeout": 20},
    }
}
if os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": os.environ.get(
                "RT_LAYER", "channels_redis.core.RedisChannelLayer"
            ),
            "CONFIG": {
                "hosts": os.environ.get(
                    "RT_LAYER_HOSTS", os.environ["REDIS_URL"]
                ).split(",")
            },
        }
    }
if os.environ.get("RT_SENTINEL"):
    _host, _port, _master = os.environ["RT_SENTINEL"].split(":")
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"sentinels": [(_host, int(_port))], "master_name": _master}]
            },
        }
    }
if os.environ.get("RT_CHANNEL_LAYERS"):
    # The whole CHANNEL_LAYERS setting as JSON: dict-form hosts, options.
    CHANNEL_LAYERS = json.loads(os.environ["RT_CHANNEL_LAYERS"])
# Pages on the IPv6 loopback literal (tests/e2e/test_attacks.py connects over 127.0.0.1
# but sends Host: [::1]:<port>).
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "[::1]"]
# RT_SET_<KEY> values are JSON: numbers as before, also null and lists.
REALTIME = {
    **REALTIME,
    **{
        key[len("RT_SET_") :]: json.loads(value)
        for key, value in os.environ.items()
        if key.startswith("RT_SET_")
    },
}
