"""Telegram updates -> engine events: whatever Telegram (or something pretending to be it)
sends, an update becomes an event or nothing, and every update the bot stored ends
handled, skipped, or failed with its error: never stuck, never lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from unittest import mock

import hypothesis
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select
from telegram import CallbackQuery, Update

from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentText,
    AnonymousAgentMessage,
    ButtonPressed,
    UserCommand,
    UserText,
)
from navigator.inbox import FAILED, HANDLED, PENDING, SKIPPED, Stored
from navigator.settings import Settings
from navigator.store.models import InboxUpdate
from navigator.transports.telegram import TelegramBot
from navigator.transports.telegram.updates import agent_event_for, event_for

from .updates import AGENTS_CHAT_ID, mangled, updates
from .world import ANNA as ANNA_REF
from .world import World, share

ANNA = {"id": ANNA_REF.id, "is_bot": False, "first_name": "Анна", "language_code": "ru"}


def events_of(update: Update) -> tuple[Any, Any]:
    user_event = event_for(update)
    agent_event = agent_event_for(update, AGENTS_CHAT_ID)
    hypothesis.event(f"user: {type(user_event).__name__}, agents: {type(agent_event).__name__}")
    return user_event, agent_event


@given(payload=updates())
def test_an_update_as_telegram_sends_it_becomes_an_event_or_nothing(payload):
    update = Update.de_json(payload, None)
    user_event, agent_event = events_of(update)
    message = update.message or update.edited_message
    if isinstance(user_event, UserText | UserCommand):
        assert message is not None and message.chat.type == "private"
        assert user_event.user.id == message.from_user.id and not message.from_user.is_bot
    if isinstance(user_event, UserText):
        assert user_event.text == message.text or message.text is None
    if isinstance(user_event, UserCommand):
        assert user_event.name and "@" not in user_event.name and " " not in user_event.name
        assert update.edited_message is None  # an edited command is not run again
    if isinstance(user_event, ButtonPressed):
        assert user_event.data == (update.callback_query.data or "")
    assert user_event is None or agent_event is None  # one chat or the other
    if agent_event is not None:
        assert update.effective_chat is not None and update.effective_chat.id == AGENTS_CHAT_ID
    if isinstance(agent_event, AgentText | AgentCommand):
        assert not update.message.from_user.is_bot and update.message.sender_chat is None
    if isinstance(agent_event, AgentCommand):
        assert agent_event.name and "@" not in agent_event.name
    if isinstance(agent_event, AgentButtonPressed):
        assert agent_event.data == (update.callback_query.data or "")
    if isinstance(agent_event, AnonymousAgentMessage):
        assert update.message.sender_chat is not None


# The whole intake: inbox -> replay -> engine ------------------------------------------



def telegram_bot(navigator: Any, data_dir: Path) -> TelegramBot:
    settings = Settings(telegram_token="123456:fuzz", telegram_api_url="http://127.0.0.1:9",
                        agents_chat_id=AGENTS_CHAT_ID, data_dir=data_dir)
    return TelegramBot(settings, navigator)


async def _pressed(self: CallbackQuery, *args: Any, **kwargs: Any) -> bool:
    return True  # answerCallbackQuery: the spinner stops (no network here)


async def intake(bot: TelegramBot, payloads: list[dict[str, Any]]) -> None:
    """Store the updates, then do what a start does: replay the stored ones through the
    handler python-telegram-bot calls for each update."""
    await bot.run_db(bot.inbox.store_batch, [
        Stored(number, {**payload, "update_id": number})
        for number, payload in enumerate(payloads, start=1)])
    await bot._replay_stored_updates()
    while not bot.updates.empty():
        await bot.on_update(bot.updates.get_nowait(), None)  # type: ignore[arg-type]


def outcomes(world: World, payloads: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    """Each stored update's status and error after the intake."""
    with world.navigator() as (navigator, _), \
            mock.patch.object(CallbackQuery, "answer", _pressed):
        bot = telegram_bot(navigator, world.directory)
        try:
            asyncio.run(intake(bot, payloads))
        finally:
            bot.writer.shutdown()
        with navigator.store.transaction() as repo:
            rows = repo.session.scalars(select(InboxUpdate)).all()
            found = {row.update_id: (row.status, row.error) for row in rows}
    assert set(found) == set(range(1, len(payloads) + 1))
    for number, (status, error) in found.items():
        hypothesis.event(f"an update {status}")
        assert status in (HANDLED, SKIPPED, FAILED) and status != PENDING, (number, status)
        assert (status == FAILED) == bool(error), (number, status, error)
    return found


@share(0.5)
@given(payload=updates().flatmap(mangled))
@example(payload={"update_id": 1, "message": {  # no chat: event_for raised AttributeError
    "message_id": 1, "date": 0, "text": "Как вступить в ассоциацию?", "from": ANNA}})
def test_a_strange_update_is_handled_skipped_or_failed_never_stuck(world: World, payload):
    outcomes(world, [payload])


@share(0.25)
@given(payloads=st.lists(st.one_of(updates(), updates().flatmap(mangled)), min_size=1,
                         max_size=8))
def test_every_stored_update_ends_handled_skipped_or_failed(world: World, payloads):
    outcomes(world, payloads)
