"""Origin validation rules (realtime.asgi.origin_allowed)."""

import pytest
from django.test import override_settings

from realtime.asgi import origin_allowed


def scope(host):
    return {"headers": [(b"host", host.encode())]}


@override_settings(REALTIME={"ALLOWED_ORIGINS": None}, ALLOWED_HOSTS=["example.com"])
@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("https://example.com", "example.com", True),
        ("http://example.com", "example.com", True),
        ("https://example.com:8443", "example.com:8443", True),
        ("https://example.com:8443", "example.com", False),
        ("https://evil.com", "example.com", False),
        ("https://example.com.evil.com", "example.com", False),
        ("https://evil.com", "evil.com", False),  # Host not in ALLOWED_HOSTS
        ("null", "example.com", False),
        ("file://", "example.com", False),
        ("javascript:alert(1)", "example.com", False),
    ],
)
def test_default_is_same_origin_within_allowed_hosts(origin, host, allowed):
    assert origin_allowed(origin, scope(host)) is allowed


@override_settings(
    REALTIME={"ALLOWED_ORIGINS": ["https://app.example.com", "https://*.example.org"]},
    ALLOWED_HOSTS=["*"],
)
@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("https://APP.example.com:443", True),
        ("http://app.example.com", False),  # scheme matters
        ("https://app.example.com:444", False),  # port matters
        ("https://other.example.com", False),
        ("https://a.example.org", True),
        ("https://a.b.example.org", True),
        ("https://example.org", False),
        ("https://evilexample.org", False),
    ],
)
def test_explicit_allow_list(origin, allowed):
    assert origin_allowed(origin, scope("anything")) is allowed


@override_settings(REALTIME={"ALLOWED_ORIGINS": None}, ALLOWED_HOSTS=["*"])
def test_wildcard_allowed_hosts_still_requires_same_origin():
    # AllowedHostsOriginValidator lets everything through here; we do not.
    assert origin_allowed("https://evil.com", scope("example.com")) is False
    assert origin_allowed("https://example.com", scope("example.com")) is True


@override_settings(REALTIME={"ALLOWED_ORIGINS": None}, ALLOWED_HOSTS=["[::1]"])
@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://[::1]:8000", "[::1]:8000", True),
        ("http://[::1]", "[::1]", True),
        ("https://[::1]", "[::1]", True),
        ("http://[::1]:8001", "[::1]:8000", False),
        ("http://[::2]:8000", "[::2]:8000", False),  # not in ALLOWED_HOSTS
        ("http://[::1]:8000", "[::2]:8000", False),
        ("http://127.0.0.1:8000", "[::1]:8000", False),
    ],
)
def test_same_origin_on_an_ipv6_literal(origin, host, allowed):
    # The Origin's host arrives bracketed in Host and ALLOWED_HOSTS.
    assert origin_allowed(origin, scope(host)) is allowed


@override_settings(REALTIME={"ALLOWED_ORIGINS": ["http://[::1]:8000"]})
def test_explicit_ipv6_origin():
    assert origin_allowed("http://[::1]:8000", scope("anything")) is True
    assert origin_allowed("http://[::1]:8001", scope("anything")) is False
