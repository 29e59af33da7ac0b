"""Every client passes every scenario of tests/support/client_scenarios.py.

One parametrization, ``SCENARIOS`` x ``CLIENTS``: the Python client
(``realtime.client``), ``realtime.js`` under Node and ``realtime.js`` in headless
Chromium, each against a real daphne process and a redis-server of the test's own,
publishing with the real ``anotify()`` through that Redis.
"""

from __future__ import annotations

import os
import re
import shlex

import pytest
from channels.layers import channel_layers

from realtime import backends
from realtime.settings import realtime_settings
from tests.support.client_agents import (
    ChromiumAgent,
    LineAgent,
    NodeAgent,
    PythonAgent,
)
from tests.support.client_scenarios import SCENARIOS, Scenario, World
from tests.support.processes import ROOT

# RT_CLIENT_AGENT="./my-agent --flag" adds a client of your own (a LineAgent: see
# tests/support/client_agents.py and docs/clients.md#conformance-checklist).
EXTERNAL = os.environ.get("RT_CLIENT_AGENT")
CLIENTS = (
    "python",
    "node",
    pytest.param("chromium", marks=pytest.mark.browser),
    *(["external"] if EXTERNAL else []),
)

pytestmark = [pytest.mark.e2e]


@pytest.fixture
async def world(daphne, own_redis, e2e_users, settings):
    def publisher(**server_settings):
        # This process's notify() publishes like the servers: same Redis, same
        # history settings.
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [own_redis.url]},
            }
        }
        settings.REALTIME = {
            **settings.REALTIME,
            "NOTIFY_TIMEOUT": 2.0,
            **server_settings,
        }
        channel_layers.backends = {}
        backends.reset()
        realtime_settings.reload()

    world = World(daphne, own_redis, e2e_users, publisher)
    yield world
    await world.stop()


@pytest.fixture
async def make_agent(tmp_path, world):
    agents = []

    async def make(client: str):
        if client == "python":
            agent = PythonAgent()
        elif client == "node":
            agent = NodeAgent(tmp_path / "node-agent.log")
        elif client == "external":
            agent = LineAgent(shlex.split(EXTERNAL), tmp_path / "agent.log")
        else:
            agent = ChromiumAgent(lambda: world.port)
        await agent.start()
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        await agent.stop()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_scenario(scenario: Scenario, client: str, world, make_agent):
    agent = await make_agent(client)
    try:
        await scenario.run(world, agent)
    except AssertionError as failure:
        pytest.fail(f"{failure}\n{world.logs()}", pytrace=False)
    finally:
        await agent.call("close")


def checklist() -> str:
    """The conformance checklist of docs/clients.md, from ``SCENARIOS``."""
    return "\n".join(
        f"{number}. **{s.name}**: {s.requirement}"
        for number, s in enumerate(SCENARIOS, 1)
    )


def test_checklist_in_docs():
    """docs/clients.md lists exactly the scenarios the clients are tested with."""
    text = (ROOT / "docs" / "clients.md").read_text()
    found = re.search(
        r"<!-- checklist: start -->\n(.*?)\n<!-- checklist: end -->", text, re.S
    )
    assert found, "docs/clients.md has no conformance checklist"
    assert found.group(1) == checklist(), (
        "docs/clients.md's checklist differs from tests/support/client_scenarios.py; "
        "replace it with:\n" + checklist()
    )
