"""Settings for daphne processes started by the e2e tests (see conftest.daphne)."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import REALTIME

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
REALTIME = {
    **REALTIME,
    **{
        key[len("RT_SET_") :]: float(value) if "." in value else int(value)
        for key, value in os.environ.items()
        if key.startswith("RT_SET_")
    },
}
