"""An update python-telegram-bot cannot read (a Bot API newer or older than the library,
a field of an unexpected shape) stops nothing: it is stored, recorded as failed with
the reason, and the updates after it are answered. Found by tests/fuzz: a poll without
`allows_revoting` (required by the library since Bot API 9.6) made every getUpdates of
its batch fail, so long polling asked for the same batch forever."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from navigator.store import Store
from navigator.store.models import InboxUpdate

from .fakebot import FakeTelegram

pytestmark = pytest.mark.slow

OLD_POLL = {"id": "1", "question": "Когда собрание?", "options": [], "total_voter_count": 0,
            "is_closed": False, "is_anonymous": True, "type": "regular",
            "allows_multiple_answers": False}


async def test_an_update_the_library_cannot_read_is_failed_and_polling_goes_on(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url):
    anna = fake_telegram.add_user("Анна", language_code="ru")
    async with start_bot(bot_settings(database_url=database_url), allow_errors=True):
        odd = await fake_telegram._push_update("message", {
            "message_id": 900, "date": 1_700_000_000, "from": anna.to_api(),
            "chat": fake_telegram.chats[anna.id].to_api(), "poll": OLD_POLL})
        await fake_telegram.user_sends(anna, "/start")
        await fake_telegram.wait_for("sendMessage", chat_id=anna.id, timeout=15)
    store = Store(database_url)
    try:
        with store.transaction() as repo:
            rows = {row.update_id: row for row in repo.session.scalars(select(InboxUpdate))}
            assert rows[odd["update_id"]].status == "failed"
            assert "allows_revoting" in (rows[odd["update_id"]].error or "")
            assert {row.status for row in rows.values()} == {"failed", "handled"}
    finally:
        store.close()
