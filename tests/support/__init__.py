"""What tests start and drive: servers, redis-server, browsers, WebSocket clients.

tests/conftest.py loads the fixture modules here as plugins, so their fixtures are
available to every test; helpers (``free_port``, ``RedisServer``, ``Client`` ...) are
imported from their module.
"""
