"""Settings of the servers benchmarks/collab.py starts: shared documents on
channels-redis, stored in one SQLite file the processes share.

The per-connection limits are raised so that the saturation phase measures the
server, not the limits (the steady phase stays within the defaults).
"""

import os

SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "rest_framework",
    "realtime",
    "realtime.collab",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_DB", ":memory:"),
        "OPTIONS": {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"},
    }
}
USE_TZ = True
ROOT_URLCONF = "benchmarks.collab_app.urls"
ASGI_APPLICATION = "benchmarks.collab_app.asgi.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1")]},
    }
}
REALTIME = {
    "PRESENCE_GROUPS": [],
    "RATE": 1000.0,
    "BURST": 2000,
    "COLLAB_RATE": 1000.0,
    "COLLAB_BURST": 2000,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
