"""The Telegram edge takes secrets out of an update before it is stored or handled, and
marks the stored update so a replay still warns the user and deletes the message (no
network: plain Bot API JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from telegram import Update

from navigator.events import AgentRef, AgentText, ChatPlace, Redacted, UserRef, UserText
from navigator.handling import Navigator
from navigator.inbox import REDACTED, Inbox
from navigator.settings import Settings
from navigator.store import Store
from navigator.transports.telegram import TelegramBot
from navigator.transports.telegram.updates import agent_event_for, event_for

KEY = "SCZANGBA5YHTNYVVV3C7CAZMTQDBJHJG6C34CJDQ66EQ7DZTSBP3QQK2"
PHRASE = ("hamster diagram private dutch cause delay private meat slide toddler razor book "
          "happy fancy gospel tennis maple dilemma loan word shrug inflict delay length")
AGENTS = -1001
ANNA = {"id": 42, "is_bot": False, "first_name": "Анна", "language_code": "ru"}
JOHN = {"id": 43, "is_bot": False, "first_name": "John", "language_code": "en"}


def raw(kind: str = "message", sender: dict[str, Any] = ANNA, chat_id: int | None = None,
        **content: Any) -> dict[str, Any]:
    chat = {"id": chat_id, "type": "supergroup", "title": "Агенты"} if chat_id else \
        {"id": sender["id"], "type": "private", "first_name": sender["first_name"]}
    return {"update_id": 1, kind: {"message_id": 5, "date": 1_700_000_000, "chat": chat,
                                   "from": sender, **content}}


@pytest.fixture
def bot(tmp_path: Path, shipped_flows, shipped_knowledge) -> Iterator[TelegramBot]:
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    settings = Settings(telegram_token="123:ABC", agents_chat_id=AGENTS, data_dir=tmp_path)
    yield TelegramBot(settings, Navigator(store, shipped_flows, shipped_knowledge, None))
    store.close()


def guarded(bot: TelegramBot, payload: dict[str, Any]) -> tuple[Update, dict[str, Any]]:
    return bot.guard(Update.de_json(payload, bot.bot))


def test_a_key_is_taken_out_before_the_update_is_stored_and_the_event_says_so(bot):
    update, stored = guarded(bot, raw(text=f"мой ключ {KEY}"))
    assert KEY not in json.dumps(stored)
    assert stored[REDACTED] == ["secret_key"]
    assert event_for(update) == UserText(UserRef(42, "Анна", None, "ru"),
                                         "мой ключ [секретный ключ скрыт]",
                                         Redacted(("secret_key",), 5))


def test_a_replayed_update_still_carries_what_was_taken_out(bot):
    """After a crash the update comes back from the inbox: the mark, not the text (a
    user may type a placeholder), says a secret was there."""
    _, stored = guarded(bot, raw(text=KEY))
    replayed = Update.de_json(json.loads(json.dumps(stored)), bot.bot)
    assert event_for(replayed).redacted == Redacted(("secret_key",), 5)
    typed = Update.de_json(raw(text="[секретный ключ скрыт]"), bot.bot)
    assert event_for(typed).redacted is None


@pytest.mark.parametrize(("payload", "expected"), [
    (raw("edited_message", text=f"исправил: {KEY.lower()}", edit_date=1_700_000_100),
     "исправил: [секретный ключ скрыт]"),
    (raw(photo=[{"file_id": "AgAD", "file_unique_id": "u", "width": 9, "height": 9}],
         caption=f"скрин{KEY}"), "[фото] скрин[секретный ключ скрыт]"),
    (raw(sender=JOHN, text=f"my words: {PHRASE}"), "my words: [recovery phrase hidden]"),
])
def test_edited_messages_captions_and_phrases_in_the_senders_language(bot, payload, expected):
    update, _ = guarded(bot, payload)
    event = event_for(update)
    assert event.text == expected and event.redacted.message_id == 5


def test_an_agents_message_is_redacted_in_russian_and_marked(bot):
    update, stored = guarded(bot, raw(sender=JOHN, chat_id=AGENTS, text=f"ключ: {KEY}"))
    assert "ключ: [секретный ключ скрыт]" in json.dumps(stored, ensure_ascii=False)
    event = agent_event_for(update, AGENTS)
    assert event == AgentText(AgentRef(43, "John"), None, "ключ: [секретный ключ скрыт]",
                              redacted=Redacted(("secret_key",), 5), place=ChatPlace(AGENTS))


def test_a_clean_update_is_left_as_it_came(bot):
    update = Update.de_json(raw(text="Как открыть линию доверия?"), bot.bot)
    same, stored = bot.guard(update)
    assert same is update and REDACTED not in stored


async def test_the_webhook_queue_stores_the_redacted_update(bot):
    await bot.updates.put(Update.de_json(raw(text=KEY), bot.bot))
    queued = bot.updates.get_nowait()
    assert event_for(queued).text == "[секретный ключ скрыт]"
    [pending] = Inbox(bot.navigator.store).pending()
    assert KEY not in json.dumps(pending.payload)
