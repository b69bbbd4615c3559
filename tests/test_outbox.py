"""The outbox: replies are stored with the state change, delivered in order per chat,
within Telegram's limits, retried until delivered or refused for good, never deleted."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from datetime import UTC

import pytest
from sqlalchemy import event, select

from navigator.events import (
    AgentsText,
    Attachment,
    Button,
    CopyToUser,
    NotifyAgents,
    SendText,
    UserCommand,
    UserRef,
)
from navigator.outbox import COLLAPSE_HOLD_S, Delivery, Outbox, Outcome, Sent, enqueue, reply_of
from navigator.ratelimit import Limit, Limits, RateLimiter
from navigator.sender import Refused, RetryAfter, Sender, Transient
from navigator.store import Store
from navigator.store.models import OutboxMessage, Ticket


@pytest.fixture
def store(database_url):
    store = Store(database_url)
    yield store
    store.close()


def rows(store: Store) -> list[OutboxMessage]:
    with store.transaction() as repo:
        return list(repo.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def put(store: Store, *replies, now: float | None = None) -> list[int]:
    with store.transaction() as repo:
        repo.user(UserRef(7, "Анна"), "ru")
        return enqueue(repo, replies, now)


# --------------------------------------------------------------------------- storing


def test_replies_are_stored_only_if_the_transaction_commits(store):
    with pytest.raises(RuntimeError), store.transaction() as repo:
        enqueue(repo, [SendText(7, "потеряно?")])
        raise RuntimeError("the engine failed after deciding")
    assert rows(store) == []
    put(store, SendText(7, "<b>Привет</b>", (Button("Меню", "menu"),)), NotifyAgents(3, "card"))
    first, second = rows(store)
    assert (first.lane, first.status, second.lane) == ("user:7", "pending", "agents")
    assert reply_of(first) == SendText(7, "<b>Привет</b>", (Button("Меню", "menu"),))
    assert reply_of(second) == NotifyAgents(3, "card")


def test_an_agents_attachment_waits_its_turn_in_the_users_chat(store):
    photo = CopyToUser(7, Attachment("document", -100777, 42, "образец.pdf"),
                       "💬 <b>Ольга</b>, поддержка · заявка №1")
    put(store, SendText(7, "Добавил к заявке №1"), photo)
    first, second = rows(store)
    assert (second.kind, second.lane, second.user_id) == ("copy_to_user", "user:7", 7)
    assert reply_of(second) == photo
    assert Outbox(store).heads(now=1.0) == [(first.id, "user:7")], "after the text before it"


def test_the_engine_writes_its_replies_to_the_outbox(make_navigator, anna):
    navigator = make_navigator()
    handled = navigator.handle_recorded(UserCommand(anna, "start"))
    stored = rows(navigator.store)
    assert [r.id for r in stored] == handled.outbox_ids
    assert [reply_of(r) for r in stored] == handled.replies


def test_only_the_oldest_row_of_each_chat_is_due(store):
    put(store, SendText(7, "1"), SendText(7, "2"), NotifyAgents(1, "card"))
    outbox = Outbox(store)
    assert outbox.heads(now=1.0) == [(1, "user:7"), (3, "agents")]
    [first] = outbox.claim([1], now=1.0)
    assert first.reply.text == "1" and first.attempts == 1
    assert outbox.heads(now=2.0) == [(3, "agents")], "the chat waits for its first message"
    outbox.sent(1, Sent(7, 501))
    assert outbox.heads(now=2.0) == [(2, "user:7"), (3, "agents")]
    assert [r.message_id for r in rows(store)] == [501, None, None]


def test_a_row_claimed_by_a_dead_process_is_resumed_and_flagged_uncertain(store):
    put(store, SendText(7, "1"))
    dead = Outbox(store, owner=f"{socket.gethostname()}:999999999:x")
    dead.claim([1], now=1.0)
    alive = Outbox(store, owner=f"{socket.gethostname()}:{os.getpid()}:y")
    assert alive.heads(now=2.0) == [], "a claim is respected while its lease lasts"
    assert Outbox(store).release_orphans() == 1
    [delivery] = alive.claim([1], now=2.0)
    assert (delivery.attempts, delivery.uncertain) == (2, True)


def test_an_expired_claim_of_another_host_is_taken_over_as_uncertain(store):
    put(store, SendText(7, "1"))
    Outbox(store, owner="elsewhere:1:z").claim([1], now=1.0, lease_s=10)
    assert Outbox(store).release_orphans() == 0
    assert Outbox(store).heads(now=5.0) == []
    [delivery] = Outbox(store).claim([1], now=12.0)
    assert delivery.uncertain


def test_outcomes_are_recorded_together_and_a_sent_row_frees_its_chat_at_once(store):
    put(store, SendText(7, "1"), SendText(7, "2"), SendText(8, "a"), SendText(9, "x"))
    outbox = Outbox(store)
    first = outbox.claim_due(1.0, 10, lambda heads: [row_id for row_id, _ in heads])
    assert [d.reply.text for d in first] == ["1", "a", "x"]
    # Chat 7's first row sent, chat 8's retried later, chat 9's refused: one transaction,
    # which also claims chat 7's next row.
    claimed, next_due = outbox.record_and_claim(
        [Outcome(1, "sent", Sent(7, 501)), Outcome(3, "pending", due_at=5.0, error="502"),
         Outcome(4, "failed", error="Forbidden: bot was blocked by the user")],
        2.0, 10, lambda heads: [row_id for row_id, _ in heads])
    assert [d.reply.text for d in claimed] == ["2"] and next_due is None
    assert [(r.status, r.message_id) for r in rows(store)] == [
        ("sent", 501), ("sending", None), ("pending", None), ("failed", None)]
    assert rows(store)[2].due_at == 5.0 and "blocked" in rows(store)[3].last_error
    claimed, next_due = outbox.record_and_claim([Outcome(2, "sent", Sent(7, 502))], 3.0, 10,
                                                lambda heads: [row_id for row_id, _ in heads])
    assert claimed == [] and next_due == 5.0, "only chat 8's retry is left, due at 5"


def test_a_tickets_first_message_in_the_agents_chat_is_remembered_as_its_card(store):
    with store.transaction() as repo:
        repo.user(UserRef(7, "Анна"), "ru")
        repo.session.flush()
        ticket = repo.create_ticket(7, "question", "?", {})
        enqueue(repo, [NotifyAgents(ticket.id, "card"), NotifyAgents(ticket.id, "more")])
    outbox = Outbox(store)
    outbox.record([Outcome(1, "sent", Sent(-100, 41), ticket_id=ticket.id)])
    outbox.record([Outcome(2, "sent", Sent(-100, 42), ticket_id=ticket.id)])
    with store.transaction() as repo:
        stored = repo.session.get(Ticket, ticket.id)
        assert (stored.agents_chat_id, stored.agents_card_message_id) == (-100, 41)


# --------------------------------------------------------------------------- collapsing

MENU = "step|main|menu"


def menu(text: str = "Главное меню") -> SendText:
    return SendText(7, text, (Button("Кошелёк", "o|main|menu|1"),), collapse=MENU)


def statuses(store: Store) -> list[tuple[str, str]]:
    return [(r.payload["text"], r.status) for r in rows(store)]


def test_a_menu_not_sent_yet_is_cancelled_when_the_same_menu_is_written_again(store):
    put(store, menu("меню 1"), now=100.0)
    put(store, menu("меню 2"), now=100.2)
    put(store, menu("меню 3"), now=100.4)
    assert statuses(store) == [("меню 1", "cancelled"), ("меню 2", "cancelled"),
                               ("меню 3", "pending")]
    assert rows(store)[0].last_error == "superseded by a newer copy"
    assert Outbox(store).heads(now=100.5) == [(3, "user:7")], "only the newest is sent"


def test_the_same_menu_right_after_one_was_sent_waits_so_a_burst_sends_two(store):
    outbox = Outbox(store)
    put(store, menu("меню 1"), now=100.0)
    outbox.claim([1], now=100.0)
    outbox.sent(1, Sent(7, 501))
    sent_at = rows(store)[0].sent_at.replace(tzinfo=UTC).timestamp()
    for number in range(2, 30):  # /start, 28 more times within a few seconds
        put(store, menu(f"меню {number}"), now=sent_at + number * 0.15)
    waiting = [r for r in rows(store) if r.status == "pending"]
    assert [r.payload["text"] for r in waiting] == ["меню 29"]
    assert waiting[0].due_at == pytest.approx(sent_at + COLLAPSE_HOLD_S)
    assert outbox.heads(now=sent_at + 1) == [], "it waits for the hold, then goes"
    assert outbox.heads(now=sent_at + COLLAPSE_HOLD_S) == [(waiting[0].id, "user:7")]


def test_only_copies_back_to_back_collapse_never_different_messages(store):
    put(store, menu("меню"), SendText(7, "Ответ на вопрос про кошелёк"), now=100.0)
    put(store, menu("меню"), SendText(7, "Ответ на вопрос про кошелёк"), now=100.1)
    put(store, SendText(7, "шаг", collapse="step|join|account"), now=100.2)
    assert [status for _, status in statuses(store)] == ["pending"] * 5, \
        "an answer between two menus keeps both; answers have no key; another step is another key"
    put(store, NotifyAgents(1, "карточка"), now=100.3)
    put(store, NotifyAgents(1, "карточка"), now=100.4)
    assert [status for _, status in statuses(store)][-2:] == ["pending", "pending"], \
        "nothing in the agents' chat collapses"


def test_a_collapsed_message_keeps_its_chat_in_order(store):
    put(store, menu("меню 1"), now=100.0)
    put(store, menu("меню 2"), SendText(7, "ответ"), now=100.1)
    outbox = Outbox(store)
    assert [d.reply.text for d in outbox.claim_due(100.2, 10, lambda heads: [
        row_id for row_id, _ in heads])] == ["меню 2"]
    assert reply_of(rows(store)[1]).collapse == MENU


# --------------------------------------------------------------------------- limits


def test_a_private_chat_gets_a_short_burst_then_one_message_a_second():
    limiter = RateLimiter(Limits(total=Limit(1000, 100), private=Limit(1.0, burst=3), margin=1.0))
    now, sent = 0.0, []
    while len(sent) < 6:
        now = limiter.ready_at(7, now)
        limiter.take(7, now)
        sent.append(now)
    assert sent == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]


def test_a_group_gets_twenty_messages_a_minute_and_everyone_thirty_a_second():
    limiter = RateLimiter()
    now, times = 0.0, []
    for _ in range(21):
        now = limiter.ready_at(-100, now)
        limiter.take(-100, now)
        times.append(now)
    assert sum(1 for t in times if t < 60) <= 20
    limiter = RateLimiter()
    now, times = 0.0, []
    for chat in range(1, 62):
        now = limiter.ready_at(chat, now)
        limiter.take(chat, now)
        times.append(now)
    assert sum(1 for t in times if t < 1.0) <= 30 and sum(1 for t in times if t < 2.0) <= 60


def test_room_is_reserved_ahead_one_slot_after_another():
    limiter = RateLimiter(Limits(total=Limit(10.0), private=Limit(1.0), margin=1.0))
    assert limiter.reserve(7, now=0.0, within=0.25) == (0.0, True)
    assert limiter.reserve(8, now=0.0, within=0.25) == (0.1, True)
    assert limiter.reserve(9, now=0.0, within=0.25) == (0.2, True)
    assert limiter.reserve(10, now=0.0, within=0.25) == (pytest.approx(0.3), False)
    assert limiter.reserve(7, now=0.3, within=0.25)[0] >= 1.0, "chat 7 had its message"
    # Planning says the same without taking anything.
    assert limiter.plan([11, 12], now=0.3, within=0.25) == [(pytest.approx(0.3), True),
                                                            (pytest.approx(0.4), True)]
    assert limiter.reserve(11, now=0.3)[0] == pytest.approx(0.3)


def test_a_pause_holds_one_chat_or_everyone():
    limiter = RateLimiter()
    limiter.pause(7, 5.0)
    assert limiter.ready_at(7, 0.0) == 5.0 and limiter.ready_at(8, 0.0) == 0.0
    limiter.pause(None, 9.0)
    assert limiter.ready_at(8, 0.0) == 9.0


# --------------------------------------------------------------------------- sending


class Telegram:
    """A scripted deliver(): answers from `script` per text, then succeeds."""

    def __init__(self, script: dict[str, list[Exception]] | None = None):
        self.script = script or {}
        self.delivered: list[str] = []
        self.attempts: list[str] = []

    async def __call__(self, delivery: Delivery) -> Sent:
        text = delivery.reply.text
        self.attempts.append(text)
        if self.script.get(text):
            raise self.script[text].pop(0)
        self.delivered.append(text)
        return Sent(7, len(self.delivered))


async def run_sender(store: Store, telegram: Telegram, until, limits: Limits | None = None,
                     timeout: float = 10.0, on_failed=None) -> Sender:
    fast = limits or Limits(total=Limit(1000), private=Limit(1000, 10), group=Limit(1000))
    sender = Sender(Outbox(store), telegram, lambda lane: 7 if lane != "agents" else -5,
                    limiter=RateLimiter(fast), poll_s=0.05, on_failed=on_failed)
    task = asyncio.create_task(sender.run())
    try:
        async with asyncio.timeout(timeout):
            while not until():
                await asyncio.sleep(0.01)
    finally:
        await sender.stop()
        await task
    return sender


async def test_a_chat_is_delivered_in_order_even_when_its_first_message_is_retried(store,
                                                                                   monkeypatch):
    monkeypatch.setattr("navigator.sender._backoff", lambda attempts: 0.2)
    put(store, SendText(7, "1"), SendText(7, "2"), NotifyAgents(1, "card"))
    telegram = Telegram({"1": [Transient("502 Bad Gateway")]})
    await run_sender(store, telegram, lambda: len(telegram.delivered) == 3)
    assert telegram.delivered == ["card", "1", "2"], "another chat is not held up"
    assert [(r.status, r.attempts) for r in rows(store)] == [("sent", 2), ("sent", 1),
                                                             ("sent", 1)]


async def test_retry_after_is_honoured_and_a_refusal_is_final(store):
    put(store, SendText(7, "flood"), SendText(7, "blocked"), SendText(7, "after"))
    telegram = Telegram({"flood": [RetryAfter(0.5)],
                         "blocked": [Refused("Forbidden: bot was blocked by the user")]})
    loop = asyncio.get_running_loop()
    started = loop.time()
    await run_sender(store, telegram, lambda: "after" in telegram.delivered)
    assert loop.time() - started >= 0.5
    assert telegram.attempts == ["flood", "flood", "blocked", "after"]
    assert [r.status for r in rows(store)] == ["sent", "failed", "sent"]
    assert "blocked" in rows(store)[1].last_error


async def test_a_refusal_is_reported_to_whoever_tells_the_ticket(store):
    put(store, SendText(7, "ответ агента", ticket_id=3), SendText(7, "после"))
    telegram = Telegram({"ответ агента": [Refused("Forbidden: bot was blocked by the user")]})
    heard: list[tuple[SendText, str]] = []

    async def on_failed(delivery: Delivery, error: str) -> None:
        heard.append((delivery.reply, error))
        raise RuntimeError("the report failed too")  # logged; the row is still recorded

    await run_sender(store, telegram, lambda: "после" in telegram.delivered,
                     on_failed=on_failed)
    assert heard == [(SendText(7, "ответ агента", ticket_id=3),
                      "Forbidden: bot was blocked by the user")]
    assert [r.status for r in rows(store)] == ["failed", "sent"]


async def test_unexpected_errors_are_retried_not_dropped(store, monkeypatch):
    monkeypatch.setattr("navigator.sender._backoff", lambda attempts: 0.05)
    put(store, SendText(7, "x"))
    telegram = Telegram({"x": [ValueError("a bug"), Transient("timeout")]})
    sender = await run_sender(store, telegram, lambda: telegram.delivered == ["x"])
    assert sender.stats.retried == 2 and rows(store)[0].attempts == 3


async def test_stopping_waits_for_the_request_in_flight(store):
    put(store, SendText(7, "slow"))
    release = asyncio.Event()

    async def slow(delivery: Delivery) -> Sent:
        await release.wait()
        return Sent(7, 1)

    sender = Sender(Outbox(store), slow, lambda lane: 7, poll_s=0.05)
    task = asyncio.create_task(sender.run())
    while not sender._busy:
        await asyncio.sleep(0.01)
    stopping = asyncio.create_task(sender.stop(timeout=5))
    await asyncio.sleep(0.05)
    release.set()
    await stopping
    await task
    assert rows(store)[0].status == "sent"


async def test_many_chats_at_once_each_in_order_each_row_recorded_in_few_transactions(store):
    chats = range(101, 121)
    put(store, *(SendText(chat, f"{chat}:{n}") for n in range(3) for chat in chats))
    delivered: dict[int, list[str]] = {}
    message_ids = iter(range(1000, 2000))

    async def deliver(delivery: Delivery) -> Sent:
        await asyncio.sleep(0.001 * (delivery.id % 5))  # answers come back out of order
        reply = delivery.reply
        delivered.setdefault(reply.user_id, []).append(reply.text)
        return Sent(reply.user_id, next(message_ids))

    commits = []

    def count(_connection) -> None:
        commits.append(1)

    event.listen(store.engine, "commit", count)
    fast = Limits(total=Limit(1000), private=Limit(1000, 10))
    sender = Sender(Outbox(store), deliver, lambda lane: int(lane.partition(":")[2]),
                    limiter=RateLimiter(fast), poll_s=0.05)
    task = asyncio.create_task(sender.run())
    async with asyncio.timeout(10):
        while sum(map(len, delivered.values())) < 60 or any(
                r.status != "sent" for r in rows(store)):
            await asyncio.sleep(0.01)
    await sender.stop()
    await task
    event.remove(store.engine, "commit", count)
    assert all(delivered[chat] == [f"{chat}:{n}" for n in range(3)] for chat in chats)
    stored = rows(store)
    assert all(r.status == "sent" and r.chat_id == int(r.lane[5:]) for r in stored)
    assert len({r.message_id for r in stored}) == 60, "each row keeps its own message id"
    assert sender.stats.sent == 60
    # The rows(store) checks above commit too; still far fewer than a claim and a record
    # per row (120) would take.
    assert len(commits) < 90, len(commits)


async def test_a_backlog_goes_out_at_the_overall_rate_even_when_rounds_are_slow(store):
    put(store, *(SendText(chat, "x") for chat in range(101, 121)))
    sent_at: list[float] = []

    async def deliver(delivery: Delivery) -> Sent:
        sent_at.append(asyncio.get_running_loop().time())
        if len(sent_at) == 3:
            time.sleep(0.15)  # the event loop stalls: the next slots pass meanwhile
        return Sent(delivery.reply.user_id, len(sent_at))

    async def busy_database(fn, *args):  # the engine keeps the database thread busy
        await asyncio.sleep(0.2)
        return fn(*args)

    limits = Limits(total=Limit(40), private=Limit(1000, 10))
    sender = Sender(Outbox(store), deliver, lambda lane: int(lane[5:]),
                    limiter=RateLimiter(limits), run_db=busy_database, poll_s=0.05)
    task = asyncio.create_task(sender.run())
    async with asyncio.timeout(10):
        while len(sent_at) < 20:
            await asyncio.sleep(0.01)
    await sender.stop()
    await task
    # Never faster than the overall limit: a quarter of a second holds at most 10 + 1
    # (a timer firing late can bring two slots closer; the average still holds).
    busiest = max(sum(1 for t in sent_at if start <= t < start + 0.25) for start in sent_at)
    assert busiest <= 11, "never faster than the overall limit"
    # One message per 0.2 s round would take 4 s.
    assert sent_at[-1] - sent_at[0] < 3.0


async def test_stopping_records_what_was_sent_before_leaving(store):
    put(store, SendText(7, "1"), SendText(8, "2"))
    sender = Sender(Outbox(store), Telegram(), lambda lane: 7, poll_s=0.05)
    task = asyncio.create_task(sender.run())
    while sender.stats.sent < 2:
        await asyncio.sleep(0.001)
    await sender.stop()
    await task
    assert [r.status for r in rows(store)] == ["sent", "sent"]


def test_link_buttons_and_pictures_survive_the_outbox(store):
    reply = SendText(5, "Сайт сообщества", (Button("Сайт", "", url="https://montelibero.org"),
                                             Button("« Главное меню", "menu")),
                     image="https://montelibero.org/logo.png")
    with store.transaction() as repo:
        [row_id] = enqueue(repo, [reply])
    with store.transaction() as repo:
        assert reply_of(repo.session.get(OutboxMessage, row_id)) == reply


def test_the_ticket_of_a_users_message_and_an_opening_post_survive_the_outbox(store):
    replies = [SendText(5, "💬 Ольга: ответ", ticket_id=12),
               CopyToUser(5, Attachment("photo", -100, 9), "подпись", ticket_id=12),
               NotifyAgents(12, "📄 вопрос целиком", opening=True)]
    with store.transaction() as repo:
        ids = enqueue(repo, replies)
    with store.transaction() as repo:
        assert [reply_of(repo.session.get(OutboxMessage, i)) for i in ids] == replies


def test_a_deleted_topic_gets_the_card_and_the_questions_parts_again(store):
    with store.transaction() as repo:
        ids = enqueue(repo, [NotifyAgents(12, "card", opening=True),
                             NotifyAgents(12, "part 1/2", opening=True),
                             NotifyAgents(12, "part 2/2", opening=True),
                             NotifyAgents(12, "the user's next message"),
                             NotifyAgents(13, "another ticket's card", opening=True)])
    outbox = Outbox(store)
    assert outbox.opening_texts(12, before=ids[4]) == ["card", "part 1/2", "part 2/2"]
    # The topic went away between the card and its second part: only what came before.
    assert outbox.opening_texts(12, before=ids[2]) == ["card", "part 1/2"]


def test_a_card_stored_before_opening_posts_were_marked_is_still_posted_again(store):
    with store.transaction() as repo:
        ids = enqueue(repo, [NotifyAgents(12, "old card"), NotifyAgents(12, "a message")])
    assert Outbox(store).opening_texts(12, before=ids[1] + 1) == ["old card"]


def test_card_buttons_and_posts_to_the_agents_chat_survive_the_outbox(store):
    card = NotifyAgents(12, "🆕 <b>Заявка №12</b>", (Button("✋ Взять", "take|12"),
                                                   Button("✅ Решено", "resolve|12")))
    queue = AgentsText("<b>Очередь</b> (сначала старые):\n№12 · open · Анна · ждёт 5 мин")
    with store.transaction() as repo:
        ids = enqueue(repo, [card, queue])
    with store.transaction() as repo:
        rows_ = [repo.session.get(OutboxMessage, row_id) for row_id in ids]
        assert [reply_of(row) for row in rows_] == [card, queue]
        assert {row.lane for row in rows_} == {"agents"}, "one lane: the agents' chat, in order"
