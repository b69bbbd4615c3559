"""Flood: a user who sends more messages a minute than a person writes gets one polite
notice per flood; in an open ticket the agents get the extra messages folded into one
line they can open; nothing is dropped from storage. On a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from navigator.events import AgentButtonPressed, AgentRef, Reply, Tick, UserRef
from navigator.handling import Navigator
from navigator.store import Store
from navigator.store.models import Message, Ticket
from tests.helpers import agent_says, press, say, text_of, to_agents, to_chat, to_user

LIMIT = 5
OLGA = AgentRef(id=501, name="Ольга Петрова")


@pytest.fixture
def clock():
    return [datetime(2026, 11, 21, 10, 0, tzinfo=UTC)]


def make(database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock,
         limit: int | None = LIMIT) -> Navigator:
    return Navigator(Store(database_url), shipped_flows, shipped_knowledge, shipped_searcher,
                     clock=lambda: clock[0], flood_per_minute=limit)


@pytest.fixture
def navigator(database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock):
    navigator = make(database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock)
    yield navigator
    navigator.store.close()


def burst(navigator: Navigator, clock, user: UserRef, lines: list[str],
          every_s: float = 1.0) -> list[list[Reply]]:
    """The user sends `lines`, one every `every_s` seconds; the replies to each."""
    replies = []
    for line in lines:
        replies.append(say(navigator, user, line))
        clock[0] += timedelta(seconds=every_s)
    return replies


def stored_from(navigator: Navigator, user: UserRef) -> list[str]:
    with navigator.store.transaction() as repo:
        return list(repo.session.scalars(
            select(Message.text).where(Message.user_id == user.id, Message.direction == "in")
            .order_by(Message.id)))


def ticket(navigator: Navigator, number: int = 1) -> Ticket:
    with navigator.store.transaction() as repo:
        return repo.session.get_one(Ticket, number)


def test_a_user_within_the_limit_gets_every_answer(navigator, clock, anna):
    replies = burst(navigator, clock, anna, ["/start"] * LIMIT)
    assert all("Выберите тему" in text_of(r) for r in replies)


def test_the_first_message_over_the_limit_gets_one_polite_notice_the_rest_nothing(
        navigator, clock, anna):
    replies = burst(navigator, clock, anna, ["/start"] * 12, every_s=0.5)
    assert all("Выберите тему" in text_of(r) for r in replies[:LIMIT])
    [notice] = to_user(replies[LIMIT])
    assert "больше 5 за минуту" in notice.text and "паузу" in notice.text
    assert replies[LIMIT + 1:] == [[]] * 6, "one notice per flood, not one per message"
    assert stored_from(navigator, anna) == ["/start"] * 12, "nothing is dropped from storage"


def test_the_notice_is_in_the_users_language(navigator, clock):
    john = UserRef(id=2002, name="John", language_code="en")
    replies = burst(navigator, clock, john, ["hello?"] * (LIMIT + 1), every_s=0.1)
    assert "more than 5 a minute" in text_of(replies[-1])


def test_a_flood_goes_on_while_over_limit_messages_come_less_than_a_minute_apart(
        navigator, clock, anna):
    # Six messages a minute for three minutes: each is over the limit, one notice in all.
    replies = burst(navigator, clock, anna, ["/start"] * 18, every_s=10)
    notices = [r for r in replies if "паузу" in text_of(r)]
    assert len(notices) == 1


def test_after_a_quiet_minute_the_user_is_answered_again_and_a_new_flood_is_told_again(
        navigator, clock, anna):
    burst(navigator, clock, anna, ["/start"] * (LIMIT + 3), every_s=0.2)
    clock[0] += timedelta(seconds=61)
    [menu] = to_user(say(navigator, anna, "/start"))
    assert "Выберите тему" in menu.text
    clock[0] += timedelta(seconds=61)
    replies = burst(navigator, clock, anna, ["/start"] * (LIMIT + 3), every_s=0.2)
    assert sum("паузу" in text_of(r) for r in replies) == 1


def test_no_limit_when_it_is_switched_off(database_url, shipped_flows, shipped_knowledge,
                                          shipped_searcher, clock, anna):
    navigator = make(database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock,
                     limit=None)
    replies = burst(navigator, clock, anna, ["/start"] * 30, every_s=0.1)
    assert all("Выберите тему" in text_of(r) for r in replies)
    navigator.store.close()


def test_the_count_lives_in_the_database_so_two_processes_share_it(
        database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock, anna):
    first, second = (make(database_url, shipped_flows, shipped_knowledge, shipped_searcher,
                          clock) for _ in range(2))
    replies = []
    for number in range(LIMIT + 2):  # the two processes take turns with Anna's updates
        replies.append(say((first, second)[number % 2], anna, "/start"))
        clock[0] += timedelta(seconds=1)
    assert "паузу" in text_of(replies[LIMIT]) and replies[LIMIT + 1] == []
    first.store.close()
    second.store.close()


# --------------------------------------------------------------------------- a ticket


def flood_the_ticket(navigator: Navigator, clock, user: UserRef, count: int
                     ) -> list[list[Reply]]:
    say(navigator, user, "/human")
    clock[0] += timedelta(seconds=30)
    say(navigator, user, "Не могу войти в кошелёк Lobstr")
    clock[0] += timedelta(seconds=90)  # the hand-over is a minute and a half ago
    return burst(navigator, clock, user, [f"строка {n} из лога" for n in range(1, count + 1)],
                 every_s=0.5)


def test_a_flood_in_an_open_ticket_reaches_the_agents_as_one_folded_line(
        navigator, clock, anna):
    replies = flood_the_ticket(navigator, clock, anna, LIMIT + 7)
    relayed = [to_chat(r) for r in replies if to_agents(r)]
    assert [line.rsplit(":", 1)[-1].strip() for line in relayed] == [
        f"строка {n} из лога" for n in range(1, LIMIT + 1)], "within the limit: relayed"
    assert "заявке №1 одной сводкой" in text_of(replies[LIMIT])
    assert all(not to_agents(r) for r in replies[LIMIT:]), "over it: not one by one"
    assert ticket(navigator).folded == 7

    assert to_agents(navigator.handle(Tick())) == [], "not while the user is still at it"
    clock[0] += timedelta(seconds=30)
    [line] = to_agents(navigator.handle(Tick()))
    assert line.ticket_id == 1
    assert "…и ещё 7 сообщений по заявке №1 за минуту" in line.text
    assert navigator.handle(Tick()) == [], "told once"

    [button] = line.buttons
    assert button.label == "📜 Показать"
    shown = to_chat(navigator.handle(AgentButtonPressed(OLGA, button.data)))
    assert [f"строка {n} из лога" for n in range(LIMIT + 1, LIMIT + 8)] == [
        row.removeprefix("› ") for row in shown.splitlines()[1:]]
    assert stored_from(navigator, anna)[-(LIMIT + 7):] == [
        f"строка {n} из лога" for n in range(1, LIMIT + 8)], "every message is stored"


def test_the_folded_line_comes_before_the_users_next_relayed_message(navigator, clock, anna):
    flood_the_ticket(navigator, clock, anna, LIMIT + 3)
    clock[0] += timedelta(seconds=70)
    folded, relayed = to_agents(say(navigator, anna, "Извините, это был лог ошибки"))
    assert "…и ещё 3 сообщения" in folded.text
    assert "Извините, это был лог ошибки" in relayed.text
    assert to_agents(navigator.handle(Tick())) == []


def test_a_long_flood_is_reported_every_few_minutes_not_never(navigator, clock, anna):
    say(navigator, anna, "/human")
    say(navigator, anna, "Не могу войти в кошелёк Lobstr")
    clock[0] += timedelta(seconds=90)
    lines = []
    for _ in range(12 * 60 // 4):  # 15 a minute (the limit is 5) for 12 minutes
        say(navigator, anna, "спам")
        clock[0] += timedelta(seconds=4)
        lines += to_agents(navigator.handle(Tick()))
    clock[0] += timedelta(seconds=10)
    lines += to_agents(navigator.handle(Tick()))
    # 180 messages: 5 relayed, then a line per 5 minutes (75 messages), and the rest
    # once she stopped.
    assert [line.text.split(" по заявке")[0] for line in lines] == [
        "…и ещё 75 сообщений", "…и ещё 75 сообщений", "…и ещё 25 сообщений"]


def test_agents_see_the_users_last_messages_with_a_command(navigator, clock, anna):
    flood_the_ticket(navigator, clock, anna, LIMIT + 20)
    parts = to_agents(agent_says(navigator, OLGA, "/messages", ticket=1))
    assert len(parts) == 3 and "(1/3)" in parts[0].text
    shown = "\n".join(p.text for p in parts)
    assert "Не могу войти в кошелёк Lobstr" in shown and "строка 25 из лога" in shown


def test_commands_and_buttons_over_the_limit_are_not_folded(navigator, clock, anna):
    say(navigator, anna, "/human")
    say(navigator, anna, "Не могу войти в кошелёк Lobstr")
    clock[0] += timedelta(seconds=90)
    burst(navigator, clock, anna, ["/status"] * (LIMIT + 4), every_s=0.5)
    assert ticket(navigator).folded == 0
    with navigator.store.transaction() as repo:
        assert repo.session.scalar(select(func.count()).select_from(Message).where(
            Message.text == "/status")) == LIMIT + 4


def test_a_request_to_erase_ones_data_is_answered_even_in_a_flood(navigator, clock, anna):
    burst(navigator, clock, anna, ["/start"] * (LIMIT + 2), every_s=0.5)
    asked = say(navigator, anna, "/forgetme")
    assert "Удалить всё, что бот хранит о вас?" in text_of(asked)
    assert "удалены из базы бота" in text_of(press(navigator, anna, asked, "Да, удалить"))
