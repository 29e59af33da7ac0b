"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright."""

from __future__ import annotations

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Pages served "from" another origin (fulfilled by Playwright) open WebSockets to
    # 127.0.0.1: Chromium's Local Network Access checks would block that
    # (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
    "--disable-features=LocalNetworkAccessChecks",
]


@pytest.fixture
async def browser():
    """Headless Debian Chromium through Playwright's async API (pytest-asyncio runs
    every test in an event loop, and the sync API refuses to run inside one)."""
    # Imported here: Playwright is needed only by browser tests, and the unit-level
    # subset (noxfile.py) runs without it.
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()
