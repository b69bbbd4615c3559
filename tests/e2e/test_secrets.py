"""A secret key or a recovery phrase sent to the bot, end to end against the fake Bot
API: the user's message is deleted and the user warned, the agents never receive it,
an agent's pasted key is not relayed, and neither the database nor the bot's log (at
DEBUG, where python-telegram-bot prints every raw update) holds it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from telegram import Update

from navigator.inbox import Inbox
from navigator.store import Store
from navigator.store.models import OutboxMessage
from navigator.transports.telegram import TelegramBot
from tests.helpers import database_dump

from .bot_process import BotProcess
from .fakebot import FakeTelegram, contains

pytestmark = pytest.mark.slow

KEY = "SCZANGBA5YHTNYVVV3C7CAZMTQDBJHJG6C34CJDQ66EQ7DZTSBP3QQK2"  # issue 10's
PHRASE = ("hamster, diagram, private, dutch, cause, delay, private, meat, slide, toddler, "
          "razor, book, happy, fancy, gospel, tennis, maple, dilemma, loan, word, shrug, "
          "inflict, delay, length")
SECRETS = (KEY, KEY.lower(), "hamster")


def sent_by_the_bot(fake: FakeTelegram) -> str:
    """Every request the bot made (getUpdates answers, which carry what users typed, left
    out), as one text."""
    return "\n".join(json.dumps(call.params, ensure_ascii=False) for call in fake.calls
                     if call.method != "getUpdates")


@pytest.fixture
def bot_process(fake_telegram: FakeTelegram, tmp_path: Path, shipped_index_dir: Path,
                cli_env: dict[str, str]) -> Iterator[Callable[..., BotProcess]]:
    """`navigator run` as a process, logging at DEBUG."""
    made: list[BotProcess] = []

    def make(**settings: Any) -> BotProcess:
        made.append(BotProcess(fake_telegram, tmp_path / "data", cli_env,
                               index_dir=shipped_index_dir, log_level="DEBUG", **settings))
        return made[-1]

    yield make
    for bot in made:
        bot.kill()


async def test_a_secret_sent_to_the_bot_is_deleted_and_reaches_nobody(
        fake_telegram: FakeTelegram, bot_process: Callable[..., BotProcess]) -> None:
    anna = fake_telegram.add_user("Анна", language_code="ru")
    oleg = fake_telegram.add_user("Олег")
    agents = fake_telegram.add_supergroup("MTL Support agents", members=[oleg])
    bot = bot_process(agents_chat_id=agents.id, telegram_group_rate=600)
    await bot.start()
    try:
        await fake_telegram.user_sends(anna, "/human")
        await fake_telegram.wait_for("sendMessage", chat_id=anna, timeout=30)
        await fake_telegram.user_sends(anna, "Не могу войти в кошелёк")
        card = await fake_telegram.wait_for("sendMessage", chat_id=agents, timeout=30,
                                            text=contains("Заявка №1"))

        leaked = await fake_telegram.user_sends(anna, f"вот мой ключ {KEY}")
        await fake_telegram.wait_for("deleteMessage", chat_id=anna, timeout=30,
                                     message_id=leaked["message_id"])
        warning = await fake_telegram.wait_for("sendMessage", chat_id=anna, timeout=10,
                                               text=contains("скомпрометированным"))
        assert "Я удалил это сообщение из чата" in warning.params["text"]
        await fake_telegram.wait_for("sendMessage", chat_id=agents, timeout=10,
                                     text=contains("вот мой ключ [секретный ключ скрыт]"))

        # Hostile variants: a lower-case key glued to Cyrillic in a caption, and a phrase
        # with commas put in by editing a message already sent.
        photo = await fake_telegram.user_sends_photo(anna, b"\x89PNG",
                                                     caption=f"скрин, ключ{KEY.lower()}")
        await fake_telegram.wait_for("deleteMessage", chat_id=anna, timeout=30,
                                     message_id=photo["message_id"])
        typo = await fake_telegram.user_sends(anna, "опечатка")
        await fake_telegram.wait_for("sendMessage", chat_id=agents, timeout=30,
                                     text=contains("опечатка"))
        await fake_telegram.user_edits(anna, typo, f"фраза: {PHRASE}")
        await fake_telegram.wait_for("deleteMessage", chat_id=anna, timeout=30,
                                     message_id=typo["message_id"])
        await fake_telegram.wait_for("sendMessage", chat_id=agents, timeout=10,
                                     text=contains("[фраза восстановления скрыта]"))

        # An agent pastes a key as an answer: the user gets nothing, the chat is told.
        pasted = await fake_telegram.agent_says(agents, oleg, f"Ваш ключ: {KEY}",
                                                reply_to=card.result)
        await fake_telegram.wait_for("deleteMessage", chat_id=agents, timeout=30,
                                     message_id=pasted["message_id"])
        await fake_telegram.wait_for("sendMessage", chat_id=agents, timeout=10,
                                     text=contains("НЕ передано пользователю"))
    finally:
        assert await bot.stop() == 0

    assert not any("Ваш ключ" in text for text in fake_telegram.texts_in(anna))
    requests = sent_by_the_bot(fake_telegram)
    database, log = database_dump(bot.data_dir / "navigator.db"), bot.log_path.read_text()
    assert "getUpdates" in log, "the log is at DEBUG, raw updates included"
    for secret in SECRETS:
        assert secret not in requests
        assert secret not in database
        assert secret not in log
    assert "[secret key hidden]" in log or "[секретный ключ скрыт]" in log


async def test_a_deletion_telegram_refuses_is_marked_failed_and_not_retried(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    anna = fake_telegram.add_user("Анна")
    fake_telegram.inject_error("deleteMessage", 400, "Bad Request: message can't be deleted",
                               count=5)
    async with start_bot(bot_settings()):
        await fake_telegram.user_sends(anna, KEY)
        await fake_telegram.wait_for("sendMessage", chat_id=anna, timeout=15,
                                     text=contains("скомпрометированным"))
        await fake_telegram.wait_for("deleteMessage", chat_id=anna, ok=False)
        await fake_telegram.assert_no_call("deleteMessage", within=1.5, ok=None)
    store = Store(database_url)
    with store.transaction() as repo:
        [row] = repo.session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "delete_message")).all()
        assert (row.status, row.attempts) == ("failed", 1)
        assert "can't be deleted" in (row.last_error or "")
    store.close()


async def test_a_secret_in_an_update_replayed_after_a_crash_still_warns_and_deletes(
        fake_telegram: FakeTelegram, bot_settings, start_bot, make_navigator,
        database_url) -> None:
    """The update was stored (redacted) and the process died before handling it: the
    replay knows from the stored update that a secret was taken out, not by looking for
    placeholders a user could type."""
    anna = fake_telegram.add_user("Анна")
    leaked = await fake_telegram.user_sends(anna, f"ключ {KEY}")
    [raw] = fake_telegram.pending_updates
    crashed = TelegramBot(bot_settings(), make_navigator())  # never started
    update, payload = crashed.guard(Update.de_json(raw, crashed.bot))
    assert KEY not in json.dumps(payload, ensure_ascii=False)
    assert Inbox(crashed.navigator.store).store_update(update.update_id, payload)
    async with start_bot(bot_settings()):
        await fake_telegram.wait_for("deleteMessage", chat_id=anna, timeout=15,
                                     message_id=leaked["message_id"])
        await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                     text=contains("скомпрометированным"))
    assert KEY not in database_dump(database_url)
