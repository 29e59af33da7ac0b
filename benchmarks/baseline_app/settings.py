"""Settings of the plain-Channels baseline servers that fanout.py starts."""

import os

SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
DATABASES: dict = {}
ROOT_URLCONF = "benchmarks.baseline_app.urls"
ASGI_APPLICATION = "benchmarks.baseline_app.asgi.application"
LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
# channels-redis defaults (capacity 100, expiry 60): what a Channels user gets.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": LAYERS[os.environ.get("BENCH_LAYER", "pubsub")],
        "CONFIG": {"hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1")]},
    }
}
