"""Flood and personal data in Telegram, end to end: `TelegramBot.serve` (what `navigator
run` runs) against the fake Bot API, on a real SQLite file.

A user pressing /start thirty times gets a couple of menus, not thirty trickling in; a
user flooding their open ticket reaches the agents as one folded line they can open;
/forgetme, confirmed with its button, leaves nothing of the user in the database, the
stored updates included.
"""

from __future__ import annotations

import asyncio

import pytest

from navigator.ratelimit import Limit, Limits
from tests.helpers import database_dump

from .fakebot import FakeTelegram, contains
from .test_bot import buttons, hand_over, sign_as

pytestmark = pytest.mark.slow


async def test_thirty_starts_in_five_seconds_give_at_most_three_menus(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    async with start_bot(bot_settings(digest_hour=None)):
        for _ in range(30):
            await fake_telegram.user_sends(anna, "/start")
            await asyncio.sleep(5 / 30)
        await fake_telegram.wait_for("sendMessage", chat_id=anna, text=contains("паузу"),
                                     timeout=30)
        await asyncio.sleep(1.0)  # the notice is the chat's last row: nothing comes after
    menus = fake_telegram.calls_to("sendMessage", chat_id=anna,
                                   text=contains("Выберите тему"))
    assert 1 <= len(menus) <= 3, f"{len(menus)} menus"
    assert len(fake_telegram.calls_to("sendMessage", chat_id=anna)) == len(menus) + 1, \
        "and one notice"
    assert buttons(menus[-1]) == buttons(menus[0]), "the last one is the whole menu"


async def test_a_flood_in_an_open_ticket_reaches_the_agents_as_one_folded_line(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    oleg = fake_telegram.add_user("Олег")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=False, members=[oleg])
    async with start_bot(bot_settings(agents_chat_id=agents.id, digest_hour=None),
                         limits=Limits(group=Limit(100.0)), tick_s=1.0):
        await hand_over(fake_telegram, anna, agents, "Не могу войти в кошелёк, вот лог")
        for number in range(1, 41):  # a log pasted line by line
            await fake_telegram.user_sends(anna, f"строка {number} лога ошибки")
        folded = await fake_telegram.wait_for("sendMessage", chat_id=agents, timeout=40,
                                              text=contains("…и ещё"))
        # /human and the question count too: 18 lines are relayed, 22 folded.
        assert "…и ещё 22 сообщения по заявке №1" in folded.params["text"]
        query = await fake_telegram.user_presses(oleg, folded.result, buttons(folded)[0])
        await fake_telegram.wait_for("answerCallbackQuery", callback_query_id=query["id"])
        shown = [await fake_telegram.wait_for("sendMessage", chat_id=agents, timeout=10,
                                              text=contains("Сообщения пользователя"))
                 for _ in range(3)]
        await fake_telegram.assert_no_call("sendMessage", within=2.0, ok=None, chat_id=agents,
                                           text=contains("…и ещё"))
    relayed = [t for t in fake_telegram.texts_in(agents) if t.startswith("💬 Заявка №1")]
    assert len(relayed) == 18
    lines = [line for call in shown for line in call.params["text"].splitlines()[1:]]
    assert lines == [f"› строка {n} лога ошибки" for n in range(19, 41)]
    assert len(fake_telegram.calls_to("sendMessage", chat_id=agents,
                                      text=contains("…и ещё"))) == 1


async def test_forgetme_confirmed_with_the_button_leaves_nothing_of_the_user(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    nastya = fake_telegram.add_user("Анастасия", last_name="Кукушкина-Зайцева",
                                    username="nastya_kz_1987")
    oleg = fake_telegram.add_user("Олег")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=True, members=[oleg])
    planted = ["Кукушкина-Зайцева", "nastya_kz_1987", "у Ферапонта Гаврилыча",
               "по вторникам, телефон 069-555-777", "скриншот с адресом Будва, Мажуранича 7"]
    async with start_bot(bot_settings(agents_chat_id=agents.id, digest_hour=None),
                         limits=Limits(group=Limit(100.0))):
        card = await hand_over(fake_telegram, nastya, agents,
                               "Где обменять EURMTL у Ферапонта Гаврилыча?")
        await sign_as(fake_telegram, agents, oleg, "Мария")
        await fake_telegram.agent_says(agents, oleg, "Он принимает по вторникам, телефон "
                                       "069-555-777", thread_id=card.params["message_thread_id"])
        await fake_telegram.wait_for("sendMessage", chat_id=nastya, text=contains("вторникам"))
        await fake_telegram.user_sends_photo(nastya, b"\x89PNG",
                                             caption="скриншот с адресом Будва, Мажуранича 7")
        await fake_telegram.wait_for("sendMessage", chat_id=agents, text=contains("Мажуранича"))
        assert all(text in database_dump(database_url) for text in planted)

        await fake_telegram.user_sends(nastya, "/forgetme")
        asked = await fake_telegram.wait_for("sendMessage", chat_id=nastya,
                                             text=contains("Удалить всё"))
        assert "заявка №1 будет закрыта" in asked.params["text"]
        await fake_telegram.user_presses(nastya, asked.result, "forget|yes")
        await fake_telegram.wait_for("sendMessage", chat_id=nastya,
                                     text=contains("удалены из базы бота"))
        note = await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                            text=contains("пользователь удалил свои данные"))
        assert "Анастасия" not in note.params["text"]
        left = [text for text in planted if text in database_dump(database_url)]
        assert left == [], f"still in the database: {left}"

        await fake_telegram.user_presses(nastya, asked.result, "forget|yes")  # again
        await fake_telegram.wait_for("sendMessage", chat_id=nastya,
                                     text=contains("больше не действует"))
    # Every update carries the sender's name: a new one is a new contact, and only that
    # comes back, none of what was erased.
    left = [text for text in planted if text in database_dump(database_url)]
    assert left == ["Кукушкина-Зайцева", "nastya_kz_1987"]
