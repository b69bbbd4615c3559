"""Fixtures of the payouts tests: the bot on the shipped flows, and the fake Horizon."""

from __future__ import annotations

import pytest

from navigator.handling import Navigator
from navigator.payouts.horizon import HorizonClient
from navigator.store import Store
from tests.helpers import agent_says
from tests.payouts.fakehorizon import FakeHorizon
from tests.payouts.helpers import OLGA


@pytest.fixture
def desk(database_url, shipped_flows, shipped_knowledge):
    """The bot on the shipped flows (menus only: the airdrop flow needs no search), and
    Ольга signed as «Ольга» in the agents' chat."""
    store = Store(database_url)
    navigator = Navigator(store, shipped_flows, shipped_knowledge, None)
    agent_says(navigator, OLGA, "/myname Ольга")
    yield navigator
    store.close()


@pytest.fixture
async def network():
    """A fake Horizon serving in the test's event loop."""
    fake = FakeHorizon()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def horizon(network):
    """The fake Horizon and a client talking to it (no retries: failures show at once)."""
    async with HorizonClient(network.url, retries=0) as client:
        yield network, client
