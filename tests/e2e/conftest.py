"""Fixtures for end-to-end tests against the fake Telegram Bot API server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from navigator.flows import FlowSet
from navigator.handling import Navigator
from navigator.ratelimit import Limits
from navigator.settings import Settings
from navigator.transports.telegram import TelegramBot, Webhook

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


# --------------------------------------------------------------------------- the real bot


@pytest.fixture
def bot_settings(fake_telegram: FakeTelegram, tmp_path: Path) -> Callable[..., Settings]:
    """Settings as `navigator run` reads them, pointed at the fake server."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "telegram_token": fake_telegram.token,
            "telegram_api_url": fake_telegram.root_url,
            "data_dir": tmp_path / "data",
            **overrides,
        }
        return Settings(**values)

    return make


@pytest.fixture
def start_bot(make_navigator: Callable[..., Navigator], caplog: pytest.LogCaptureFixture
              ) -> Iterator[Callable[..., Any]]:
    """`async with start_bot(settings) as bot:` runs `TelegramBot.serve` (what
    `navigator run` runs) on a fresh Navigator over the test's SQLite file, and stops
    it gracefully at the end of the block. Each call is a new process, as far as the
    database is concerned. Errors the bot logs fail the test unless `allow_errors`."""
    allowed: list[bool] = []

    @contextlib.asynccontextmanager
    async def start(settings: Settings, *, webhook: Webhook | None = None,
                    limits: Limits | None = None, allow_errors: bool = False,
                    flows: FlowSet | None = None, tick_s: float | None = None
                    ) -> AsyncIterator[TelegramBot]:
        allowed.append(allow_errors)
        bot = TelegramBot(settings, make_navigator(flows=flows), limits=limits,
                          **({"tick_s": tick_s} if tick_s is not None else {}))
        stop = asyncio.Event()
        serving = asyncio.create_task(bot.serve(stop, webhook))
        try:
            await _until(lambda: serving.done() or bot.running.is_set())
            if serving.done():
                serving.result()  # raise what stopped it
            yield bot
        finally:
            stop.set()
            await asyncio.wait_for(serving, timeout=30)

    caplog.set_level(logging.INFO)
    yield start
    if not any(allowed):
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, "the bot logged errors:\n" + "\n".join(
            f"  {r.name}: {r.getMessage()}" for r in errors)


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the bot did not start in time")
        await asyncio.sleep(0.02)
