"""Fixtures for end-to-end tests against the fake Telegram Bot API server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .fakebot import FakeTelegram


@pytest_asyncio.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """A started :class:`FakeTelegram` on a free 127.0.0.1 port, stopped after the test.

    At teardown the test fails if the bot called a Bot API method the fake does not
    implement: such a call would have silently behaved differently on Telegram.
    """
    server = FakeTelegram()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    unimplemented = sorted({call.method for call in server.unimplemented_calls})
    assert not unimplemented, (
        f"the bot called Bot API methods the fake server does not implement: {unimplemented}; "
        "implement them in tests/e2e/fakebot.py"
    )
