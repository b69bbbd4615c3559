"""Personal data: /forgetme (and `navigator forget`) erase every text the bot stored about
a person, keep the anonymous numbers so /stats stays true, and the retention period
erases everyone's old texts the same way. Checked on a full dump of the database."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from stellar_sdk import Keypair

from navigator.events import AgentRef, AgentsText, ButtonPressed, Tick, UserRef
from navigator.handling import Navigator
from navigator.outbox import enqueue
from navigator.store import Store
from navigator.store.models import Conversation, OutboxMessage, Ticket, User
from tests.helpers import (
    agent_says,
    database_dump,
    press,
    say,
    text_of,
    to_agents,
    to_chat,
    to_user,
)

OLGA = AgentRef(id=501, name="Ольга Петрова", username="olga_p")
NASTYA = UserRef(id=7001, name="Анастасия Кукушкина-Зайцева", username="nastya_kz_1987",
                 language_code="ru")
BORIS = UserRef(id=7002, name="Борис Бухгалтерович", username="boris_buh", language_code="ru")
ACCOUNT = Keypair.random().public_key

# What Anastasia, and the agents about her, put into the bot: none of it may survive.
HERS = {
    "name": "Кукушкина-Зайцева",
    "username": "nastya_kz_1987",
    "a question to the bot": "сосед Евграф Пантелеймонович",
    "a flow answer": "Евлампий Плюшкин-Семиструнный",
    "a Stellar account": ACCOUNT,
    "a ticket's question": "обменять EURMTL у Ферапонта Гаврилыча",
    "an agent's answer": "принимает по вторникам, телефон 069-555-777",
    "an agent's note": "знакомая Евлампия с Жабляка",
    "a rating comment": "всё получилось, спасибо, код 4321",
}
# What Boris put in: an erasure of Anastasia must leave it alone.
HIS = ["Бухгалтерович", "boris_buh", "Как купить токен MTLAP за наличные в Будве?"]
QUESTION, ANSWER, NOTE = "a ticket's question", "an agent's answer", "an agent's note"


@pytest.fixture
def clock():
    return [datetime(2026, 11, 21, 10, 0, tzinfo=UTC)]


@pytest.fixture
def navigator(database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock):
    navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge,
                          shipped_searcher, clock=lambda: clock[0])
    yield navigator
    navigator.store.close()


def later(clock, minutes: float = 3) -> None:
    clock[0] += timedelta(minutes=minutes)


def raw_file(database_url: str) -> bytes:
    """The database file's bytes (the write-ahead log copied back into it first): what a
    stolen copy of the file would hold, free pages included."""
    path = make_url(database_url).database
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    with open(path, "rb") as file:
        return file.read()


def stats(navigator: Navigator) -> str:
    return to_chat(agent_says(navigator, OLGA, "/stats"))


def boris_asks(navigator: Navigator, clock) -> None:
    say(navigator, BORIS, "/human")
    say(navigator, BORIS, HIS[2])
    later(clock)


def nastya_is_helped_and_rates(navigator: Navigator, clock) -> None:
    """A question to the bot, a ticket answered by Olga with a note, resolved, rated 5 with
    a comment."""
    say(navigator, NASTYA, "/start")
    say(navigator, NASTYA, f"Мне {HERS['a question to the bot']} сказал, что кошелёк пустой?")
    later(clock)
    say(navigator, NASTYA, "/human")
    say(navigator, NASTYA, f"Где в Тивате {HERS[QUESTION]}?")
    later(clock, 20)
    agent_says(navigator, OLGA, "/myname Ольга")
    agent_says(navigator, OLGA, f"Ферапонт {HERS[ANSWER]}", ticket=2)
    agent_says(navigator, OLGA, f"/note {HERS[NOTE]}", ticket=2)
    later(clock, 10)
    rating = agent_says(navigator, OLGA, "/resolve", ticket=2)
    later(clock)
    assert "Спасибо за оценку 5" in text_of(press(navigator, NASTYA, rating, "5"))
    assert "Отзыв пользователя" in to_chat(say(navigator, NASTYA, HERS["a rating comment"]))
    later(clock)


def nastya_walks_the_join_flow_to_the_last_question(navigator: Navigator) -> None:
    """/start → Ассоциация → Вступить: agreement, wallet, account, trustline, recommender;
    the flow now asks her to check the application (its variables hold her answers)."""
    replies = say(navigator, NASTYA, "/start")
    replies = press(navigator, NASTYA, replies, "Ассоциация")
    replies = press(navigator, NASTYA, replies, "Вступить")
    for _ in range(2):  # agreement, wallet
        replies = press(navigator, NASTYA, replies, "Да")
    replies = say(navigator, NASTYA, ACCOUNT)
    replies = press(navigator, NASTYA, replies, "Да")  # trustline
    replies = say(navigator, NASTYA, HERS["a flow answer"])
    assert "Проверим заявку" in text_of(replies) and ACCOUNT in text_of(replies)


def forgetme(navigator: Navigator, user: UserRef = NASTYA):
    asked = say(navigator, user, "/forgetme")
    return asked, press(navigator, user, asked, "Да, удалить")


def left_over(database_url: str) -> list[str]:
    """Which of Anastasia's texts are still anywhere in the database."""
    everything = database_dump(database_url)
    return [what for what, text in HERS.items() if text in everything]


def test_forgetme_mid_flow_leaves_no_text_of_the_user_and_the_same_numbers(
        navigator, clock, database_url):
    boris_asks(navigator, clock)
    nastya_is_helped_and_rates(navigator, clock)
    nastya_walks_the_join_flow_to_the_last_question(navigator)
    assert left_over(database_url) == list(HERS), "every kind of text is planted"
    before = stats(navigator)

    asked, done = forgetme(navigator)
    assert "Удалить всё, что бот хранит о вас?" in text_of(asked)
    assert "Отменить удаление нельзя" in text_of(asked)
    assert "удалены из базы бота" in text_of(done)

    assert left_over(database_url) == []
    everything = database_dump(database_url)
    assert all(text in everything for text in HIS), "Boris's data is untouched"
    raw = raw_file(database_url)
    assert [what for what, text in HERS.items() if text.encode() in raw or
            json.dumps(text).strip('"').encode() in raw] == [], "not even in free pages"
    assert stats(navigator) == before, "the numbers /stats counts stay the same"
    with navigator.store.transaction() as repo:
        ticket = repo.session.get_one(Ticket, 2)
        assert (ticket.status, ticket.rating, ticket.question) == ("closed", 5, "")
        assert ticket.context["user"] == {"id": NASTYA.id, "language": "ru"}
        assert ticket.erased_at is not None
        user = repo.session.get_one(User, NASTYA.id)
        assert (user.name, user.username, user.language) == ("", None, "ru")
        assert repo.session.get_one(Conversation, NASTYA.id).variables == {}
    assert "Выберите тему" in text_of(say(navigator, NASTYA, "/start")), "she may come back"


def test_forgetme_with_an_open_ticket_closes_it_and_tells_the_agents_without_a_name(
        navigator, clock, database_url):
    boris_asks(navigator, clock)
    say(navigator, NASTYA, "/human")
    say(navigator, NASTYA, f"Где в Тивате {HERS[QUESTION]}?")
    later(clock)
    queue = to_chat(agent_says(navigator, OLGA, "/queue"))
    assert "Анастасия" in queue and "Бухгалтерович" in queue
    before = stats(navigator)

    asked, done = forgetme(navigator)
    assert "Открытая заявка №2 будет закрыта" in text_of(asked)
    [note] = to_agents(done)
    assert note.ticket_id == 2 and "пользователь удалил свои данные" in note.text
    assert "Анастасия" not in note.text and str(NASTYA.id) not in note.text

    everything = database_dump(database_url)
    assert left_over(database_url) == []
    assert "№2 · [данные пользователя удалены]" in everything, "the queue's line about her"
    assert "Бухгалтерович" in everything and "Анастасия" not in everything
    with navigator.store.transaction() as repo:
        assert repo.session.get_one(Ticket, 2).status == "closed"
    assert stats(navigator) == before.replace("сейчас в работе: 2", "сейчас в работе: 1"), \
        "only the open count changes: her request is closed, not solved"


def test_nothing_is_erased_without_the_button_and_an_old_button_erases_nothing_new(
        navigator, database_url):
    asked = say(navigator, NASTYA, "/forgetme")
    assert "ничего не удаляю" in text_of(press(navigator, NASTYA, asked, "Отмена"))
    assert HERS["name"] in database_dump(database_url)
    outdated = press(navigator, NASTYA, asked, "Да, удалить")
    assert "больше не действует" in text_of(outdated), "cancelled: the button is spent"
    assert HERS["name"] in database_dump(database_url)

    asked, _ = forgetme(navigator)
    assert HERS["name"] not in database_dump(database_url)
    say(navigator, UserRef(NASTYA.id, language_code="ru"), "Я снова здесь: Фёкла Тимофеевна")
    again = press(navigator, NASTYA, asked, "Да, удалить")
    assert "больше не действует" in text_of(again) and "/forgetme" in text_of(again)
    assert "Фёкла Тимофеевна" in database_dump(database_url), "a second press erases nothing new"


def test_the_confirmation_button_expires(navigator, clock, database_url):
    asked = say(navigator, NASTYA, "/forgetme")
    later(clock, 11)
    assert "больше не действует" in text_of(press(navigator, NASTYA, asked, "Да, удалить"))
    assert HERS["name"] in database_dump(database_url)


def test_forgetme_speaks_english_to_an_english_speaker(navigator):
    john = UserRef(id=7003, name="John Smithfield", language_code="en")
    asked = say(navigator, john, "/forgetme")
    assert "Erase everything the bot keeps about you?" in text_of(asked)
    assert "erased from the bot's database" in text_of(press(navigator, john, asked, "Yes"))


def test_replies_not_sent_yet_to_a_forgotten_user_are_never_sent(navigator):
    say(navigator, NASTYA, "/human")
    say(navigator, NASTYA, f"Где в Тивате {HERS[QUESTION]}?")
    agent_says(navigator, OLGA, "/myname Ольга")
    agent_says(navigator, OLGA, f"Ферапонт {HERS[ANSWER]}", ticket=1)
    forgetme(navigator)
    with navigator.store.transaction() as repo:
        rows = repo.session.scalars(select(OutboxMessage).where(
            OutboxMessage.user_id == NASTYA.id).order_by(OutboxMessage.id)).all()
        # No sender runs here: everything written before the erasure is still unsent.
        assert {r.status for r in rows[:-1]} == {"cancelled"}
        assert (rows[-1].status, rows[-1].erased_at) == ("pending", None), "«Готово: …»"


def test_a_queue_listing_keeps_the_lines_about_other_tickets(navigator, database_url):
    say(navigator, NASTYA, "/human")
    say(navigator, NASTYA, f"Где в Тивате {HERS[QUESTION]}?")
    with navigator.store.transaction() as repo:
        enqueue(repo, [AgentsText("<b>Очередь</b> (сначала старые):\n"
                                  "№1 · open · Анастасия · ждёт 5 мин · Где в Тивате\n"
                                  "№12 · open · Борис · ждёт 3 мин · Как купить\n")])
    forgetme(navigator)
    with navigator.store.transaction() as repo:
        [listing] = [r.payload["text"] for r in repo.session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "agents_text"))]
    assert listing.splitlines() == ["<b>Очередь</b> (сначала старые):",
                                    "№1 · [данные пользователя удалены]",
                                    "№12 · open · Борис · ждёт 3 мин · Как купить"]


# --------------------------------------------------------------------------- retention


def delivered_now(navigator: Navigator, clock) -> None:
    """What is in the outbox went out now (no sender runs here), on the test's clock."""
    with navigator.store.transaction() as repo:
        for row in repo.session.scalars(select(OutboxMessage).where(
                OutboxMessage.status == "pending")):
            row.status, row.created_at = "sent", clock[0]


def test_texts_older_than_the_retention_period_are_erased_once_a_day(
        database_url, shipped_flows, shipped_knowledge, shipped_searcher):
    clock = [datetime.now(UTC)]
    navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge,
                          shipped_searcher, clock=lambda: clock[0], keep_messages_days=365)
    say(navigator, NASTYA, "/human")
    say(navigator, NASTYA, f"Где в Тивате {HERS[QUESTION]}?")
    agent_says(navigator, OLGA, "/myname Ольга")
    agent_says(navigator, OLGA, f"Ферапонт {HERS[ANSWER]}", ticket=1)
    agent_says(navigator, OLGA, "/resolve", ticket=1)
    navigator.handle(ButtonPressed(NASTYA, "rate|1|4"))
    delivered_now(navigator, clock)
    later(clock, 200 * 24 * 60)
    boris_asks(navigator, clock)
    delivered_now(navigator, clock)
    navigator.handle(Tick())
    assert left_over(database_url) == ["name", "username", QUESTION, ANSWER], "200 days: kept"

    later(clock, 170 * 24 * 60)  # a year and five days after Anastasia wrote
    navigator.handle(Tick())
    assert left_over(database_url) == []
    everything = database_dump(database_url)
    assert all(text in everything for text in HIS), "Boris wrote 170 days ago"
    with navigator.store.transaction() as repo:
        ticket = repo.session.get_one(Ticket, 1)
        assert (ticket.status, ticket.rating, ticket.question) == ("closed", 4, "")
        assert [e.kind for e in repo.ticket_log(1)].count("reply") == 1, "the log's rows stay"
        repo.add_message(BORIS.id, "in", "письмо из прошлого", clock[0] - timedelta(days=400))

    navigator.handle(Tick())
    assert "письмо из прошлого" in database_dump(database_url), "once a day: not again the same day"
    later(clock, 24 * 60)
    navigator.handle(Tick())
    assert "письмо из прошлого" not in database_dump(database_url)
    navigator.store.close()


# --------------------------------------------------------------------------- afterwards


def ask_for_the_airdrop(navigator: Navigator, account: str) -> str:
    replies = press(navigator, NASTYA, say(navigator, NASTYA, "/start"), "Эйрдроп")
    if "Пришлите публичный адрес" not in text_of(replies):
        return text_of(replies)
    return text_of(say(navigator, NASTYA, account))


def test_a_decided_airdrop_stays_decided_after_forgetme_an_undecided_one_does_not(
        navigator):
    assert "заявка №1" in ask_for_the_airdrop(navigator, ACCOUNT)
    agent_says(navigator, OLGA, "/myname Ольга")
    rating = agent_says(navigator, OLGA, "/done", ticket=1)
    press(navigator, NASTYA, rating, "5")
    forgetme(navigator)
    assert "уже подавали заявку на эйрдроп" in ask_for_the_airdrop(navigator, ACCOUNT), \
        "her id stays on the decided request: a one-time request is not made twice"

    boris = UserRef(id=7010, name="Борис")
    press(navigator, boris, say(navigator, boris, "/start"), "Эйрдроп")
    assert "заявка №2" in text_of(say(navigator, boris, Keypair.random().public_key))
    asked = say(navigator, boris, "/forgetme")
    press(navigator, boris, asked, "Да, удалить")
    replies = press(navigator, boris, say(navigator, boris, "/start"), "Эйрдроп")
    assert "Пришлите публичный адрес" in text_of(replies), \
        "a request closed undecided by /forgetme does not count"


def test_agents_can_neither_answer_nor_reopen_a_forgotten_ticket(navigator):
    say(navigator, NASTYA, "/human")
    say(navigator, NASTYA, f"Где в Тивате {HERS[QUESTION]}?")
    agent_says(navigator, OLGA, "/myname Ольга")
    forgetme(navigator)
    for attempt in ("Вы ещё здесь?", "/reopen"):
        replies = agent_says(navigator, OLGA, attempt, ticket=1)
        assert to_user(replies) == []
        assert "пользователь удалил свои данные" in to_chat(replies)
    with navigator.store.transaction() as repo:
        assert repo.session.get_one(Ticket, 1).status == "closed"
