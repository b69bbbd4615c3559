"""The bot's Bot API client (aiohttp under python-telegram-bot): calls, uploads, files,
Telegram's errors and network failures come out as python-telegram-bot's own."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import BadRequest, NetworkError, TimedOut

from navigator.transports.http import AiohttpRequest

from .fakebot import FakeTelegram


def bot_for(fake: FakeTelegram, **timeouts: float) -> Bot:
    return Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url,
               request=AiohttpRequest(**timeouts), get_updates_request=AiohttpRequest(1))


async def test_messages_uploads_and_downloads_go_through(fake_telegram: FakeTelegram):
    user = fake_telegram.add_user("Анна", language_code="ru")
    await fake_telegram.user_sends(user, "/start")
    async with bot_for(fake_telegram) as bot:
        message = await bot.send_message(user.id, "<b>Привет</b>", parse_mode="HTML")
        assert message.text == "Привет" and message.entities[0].type == "bold"
        photo = await bot.send_photo(user.id, b"\x89PNG fake bytes", caption="схема")
        assert photo.caption == "схема"
        file = await bot.get_file(photo.photo[-1].file_id)
        assert bytes(await file.download_as_bytearray()) == b"\x89PNG fake bytes"
        updates = await bot.get_updates(timeout=0)
        assert updates[0].message.text == "/start"


async def test_telegram_refusals_are_python_telegram_bot_errors(fake_telegram: FakeTelegram):
    user = fake_telegram.add_user("Анна")
    await fake_telegram.user_sends(user, "/start")
    async with bot_for(fake_telegram) as bot:
        with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
            await bot.send_message(user.id, "<b>не закрыт", parse_mode="HTML")


async def test_network_failures_and_timeouts_are_python_telegram_bot_errors():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with AiohttpRequest() as request:
        with pytest.raises(NetworkError, match="aiohttp"):
            await request.post(f"http://127.0.0.1:{port}/bot1:x/getMe")

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({"ok": True, "result": True})

    app = web.Application()
    app.router.add_post("/{path:.*}", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with AiohttpRequest(read_timeout=0.2) as request:
            with pytest.raises(TimedOut):
                await request.post(f"http://127.0.0.1:{port}/bot1:x/getMe")
    finally:
        await runner.cleanup()


def test_proxies_come_from_the_environment_as_with_httpx(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    request = AiohttpRequest()
    proxy, _auth = request._proxy_for("https://api.telegram.org/bot1:x/getMe")
    assert str(proxy) == "http://proxy.example:3128"
    assert request._proxy_for("http://127.0.0.1:8081/bot1:x/getMe") == (None, None)
