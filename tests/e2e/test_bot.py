"""The Navigator bot in Telegram, end to end: `TelegramBot.serve` (what `navigator run`
runs) on a real SQLite file and the real search model, talking HTTP to the fake Bot API.

Every test also checks (fixtures) that the bot called no Bot API method the fake lacks
and logged no error it was not expected to.
"""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest
from sqlalchemy import select

from navigator.outbox import Limit, Limits, ticket_for_agents_message
from navigator.store import Store
from navigator.store.models import OutboxMessage, Ticket
from navigator.transports.telegram import Webhook

from .fakebot import Call, FakeTelegram, contains

pytestmark = pytest.mark.slow


def buttons(call: Call) -> list[str]:
    """The callback data of an inline keyboard the bot sent."""
    markup = call.params.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def outbox_rows(database_url: str) -> list[OutboxMessage]:
    store = Store(database_url)
    try:
        with store.transaction() as repo:
            return list(repo.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    finally:
        store.close()


# --------------------------------------------------------------------------- users


async def test_start_shows_the_menu_and_buttons_walk_it(fake_telegram: FakeTelegram,
                                                        bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна", username="anna", language_code="ru")
    async with start_bot(bot_settings()):
        await fake_telegram.user_sends(anna, "/start")
        menu = await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                            text=contains("Здравствуйте, Анна"))
        assert menu.params["parse_mode"] == "HTML"
        first_option = buttons(menu)[0]
        assert first_option.startswith("o|main|")

        query = await fake_telegram.user_presses(anna, menu, first_option)
        await fake_telegram.wait_for("answerCallbackQuery", callback_query_id=query["id"])
        submenu = await fake_telegram.wait_for("sendMessage", chat_id=anna)
        assert "menu" in buttons(submenu), "a submenu offers the way back"

        query = await fake_telegram.user_presses(anna, submenu, "menu")
        await fake_telegram.wait_for("answerCallbackQuery", callback_query_id=query["id"])
        again = await fake_telegram.wait_for("sendMessage", chat_id=anna)
        assert buttons(again) == buttons(menu)
    assert fake_telegram.max_rate(anna, window_s=1.0) <= 3


async def test_a_free_text_question_gets_an_answer_with_helped_buttons(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    async with start_bot(bot_settings()):
        await fake_telegram.user_sends(anna, "Как создать кошелёк Stellar?")
        answer = await fake_telegram.wait_for("sendMessage", chat_id=anna, timeout=15)
        data = buttons(answer)
        assert [d[:5] for d in data] == ["fb|y|", "fb|n|"]
        await fake_telegram.user_presses(anna, answer, data[0])
        thanks = await fake_telegram.wait_for("sendMessage", chat_id=anna)
    assert "Рад" in thanks.params["text"] or "помог" in thanks.params["text"].lower()
