"""Settings of the realtime servers that fanout.py starts (daphne or uvicorn).

Everything the benchmark does not need is left out; REALTIME keeps its defaults
(authenticators, limits, history on every group) except presence, which the
fan-out benchmark does not measure.
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
    "benchmarks.realtime_app",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
ROOT_URLCONF = "benchmarks.realtime_app.urls"
ASGI_APPLICATION = "benchmarks.realtime_app.asgi.application"
LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": LAYERS[os.environ.get("BENCH_LAYER", "pubsub")],
        "CONFIG": {"hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1")]},
    }
}
REALTIME = {
    "PRESENCE_GROUPS": [],
    # fanout.py --deflate shared: each event compressed once per process.
    "COMPRESSION": bool(os.environ.get("BENCH_COMPRESSION")),
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
