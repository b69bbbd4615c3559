"""A ticket's life, as the desk's transition table says it: what may change to what, and
who may change it. `record` writes only what the table allows; anything else raises and
leaves the ticket and its log as they were."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from navigator.desk.states import (
    CLAIMED,
    CLOSED,
    OPEN,
    RESOLVED,
    TRANSITIONS,
    WAITING_USER,
    IllegalTransition,
    check,
    record,
    record_taken,
)
from navigator.events import UserRef
from navigator.store import Store
from navigator.store.repository import OPEN_TICKET_STATUSES

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ANNA, MARIA = "user:1001", "agent:77"

# The life-cycle the desk's docstring tells, step by step: each is allowed.
LIFE = [
    ("Анна hands her question over", None, OPEN, ANNA),
    ("Мария takes it", OPEN, CLAIMED, MARIA),
    ("Мария answers: Анна's turn", CLAIMED, WAITING_USER, MARIA),
    ("Анна writes back: Мария's turn", WAITING_USER, CLAIMED, ANNA),
    ("Мария resolves it", CLAIMED, RESOLVED, MARIA),
    ("Анна rates it 1-2: back to the queue", RESOLVED, OPEN, ANNA),
    ("Анна says «Не решено»: Мария carries on", RESOLVED, CLAIMED, ANNA),
    ("Анна rates it 3-5", RESOLVED, CLOSED, ANNA),
    ("nobody rated it in three days", RESOLVED, CLOSED, "bot"),
    ("Мария reopens a closed ticket", CLOSED, CLAIMED, MARIA),
    ("Мария reopens a resolved ticket", RESOLVED, CLAIMED, MARIA),
    ("Анна withdraws it (/cancel) or erases her data", WAITING_USER, CLOSED, ANNA),
    ("Мария ignores a spammer", OPEN, CLOSED, MARIA),
    ("an operator erases the user (`navigator forget`)", CLAIMED, CLOSED, "operator"),
    ("Мария resolves a ticket nobody took", OPEN, RESOLVED, MARIA),
    ("Мария resolves it while Анна's turn", WAITING_USER, RESOLVED, MARIA),
]

# What never happens: each raises.
NEVER = [
    ("a user takes a ticket", OPEN, CLAIMED, ANNA),
    ("a user resolves their own ticket", CLAIMED, RESOLVED, ANNA),
    ("an agent opens a ticket for a user", None, OPEN, MARIA),
    ("an agent rates a ticket", RESOLVED, CLOSED, MARIA),
    ("a closed ticket is resolved", CLOSED, RESOLVED, MARIA),
    ("a user reopens a closed ticket", CLOSED, CLAIMED, ANNA),
    ("a closed ticket goes back to the queue", CLOSED, OPEN, MARIA),
    ("the bot closes a ticket being worked on", CLAIMED, CLOSED, "bot"),
    ("a ticket is waiting for its user before anyone answered", OPEN, WAITING_USER, MARIA),
    ("a resolved ticket waits for its user", RESOLVED, WAITING_USER, MARIA),
    ("a ticket is created resolved", None, RESOLVED, ANNA),
    ("someone the table does not know changes it", OPEN, CLAIMED, "stranger:1"),
]


@pytest.mark.parametrize(("story", "from_status", "to_status", "who"), LIFE,
                         ids=[story for story, *_ in LIFE])
def test_the_life_of_a_ticket_is_in_the_table(story, from_status, to_status, who):
    check(from_status, to_status, who)


@pytest.mark.parametrize(("story", "from_status", "to_status", "who"), NEVER,
                         ids=[story for story, *_ in NEVER])
def test_what_never_happens_to_a_ticket_raises(story, from_status, to_status, who):
    with pytest.raises(IllegalTransition):
        check(from_status, to_status, who)


def test_the_table_knows_every_status_and_reaches_each_one():
    statuses = {OPEN, CLAIMED, WAITING_USER, RESOLVED, CLOSED}
    reached = {to for changes in TRANSITIONS.values() for to in changes}
    assert reached == statuses
    assert set(TRANSITIONS) == statuses | {None}
    assert set(OPEN_TICKET_STATUSES) == {OPEN, CLAIMED, WAITING_USER}


def test_every_open_ticket_can_be_resolved_by_an_agent_and_closed_by_its_user():
    for status in OPEN_TICKET_STATUSES:
        check(status, RESOLVED, MARIA)
        check(status, CLOSED, ANNA)


@pytest.fixture
def store(database_url):
    store = Store(database_url)
    yield store
    store.close()


def _new_ticket(repo):
    repo.user(UserRef(1001, "Анна"), "ru")
    repo.session.flush()  # the user's row first: the ticket refers to it
    ticket = repo.create_ticket(1001, "question", "Где купить зимние шины?", {})
    record(repo, ticket, None, OPEN, ANNA, NOW)
    return ticket


def test_record_changes_the_status_and_logs_who_and_why(store):
    with store.transaction() as repo:
        ticket = _new_ticket(repo)
        record(repo, ticket, OPEN, RESOLVED, MARIA, NOW, why="done")
        assert ticket.status == RESOLVED
        log = [(e.from_status, e.to_status, e.who, e.text) for e in repo.ticket_log(ticket.id)]
    assert log == [(None, OPEN, ANNA, None), (OPEN, RESOLVED, MARIA, "done")]


def test_an_illegal_change_is_refused_and_nothing_is_written(store):
    with store.transaction() as repo:
        ticket = _new_ticket(repo)
        with pytest.raises(IllegalTransition, match="user:1001 may not change a ticket "
                                                    "from open to resolved"):
            record(repo, ticket, OPEN, RESOLVED, ANNA, NOW)
        assert ticket.status == OPEN
        assert [e.to_status for e in repo.ticket_log(ticket.id)] == [OPEN]


def test_a_change_from_a_status_the_ticket_is_not_in_is_refused(store):
    with store.transaction() as repo:
        ticket = _new_ticket(repo)
        record(repo, ticket, OPEN, CLAIMED, MARIA, NOW)
        with pytest.raises(IllegalTransition, match="is claimed, not waiting_user"):
            record(repo, ticket, WAITING_USER, CLAIMED, ANNA, NOW)
        assert ticket.status == CLAIMED
        assert [e.to_status for e in repo.ticket_log(ticket.id)] == [OPEN, CLAIMED]


def test_a_take_two_agents_race_for_is_logged_as_the_table_allows(store):
    with store.transaction() as repo:
        ticket = _new_ticket(repo)
    with store.transaction() as repo:
        assert repo.take_ticket(ticket.id, 77)
        assert not repo.take_ticket(ticket.id, 78), "the second agent loses"
        taken = repo.ticket(ticket.id)
        record_taken(repo, taken, MARIA, NOW)
        assert taken.status == CLAIMED
        assert [(e.from_status, e.to_status, e.who) for e in repo.ticket_log(ticket.id)] \
            == [(None, OPEN, ANNA), (OPEN, CLAIMED, MARIA)]
        with pytest.raises(IllegalTransition):
            record_taken(repo, taken, ANNA, NOW)
