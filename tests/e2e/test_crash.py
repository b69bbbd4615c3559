"""No request lost: `navigator run` is killed with SIGKILL at the worst moments and
started again on the same database; everything the users wrote reaches the agents, and
everything decided is delivered, exactly once (or, in the one window the Bot API cannot
close, at least once and flagged).

The first tests kill a real process (tests/e2e/bot_process.py); the last ones show the
same guarantees on the in-process bot where a crash can be staged precisely.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import create_engine, text

from navigator.events import UserRef, UserText
from navigator.inbox import Inbox, Stored
from navigator.transports.telegram import Webhook

from .bot_process import BotProcess
from .fakebot import FakeChat, FakeTelegram, FakeUser, contains
from .test_bot import free_port

pytestmark = [pytest.mark.slow, pytest.mark.load]


@pytest.fixture
def bot_process(fake_telegram: FakeTelegram, tmp_path: Path, shipped_index_dir: Path,
                cli_env: dict[str, str]) -> Iterator[Callable[..., BotProcess]]:
    made: list[BotProcess] = []

    def make(**settings: Any) -> BotProcess:
        bot = BotProcess(fake_telegram, tmp_path / "data", cli_env,
                         index_dir=shipped_index_dir, **settings)
        made.append(bot)
        return bot

    yield make
    for bot in made:
        bot.kill()


def query(database_url: str, sql: str, **params: Any) -> list[Any]:
    """Read the bot's database from outside, as an operator would."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql), params))
    finally:
        engine.dispose()


async def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def everything_sent(database_url: str) -> bool:
    """Every reply delivered, or cancelled as a copy a newer one superseded."""
    return not query(database_url, "select id from outbox where status not in "
                     "('sent', 'cancelled')")


async def bot_with_a_ticket(fake: FakeTelegram, bot_process: Callable[..., BotProcess],
                            question: str) -> tuple[BotProcess, FakeUser, FakeChat]:
    """A started bot process, and Анна's question handed over to the agents' group."""
    anna = fake.add_user("Анна")
    agents = fake.add_supergroup("MTL Support agents", members=[fake.add_user("Олег")])
    # Telegram's 20 messages/min in a group has its own tests; here it would only wait.
    bot = bot_process(agents_chat_id=agents.id, telegram_group_rate=600)
    await bot.start()
    await fake.user_sends(anna, "/human")
    await fake.wait_for("sendMessage", chat_id=anna, timeout=60)
    await fake.user_sends(anna, question)
    await fake.wait_for("sendMessage", chat_id=agents, text=contains("Заявка №1"), timeout=60)
    return bot, anna, agents


# --------------------------------------------------------------------------- a real kill -9


async def test_killed_between_the_decision_and_its_delivery_the_restart_sends_each_once(
        fake_telegram: FakeTelegram, bot_process) -> None:
    bot, anna, agents = await bot_with_a_ticket(fake_telegram, bot_process,
                                                "Не приходит код подтверждения на почту")

    # The agents' chat stops answering: the requests vanish on the way to Telegram.
    release = fake_telegram.hang("sendMessage", chat_id=agents.id)
    lines = ["Пробовала с двух адресов", "Папку «Спам» проверила",
             "Вот мой адрес: anna@example.org"]
    for line in lines:
        await fake_telegram.user_sends(anna, line)
    await until(lambda: len(query(bot.database_url, "select id from outbox where "
                                  "kind = 'notify_agents' and status != 'sent'")) == len(lines),
                "the engine to commit the three messages for the agents")
    await until(lambda: fake_telegram.hung_calls, "the first delivery to be in flight")
    bot.kill()  # committed, one request in flight, two waiting: nothing delivered
    release()
    assert not any(line in t for t in fake_telegram.texts_in(agents) for line in lines)

    await bot.start()
    await until(lambda: everything_sent(bot.database_url), "the outbox to drain")
    delivered = fake_telegram.texts_in(agents)
    for line in lines:
        assert sum(line in t for t in delivered) == 1, f"{line!r} reached the agents once"
    rows = query(bot.database_url, "select attempts, uncertain from outbox "
                 "where kind = 'notify_agents' order by id")
    assert [r.attempts for r in rows] == [1, 2, 1, 1], "the one in flight was retried"
    assert [bool(r.uncertain) for r in rows] == [False, True, False, False]
    incoming = [r.text for r in query(bot.database_url, "select text from messages "
                                      "where direction = 'in' order by id")]
    assert incoming[-3:] == lines, "the ticket's history holds each message once, in order"
    assert await bot.stop() == 0


async def test_killed_right_after_telegram_forgot_the_updates_none_is_lost(
        fake_telegram: FakeTelegram, bot_process) -> None:
    bot, anna, agents = await bot_with_a_ticket(fake_telegram, bot_process,
                                                "Как передать голос в Ассоциации?")

    handled_at_kill: list[int] = []

    def kill_when_acknowledged(_offset: int) -> None:
        if bot.process is not None and bot.process.poll() is None:
            bot.kill()
            handled_at_kill.append(len(query(bot.database_url, "select update_id from inbox "
                                             "where status = 'handled'")))

    lines = [f"Дополнение {n}: делегировать голос хочу на время отпуска" for n in range(12)]
    fake_telegram.on_updates_confirmed = kill_when_acknowledged
    for line in lines:  # one batch: nothing yields to the bot's poll between these
        await fake_telegram.user_sends(anna, line)
    await until(lambda: bool(handled_at_kill), "Telegram to be told the updates arrived")
    fake_telegram.on_updates_confirmed = None
    assert fake_telegram.pending_updates == [], "Telegram will not send them again"
    stored = query(bot.database_url, "select count(*) as n from inbox where status = 'pending'")
    assert stored[0].n > 0, "the kill came while some were stored and not yet handled"

    await bot.start()
    await until(lambda: all(any(line in t for t in fake_telegram.texts_in(agents))
                            for line in lines), "every line to reach the agents", timeout=120)
    await until(lambda: everything_sent(bot.database_url), "the outbox to drain")
    delivered = fake_telegram.texts_in(agents)
    for line in lines:
        assert sum(line in t for t in delivered) == 1, f"{line!r} reached the agents once"
    assert query(bot.database_url, "select count(*) as n from inbox "
                 "where status = 'pending'")[0].n == 0
    assert await bot.stop() == 0


async def test_a_reply_whose_answer_was_lost_is_sent_again_and_flagged_uncertain(
        fake_telegram: FakeTelegram, bot_process) -> None:
    # The one window the Bot API cannot close: Telegram accepted the message, the process
    # died before the answer came. No idempotency key exists, so the restart sends again.
    anna = fake_telegram.add_user("Анна")
    bot = bot_process()
    await bot.start()
    release = fake_telegram.hang("sendMessage", chat_id=anna.id, accept=True)
    await fake_telegram.user_sends(anna, "/start")
    await until(lambda: fake_telegram.hung_calls, "the menu to reach Telegram")
    bot.kill()
    release()

    await bot.start()
    await until(lambda: everything_sent(bot.database_url), "the outbox to drain")
    menus = [t for t in fake_telegram.texts_in(anna) if "Здравствуйте, Анна" in t]
    assert len(menus) == 2, "delivered at least once: here, twice"
    [row] = query(bot.database_url, "select attempts, uncertain from outbox")
    assert (row.attempts, bool(row.uncertain)) == (2, True), "the duplicate is counted"
    assert await bot.stop() == 0


# --------------------------------------------------------------------------- staged in-process


async def test_updates_stored_but_not_handled_before_a_crash_are_handled_on_start(
        fake_telegram: FakeTelegram, bot_settings, start_bot, make_navigator) -> None:
    anna = fake_telegram.add_user("Анна")
    # What a process killed right after acknowledging leaves: the update in the inbox,
    # pending; Telegram no longer has it.
    update = await fake_telegram.user_sends(anna, "/start")
    [pending] = fake_telegram.pending_updates
    fake_telegram._confirm_updates(pending["update_id"] + 1)
    Inbox(make_navigator().store).store_update(pending["update_id"], pending)
    assert update["text"] == "/start"

    async with start_bot(bot_settings()):
        await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                     text=contains("Здравствуйте, Анна"))
        await fake_telegram.assert_no_call("sendMessage", chat_id=anna, within=1.0)
    assert len(fake_telegram.texts_in(anna)) == 1


async def test_an_update_handled_before_the_crash_and_sent_again_is_not_handled_twice(
        fake_telegram: FakeTelegram, bot_settings, start_bot, make_navigator) -> None:
    anna = fake_telegram.add_user("Анна")
    await fake_telegram.user_sends(anna, "Как создать кошелёк Stellar?")
    [pending] = fake_telegram.pending_updates
    # The crashed process stored and handled it (the answer waits in the outbox) but
    # never told Telegram, which sends it again to the next process.
    navigator = make_navigator()
    Inbox(navigator.store).store_batch([Stored(pending["update_id"], pending)])
    user = pending["message"]["from"]
    navigator.handle_recorded(UserText(UserRef(user["id"], "Анна", None, "ru"),
                                       "Как создать кошелёк Stellar?"), pending["update_id"])

    async with start_bot(bot_settings()):
        await fake_telegram.wait_for("sendMessage", chat_id=anna, timeout=15)
        await until(lambda: fake_telegram.pending_updates == [], "the redelivery")
        await fake_telegram.assert_no_call("sendMessage", chat_id=anna, within=1.5)
    assert len(fake_telegram.texts_in(anna)) == 1, "answered once"


async def test_a_webhook_update_is_answered_200_only_once_it_is_stored(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    async with start_bot(bot_settings(), webhook=Webhook(url, "127.0.0.1", port, "s3cret"),
                         allow_errors=True) as bot:
        store_update = bot.inbox.store_update

        def database_down(*_args: Any, **_kwargs: Any) -> bool:
            raise OSError("disk I/O error")

        bot.inbox.store_update = database_down
        await fake_telegram.user_sends(anna, "/start")
        assert fake_telegram.last_webhook_status == 500, "not acknowledged: Telegram keeps it"
        assert len(fake_telegram.pending_updates) == 1

        bot.inbox.store_update = store_update
        [kept] = fake_telegram.pending_updates
        headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
        async with aiohttp.ClientSession() as session, \
                session.post(url, json=kept, headers=headers) as response:  # Telegram retries
            assert response.status == 200
        await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                     text=contains("Здравствуйте, Анна"))
