"""Durable delivery of the engine's replies: no reply is lost, none is sent twice on purpose.

How it works:

* `enqueue` writes every reply to the `outbox` table inside the engine's transaction, so
  a reply exists exactly when the state change that caused it was committed. A message
  that shows the same thing again (a collapse key: a menu, a flow step) cancels an
  unsent copy written right before it in the same chat (status `cancelled`).
* A `Sender` (one per bot process) takes the oldest undelivered row of each *lane* (one
  lane per chat: `user:<id>`, or `agents` for the agents' chat), waits for the
  `RateLimiter`, marks the row `sending` (a lease, committed) and hands it to the
  transport's `deliver` function. Lanes are independent; inside a lane rows go strictly
  in order, one at a time.
* Live replies go first: a broadcast's rows (a survey) are claimed only after every
  live row due (the `priority` column), so they use what live replies leave.
* The outcome is recorded: `sent` with the Telegram chat, topic and message id;
  `failed` for permanent refusals (the user blocked the bot, the chat is gone) that no
  retry can fix; otherwise back to `pending` with a due time (`retry_after` of a 429,
  exponential backoff for network errors and 5xx). Rows are never deleted. Outcomes
  are recorded in batches, in the same transaction that claims the next rows; a lane
  is not served again before its outcome is committed.

Delivery guarantee: at least once, and exactly once except in one window. Between the
HTTP request reaching Telegram and the `sent` commit (milliseconds, plus up to the
sender's `record_after_s`, 20 ms, while outcomes gather into one transaction; at most
the request timeout) a crash leaves the row `sending` without knowing whether Telegram
accepted it. The Bot API has no idempotency key and no way to list a chat's messages, so
the row is sent again after a restart and flagged `uncertain` (counted, so duplicates
are measurable). A graceful stop waits for in-flight requests first, so it never opens
the window.

Nothing here imports Telegram: the transport passes `deliver`, which raises `RetryAfter`,
`Transient` or `Refused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import Float, and_, bindparam, case, func, literal, or_, select, update

from navigator.events import (
    AgentsReport,
    AgentsText,
    Attachment,
    Button,
    CopyToUser,
    DeleteMessage,
    NotifyAgents,
    Reply,
    SendText,
)
from navigator.store import Repository, Store
from navigator.store.models import OutboxMessage, Ticket, as_utc, utcnow
from navigator.telegram_html import TOPIC_NAME_LIMIT, excerpt

log = logging.getLogger(__name__)

AGENTS_LANE = "agents"
# Rows go out live replies first: of the heads due, the sender takes a broadcast's (a
# survey's questions) only when no live reply is waiting for the room, so a broadcast
# to thousands never holds up an answer by more than the slots already reserved.
LIVE, BROADCAST = 0, 1
LEASE_S = 60.0  # a claimed row is another process's for this long (> any request timeout)
MAX_BACKOFF_S = 300.0
T = TypeVar("T")


def lane_of(reply: Reply) -> str:
    """The lane (chat) a reply is delivered in; order is kept within a lane."""
    if isinstance(reply, SendText | CopyToUser):
        return f"user:{reply.user_id}"
    if isinstance(reply, DeleteMessage) and reply.user_id is not None:
        return f"user:{reply.user_id}"
    return AGENTS_LANE


# Writing -------------------------------------------------------------------------------


def enqueue(repo: Repository, replies: Iterable[Reply], now: float | None = None) -> list[int]:
    """Add replies to the outbox in the caller's transaction; returns their row ids.

    A message with a collapse key right after one with the same key in its chat (back
    to back: nothing else between them) shows the same thing again: the older copy, if
    not sent yet, is cancelled and the new one takes its turn; if it was sent less than
    `COLLAPSE_HOLD_S` ago, the new one waits until then, so newer copies can replace it
    meanwhile. `now`: unix time (default: the clock)."""
    now = time.time() if now is None else now
    rows: list[OutboxMessage] = []
    latest: dict[str, OutboxMessage | None] = {}  # per lane, the newest row so far
    for reply in replies:
        if isinstance(reply, SendText):
            row = OutboxMessage(kind="send_text", user_id=reply.user_id,
                                ticket_id=reply.ticket_id, payload={
                "text": reply.text, "image": reply.image,
                "buttons": [[b.label, b.data, b.url] for b in reply.buttons]},
                priority=BROADCAST if reply.broadcast else LIVE)
        elif isinstance(reply, NotifyAgents):
            row = OutboxMessage(kind="notify_agents", ticket_id=reply.ticket_id,
                                payload={"text": reply.text,
                                         "buttons": [[b.label, b.data, b.url]
                                                     for b in reply.buttons],
                                         "opening": reply.opening})
        elif isinstance(reply, AgentsText):
            row = OutboxMessage(kind="agents_text", payload={"text": reply.text})
        elif isinstance(reply, CopyToUser):
            source = reply.attachment
            row = OutboxMessage(kind="copy_to_user", user_id=reply.user_id,
                                ticket_id=reply.ticket_id, payload={
                "kind": source.kind, "from_chat_id": source.chat_id,
                "message_id": source.message_id, "file_name": source.file_name,
                "caption": reply.caption})
        elif isinstance(reply, AgentsReport):
            row = OutboxMessage(kind="agents_report", payload={
                "first": reply.first.isoformat(), "last": reply.last.isoformat(),
                "zone": reply.zone, "caption": reply.caption, "language": reply.language})
        elif isinstance(reply, DeleteMessage):
            row = OutboxMessage(kind="delete_message", user_id=reply.user_id,
                                payload={"message_id": reply.message_id})
        else:
            raise TypeError(f"cannot deliver {reply!r}")
        row.lane, row.status, row.attempts, row.due_at = lane_of(reply), "pending", 0, 0.0
        row.uncertain = False
        if isinstance(reply, SendText) and reply.collapse:
            if row.lane not in latest:
                latest[row.lane] = _newest_in_lane(repo, row.lane)
            row.collapse_key = reply.collapse[:64]
            row.due_at = _collapse(latest[row.lane], row.collapse_key, now)
        latest[row.lane] = row
        rows.append(row)
    repo.session.add_all(rows)
    repo.session.flush()
    return [row.id for row in rows]


COLLAPSE_HOLD_S = 5.0  # the same screen, back to back, goes out at most this often
CANCELLED = "cancelled"


def _newest_in_lane(repo: Repository, lane: str) -> OutboxMessage | None:
    return repo.session.scalars(select(OutboxMessage).where(OutboxMessage.lane == lane)
                                .order_by(OutboxMessage.id.desc()).limit(1)).first()


def _collapse(previous: OutboxMessage | None, key: str, now: float) -> float:
    """When a message with collapse key `key` may go, given the row before it in its
    chat; an unsent previous copy is cancelled (superseded)."""
    if previous is None or previous.collapse_key != key:
        return 0.0
    if previous.status == "pending":
        previous.status, previous.last_error = CANCELLED, "superseded by a newer copy"
        return previous.due_at
    if previous.status in ("sending", "sent"):
        sent = as_utc(previous.sent_at).timestamp() if previous.sent_at else now
        if now - sent < COLLAPSE_HOLD_S:
            return sent + COLLAPSE_HOLD_S
    return 0.0


def reply_of(row: OutboxMessage) -> Reply:
    """The reply a row holds, as the engine decided it."""
    payload = row.payload
    if row.kind == "send_text":
        # Rows written before link buttons existed hold [label, data] pairs.
        buttons = tuple(Button(*fields) for fields in payload.get("buttons", []))
        return SendText(int(row.user_id or 0), payload["text"], buttons, payload.get("image"),
                        row.ticket_id, row.collapse_key, row.priority == BROADCAST)
    if row.kind == "agents_text":
        return AgentsText(payload["text"])
    if row.kind == "agents_report":
        return AgentsReport(date.fromisoformat(payload["first"]),
                            date.fromisoformat(payload["last"]), payload["zone"],
                            payload["caption"], payload["language"])
    if row.kind == "delete_message":
        return DeleteMessage(payload["message_id"], row.user_id)
    if row.kind == "copy_to_user":
        return CopyToUser(int(row.user_id or 0), Attachment(
            payload["kind"], payload["from_chat_id"], payload["message_id"],
            payload.get("file_name")), payload["caption"], row.ticket_id)
    return NotifyAgents(int(row.ticket_id or 0), payload["text"],
                        tuple(Button(*fields) for fields in payload.get("buttons", [])),
                        bool(payload.get("opening")))


# Reading and recording (synchronous; the sender runs these off the event loop) ---------


@dataclass(frozen=True)
class Delivery:
    """One claimed row: what to send, and what is known about earlier attempts."""

    id: int
    lane: str
    reply: Reply
    attempts: int  # including this one
    uncertain: bool  # an earlier attempt may have reached Telegram


@dataclass(frozen=True)
class Sent:
    """What Telegram answered for a delivered row."""

    chat_id: int
    message_id: int
    thread_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    """How one delivery ended, to be recorded: `sent` (with what Telegram answered),
    `pending` again from `due_at` (a retry), or `failed` for good. A ticket's first
    message in the agents' chat (`ticket_id`) is remembered as its card."""

    row_id: int
    status: str  # "sent", "pending" or "failed"
    sent: Sent | None = None
    due_at: float = 0.0
    error: str | None = None
    ticket_id: int | None = None


# The sender's statements, built once (Core, not ORM): it runs them for every reply, and
# building and compiling an ORM statement cost more than SQLite took to run it.
_OUTBOX = OutboxMessage.__table__
_NOW = bindparam("now", type_=Float)
_DUE = or_(and_(_OUTBOX.c.status == "pending", _OUTBOX.c.due_at <= _NOW),
           and_(_OUTBOX.c.status == "sending", _OUTBOX.c.lease_until < _NOW))
_HEAD_IDS = (select(func.min(_OUTBOX.c.id).label("id"))
             .where(_OUTBOX.c.status.in_(("pending", "sending")))
             .group_by(_OUTBOX.c.lane).subquery())
_DUE_HEADS = (select(_OUTBOX.c.id, _OUTBOX.c.lane)
              .join(_HEAD_IDS, _HEAD_IDS.c.id == _OUTBOX.c.id)
              .where(_DUE, _OUTBOX.c.priority == bindparam("priority"))
              .order_by(_OUTBOX.c.id).limit(bindparam("limit")))
_HEAD_TIMES = (select(_OUTBOX.c.status, _OUTBOX.c.due_at, _OUTBOX.c.lease_until)
               .join(_HEAD_IDS, _HEAD_IDS.c.id == _OUTBOX.c.id))
# Rows still due become ours; a row whose earlier claim expired (status still `sending`:
# SET reads the old values) is flagged uncertain.
_TAKEN_BACK = _OUTBOX.c.status == "sending"
_CLAIM = (
    update(_OUTBOX).where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)), _DUE)
    .values(status="sending", claimed_by=bindparam("owner"), lease_until=bindparam("lease"),
            attempts=_OUTBOX.c.attempts + 1,
            uncertain=case((_TAKEN_BACK, True), else_=_OUTBOX.c.uncertain),
            last_error=case((_TAKEN_BACK, literal("an earlier attempt was never acknowledged")),
                            else_=_OUTBOX.c.last_error))
    .returning(_OUTBOX.c.id, _OUTBOX.c.lane, _OUTBOX.c.kind, _OUTBOX.c.user_id,
               _OUTBOX.c.ticket_id, _OUTBOX.c.payload, _OUTBOX.c.attempts,
               _OUTBOX.c.uncertain, _OUTBOX.c.collapse_key, _OUTBOX.c.priority))
_SENT = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row"))
         .values(status="sent", claimed_by=None, lease_until=None, chat_id=bindparam("chat"),
                 message_id=bindparam("message"), thread_id=bindparam("thread"),
                 sent_at=bindparam("at")))


@dataclass(frozen=True)
class TicketThread:
    """Where a ticket lives in the agents' chat, as far as the sender knows."""

    ticket_id: int
    chat_id: int | None
    thread_id: int | None
    card_message_id: int | None
    title: str  # a topic name: "№12 · Анна"
    card_row_id: int | None  # the outbox row holding the ticket's card


class Outbox:
    """The outbox table: what is due, claiming rows, recording outcomes."""

    def __init__(self, store: Store, owner: str | None = None):
        self.store = store
        # Who claims rows: host and pid, so a restarted process can tell its dead
        # predecessor's claims from a live neighbour's.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

    def heads(self, now: float, limit: int = 200,
              broadcast: int | None = None) -> list[tuple[int, str]]:
        """(id, lane) of the oldest unfinished row of each lane, if it is due now: the
        live rows (up to `limit`) before the broadcast ones (up to `broadcast`, by
        default `limit`)."""
        with self.store.transaction() as repo:
            return self._heads(repo, now, limit, broadcast)

    def _heads(self, repo: Repository, now: float, limit: int,
               broadcast: int | None = None) -> list[tuple[int, str]]:
        rows = repo.session.execute(_DUE_HEADS, {"now": now, "limit": limit,
                                                 "priority": LIVE}).all()
        broadcast = limit if broadcast is None else broadcast
        if broadcast > 0:
            rows += repo.session.execute(_DUE_HEADS, {"now": now, "limit": broadcast,
                                                      "priority": BROADCAST}).all()
        return [(row.id, row.lane) for row in rows]

    def claim_due(self, now: float, limit: int,
                  choose: Callable[[list[tuple[int, str]]], list[int]],
                  lease_s: float = LEASE_S) -> list[Delivery]:
        """`heads` then `claim` in one transaction: `choose` picks which heads to take
        (it runs inside the transaction, on the caller's thread)."""
        return self.record_and_claim([], now, limit, choose, lease_s)[0]

    def record_and_claim(self, outcomes: Iterable[Outcome], now: float, limit: int,
                         choose: Callable[[list[tuple[int, str]]], list[int]],
                         lease_s: float = LEASE_S, broadcast: int | None = None
                         ) -> tuple[list[Delivery], float | None]:
        """The sender's one transaction per round: record how deliveries ended, then
        claim what `choose` picks of the heads due now (a chat whose row was just
        recorded `sent` offers its next row). Returns the claimed rows and, when none
        were, `next_due`. At most `broadcast` broadcast rows are offered (see `heads`)."""
        with self.store.transaction() as repo:
            self._record(repo, list(outcomes))
            heads = self._heads(repo, now, limit, broadcast)
            claimed = self._claim(repo, choose(heads), now, lease_s)
            return claimed, None if claimed else self._next_due(repo)

    def next_due(self) -> float | None:
        """The earliest time a head row becomes due (None: nothing is waiting)."""
        with self.store.transaction() as repo:
            return self._next_due(repo)

    def _next_due(self, repo: Repository) -> float | None:
        rows = repo.session.execute(_HEAD_TIMES).all()
        times = [row.due_at if row.status == "pending" else (row.lease_until or 0.0)
                 for row in rows]
        return min(times, default=None)

    def claim(self, ids: Iterable[int], now: float, lease_s: float = LEASE_S) -> list[Delivery]:
        """Mark rows `sending` for this process (if still due and unclaimed) and return
        them. A row taken back from an expired claim is flagged `uncertain`."""
        with self.store.transaction() as repo:
            return self._claim(repo, list(ids), now, lease_s)

    def _claim(self, repo: Repository, ids: list[int], now: float,
               lease_s: float) -> list[Delivery]:
        if not ids:
            return []
        rows = repo.session.execute(_CLAIM, {"ids": ids, "now": now, "owner": self.owner,
                                             "lease": now + lease_s}).all()
        return [Delivery(row.id, row.lane, reply_of(row), row.attempts, row.uncertain)
                for row in sorted(rows, key=lambda row: row.id)]

    def record(self, outcomes: Iterable[Outcome]) -> None:
        """Record how deliveries ended, all in one transaction."""
        with self.store.transaction() as repo:
            self._record(repo, list(outcomes))

    def _record(self, repo: Repository, outcomes: list[Outcome]) -> None:
        sent = [(o, o.sent) for o in outcomes if o.status == "sent" and o.sent is not None]
        if sent:  # one statement for the whole batch (executemany): the common case
            repo.session.execute(_SENT, [
                {"row": o.row_id, "chat": answer.chat_id, "message": answer.message_id,
                 "thread": answer.thread_id, "at": utcnow()} for o, answer in sent])
        for outcome, answer in sent:
            if outcome.ticket_id is not None:
                # The first message of a ticket in the agents' chat is its card.
                repo.session.execute(
                    update(Ticket).where(Ticket.id == outcome.ticket_id,
                                         Ticket.agents_card_message_id.is_(None))
                    .values(agents_chat_id=answer.chat_id,
                            agents_card_message_id=answer.message_id)
                    .execution_options(synchronize_session=False))
        for outcome in outcomes:
            if outcome.status in ("pending", "failed"):
                values: dict[str, Any] = {"status": outcome.status, "claimed_by": None,
                                          "lease_until": None,
                                          "last_error": (outcome.error or "")[:1000]}
                if outcome.status == "pending":
                    values["due_at"] = outcome.due_at
                repo.session.execute(update(OutboxMessage)
                                     .where(OutboxMessage.id == outcome.row_id).values(values))

    def sent(self, row_id: int, sent: Sent) -> None:
        with self.store.transaction() as repo:
            row = repo.session.get(OutboxMessage, row_id)
            if row is not None:
                card = row.ticket_id if row.kind == "notify_agents" else None
                self._record(repo, [Outcome(row_id, "sent", sent, ticket_id=card)])

    def retry(self, row_id: int, due_at: float, error: str) -> None:
        """Back to pending, due again at `due_at` (unix time)."""
        self.record([Outcome(row_id, "pending", due_at=due_at, error=error)])

    def release(self, row_id: int, *, uncertain: bool) -> None:
        """Give a claimed row back (the process is stopping); due at once on restart."""
        values: dict[str, Any] = {"status": "pending", "claimed_by": None, "lease_until": None}
        if uncertain:
            values.update(uncertain=True, last_error="stopped while the request was in flight")
        self._set(row_id, **values)

    def failed(self, row_id: int, error: str) -> None:
        """A permanent refusal: kept for the record, never retried."""
        self.record([Outcome(row_id, "failed", error=error)])

    def mark_delivered(self, ids: Iterable[int]) -> None:
        """Rows another way delivered (the terminal chat prints replies directly)."""
        ids = list(ids)
        if ids:
            with self.store.transaction() as repo:
                repo.session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids))
                                     .values(status="sent", sent_at=utcnow()))

    def release_orphans(self) -> int:
        """Make rows claimed by dead processes on this host due now; returns how many.

        Their requests may have reached Telegram, so they are flagged `uncertain`. Claims
        of other hosts (or live processes) wait for their lease to expire instead.
        """
        host = socket.gethostname()
        released = 0
        with self.store.transaction() as repo:
            rows = repo.session.scalars(select(OutboxMessage).where(
                OutboxMessage.status == "sending")).all()
            for row in rows:
                claimant_host, _, rest = (row.claimed_by or "").partition(":")
                pid = rest.partition(":")[0]
                if claimant_host == host and pid.isdigit() and not _alive(int(pid)):
                    row.status, row.claimed_by, row.lease_until = "pending", None, None
                    row.uncertain, row.due_at = True, 0.0
                    row.last_error = "the sending process stopped before an answer came"
                    released += 1
        return released

    def counts(self) -> dict[str, int]:
        """How many rows are in each status."""
        with self.store.transaction() as repo:
            rows = repo.session.execute(select(OutboxMessage.status, func.count())
                                        .group_by(OutboxMessage.status)).all()
            return {status: count for status, count in rows}

    # The ticket <-> agents' chat mapping --------------------------------------------------

    def ticket_thread(self, ticket_id: int) -> TicketThread | None:
        with self.store.transaction() as repo:
            ticket = repo.session.get(Ticket, ticket_id)
            if ticket is None:
                return None
            card_row = repo.session.scalar(
                select(func.min(OutboxMessage.id)).where(
                    OutboxMessage.ticket_id == ticket_id,
                    OutboxMessage.kind == "notify_agents"))
            name = (ticket.context.get("user") or {}).get("name") or str(ticket.user_id)
            return TicketThread(ticket.id, ticket.agents_chat_id, ticket.agents_thread_id,
                                ticket.agents_card_message_id,
                                excerpt(f"№{ticket.id} · {name}", TOPIC_NAME_LIMIT), card_row)

    def opening_texts(self, ticket_id: int, before: int) -> list[str]:
        """What opened the ticket in the agents' chat, posted again when its topic was
        deleted: its card, and the parts of a long question that follow it (rows older
        than the row `before`, which is being delivered)."""
        with self.store.transaction() as repo:
            rows = repo.session.execute(
                select(OutboxMessage.payload).where(OutboxMessage.ticket_id == ticket_id,
                                                    OutboxMessage.kind == "notify_agents",
                                                    OutboxMessage.id < before)
                .order_by(OutboxMessage.id)).scalars()
            texts = []
            for payload in rows:  # the card, then the parts marked `opening` after it
                if texts and not payload.get("opening"):
                    break
                texts.append(payload["text"])
            return texts

    def set_ticket_topic(self, ticket_id: int, chat_id: int, thread_id: int | None) -> None:
        """Remember the ticket's forum topic (None: it was deleted; the card id goes too)."""
        with self.store.transaction() as repo:
            ticket = repo.session.get(Ticket, ticket_id)
            if ticket is not None:
                ticket.agents_chat_id, ticket.agents_thread_id = chat_id, thread_id
                if thread_id is None:
                    ticket.agents_card_message_id = None

    def _set(self, row_id: int, **values: Any) -> None:
        with self.store.transaction() as repo:
            repo.session.execute(update(OutboxMessage).where(OutboxMessage.id == row_id)
                                 .values(**values))


def ticket_for_agents_message(repo: Repository, chat_id: int, thread_id: int | None,
                              reply_to_message_id: int | None) -> int | None:
    """The ticket an agent's message in the agents' chat belongs to, or None.

    A message in a ticket's forum topic belongs to it; so does a reply to any message the
    bot posted for a ticket (its card, or a user's message relayed to the agents).
    """
    if reply_to_message_id is not None:
        ticket_id = repo.session.scalar(
            select(OutboxMessage.ticket_id).where(
                OutboxMessage.chat_id == chat_id, OutboxMessage.message_id == reply_to_message_id,
                OutboxMessage.ticket_id.is_not(None)).limit(1))
        if ticket_id is not None:
            return ticket_id
    if thread_id is not None:
        return repo.session.scalar(
            select(Ticket.id).where(Ticket.agents_chat_id == chat_id,
                                    Ticket.agents_thread_id == thread_id)
            .order_by(Ticket.id.desc()).limit(1))
    return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Rate limits ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """At most `burst` messages at once, then one every 1/`rate` seconds."""

    rate: float  # messages per second, sustained
    burst: int = 1


@dataclass(frozen=True)
class Limits:
    """Telegram's limits: about 30 messages/s in total, 1/s in a private chat (short
    bursts allowed), 20/min in a group. `margin` spaces messages a little wider so
    network jitter never makes Telegram see them closer than the limit."""

    total: Limit = Limit(30.0)
    private: Limit = Limit(1.0, burst=3)
    group: Limit = Limit(20 / 60)
    margin: float = 1.05


class RateLimiter:
    """Per-chat and overall limits (GCRA: a token bucket kept as one timestamp each).

    Pure bookkeeping on a given clock: `ready_at` says when a message to a chat may go,
    `take` records one that goes now, `pause` honours a 429's retry_after.
    """

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()
        self._tat: dict[int | None, float] = {}  # chat id (None: all) -> theoretical time
        self._paused: dict[int | None, float] = {}
        self._lock = threading.Lock()  # the sender uses it from the loop and the db thread

    def _limit(self, chat_id: int | None) -> Limit:
        if chat_id is None:
            return self.limits.total
        return self.limits.private if chat_id > 0 else self.limits.group

    def _bucket_ready(self, key: int | None) -> float:
        limit = self._limit(key)
        interval = self.limits.margin / limit.rate
        return self._tat.get(key, 0.0) - (limit.burst - 1) * interval

    def ready_at(self, chat_id: int, now: float) -> float:
        """The earliest time (>= now) a message to `chat_id` may be sent."""
        with self._lock:
            return self._ready_at(chat_id, now)

    def _ready_at(self, chat_id: int, now: float) -> float:
        return max(now, self._bucket_ready(None), self._bucket_ready(chat_id),
                   self._paused.get(None, 0.0), self._paused.get(chat_id, 0.0))

    def take(self, chat_id: int, now: float) -> None:
        """Count a message to `chat_id` sent at `now` (call when ready_at(...) <= now)."""
        with self._lock:
            self._take(chat_id, now)

    def _take(self, chat_id: int, now: float) -> None:
        for key in (None, chat_id):
            interval = self.limits.margin / self._limit(key).rate
            self._tat[key] = max(self._tat.get(key, 0.0), now) + interval
        if len(self._tat) > 10_000:  # forget chats whose buckets are full again
            self._tat = {k: v for k, v in self._tat.items() if k is None or v > now}

    def try_take(self, chat_id: int, now: float) -> float | None:
        """Take room for a message now if there is some (None); else say when there is."""
        with self._lock:
            ready = self._ready_at(chat_id, now)
            if ready > now:
                return ready
            self._take(chat_id, now)
            return None

    def reserve(self, chat_id: int, now: float, within: float = math.inf
                ) -> tuple[float, bool]:
        """The earliest time a message to `chat_id` may go, and whether its room was
        taken: it is when that time is no later than `now + within`. Several messages
        can so be scheduled at once, each in its own slot."""
        with self._lock:
            return self._reserve(chat_id, now, within)

    def _reserve(self, chat_id: int, now: float, within: float) -> tuple[float, bool]:
        ready = self._ready_at(chat_id, now)
        if ready > now + within:
            return ready, False
        self._take(chat_id, ready)
        return ready, True

    def plan(self, chat_ids: Sequence[int], now: float, within: float
             ) -> list[tuple[float, bool]]:
        """What `reserve` would say for messages to `chat_ids`, one after another in this
        order, without taking any room."""
        with self._lock:
            kept = self._tat
            self._tat = {key: kept[key] for key in {None, *chat_ids} if key in kept}
            try:
                return [self._reserve(chat_id, now, within) for chat_id in chat_ids]
            finally:
                self._tat = kept

    def pause(self, chat_id: int | None, until: float) -> None:
        """Send nothing to `chat_id` (None: to anyone) before `until`."""
        with self._lock:
            self._paused[chat_id] = max(self._paused.get(chat_id, 0.0), until)


# Sending -------------------------------------------------------------------------------


class RetryAfter(Exception):
    """Telegram said 429: wait `seconds`, then send again."""

    def __init__(self, seconds: float, message: str = ""):
        super().__init__(message or f"flood control: retry after {seconds} s")
        self.seconds = seconds


class Transient(Exception):
    """A network error, a timeout, a 5xx, a chat that is unreachable for now: retry later.
    `wait` overrides the backoff (e.g. a misconfigured agents' chat is retried slowly)."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class Refused(Exception):
    """Telegram will never accept this message (blocked, chat gone, invalid): give up."""


Deliver = Callable[[Delivery], Awaitable[Sent]]
OnFailed = Callable[[Delivery, str], Awaitable[None]]
RunDb = Callable[..., Awaitable[Any]]


async def _run_inline(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


@dataclass
class SenderStats:
    """What this process's sender did since it started (for logs and benchmarks)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    rate_limited: int = 0


class Sender:
    """Delivers the outbox: lanes in parallel, each lane in order, within the limits.

    `deliver` does the Telegram call; `chat_of(lane)` names the chat a lane goes to (the
    rate limits depend on it); `run_db(fn, *args)` runs a blocking database call (the
    bot passes its database thread); `on_failed(delivery, error)` hears of each delivery
    Telegram refused for good, before that is recorded (the bot tells the ticket's
    agents). `kick()` says new rows were committed.

    Each round is one transaction: record the deliveries that ended, claim what may go
    within `reserve_s` (each row then waits for its own slot within the rate limits).
    A delivery's end is recorded within `record_after_s` (with the next round, if new
    rows come first), so that under load one transaction records many of them; until
    then its chat's next row waits, and a crash would leave the row to be sent again,
    flagged `uncertain` (the window of the module docstring, that much longer). In the
    agents' chat it is recorded at once: agents reply to those messages by their id.

    A broadcast (a survey) has at most `broadcast_in_flight` rows in flight, claimed
    after every live row due: a live reply then waits behind no more than those few
    slots (ordering alone let a 500-user survey reserve the next seconds of the overall
    limit and delay an answer by 9 s in the end-to-end test).
    """

    def __init__(self, outbox: Outbox, deliver: Deliver, chat_of: Callable[[str], int | None],
                 *, limiter: RateLimiter | None = None, run_db: RunDb = _run_inline,
                 on_failed: OnFailed | None = None, max_in_flight: int = 64,
                 poll_s: float = 1.0, record_after_s: float = 0.02, reserve_s: float = 0.5,
                 clock: Callable[[], float] = time.time, broadcast_in_flight: int = 4):
        self.outbox = outbox
        self.deliver = deliver
        self.chat_of = chat_of
        self.limiter = limiter or RateLimiter()
        self.run_db = run_db
        self.on_failed = on_failed
        self.max_in_flight = max_in_flight
        self.poll_s = poll_s
        self.record_after_s = record_after_s
        self.reserve_s = reserve_s
        total = self.limiter.limits.total
        self._send_gap = self.limiter.limits.margin / total.rate if total.burst == 1 else 0.0
        self._next_send = 0.0
        self.clock = clock
        self.stats = SenderStats()
        self._wake = asyncio.Event()
        self._stopping = False
        self._busy: dict[str, asyncio.Task[None]] = {}  # lane -> its delivery in flight
        self.broadcast_in_flight = broadcast_in_flight
        self._broadcasting: set[str] = set()  # lanes whose delivery in flight is a broadcast
        # Deliveries that ended, with their lane, waiting to be recorded. The lane stays
        # busy until its outcome is committed, so its next row waits for it.
        self._ended: list[tuple[str, Outcome]] = []
        self._record_timer: asyncio.TimerHandle | None = None

    def kick(self) -> None:
        """New rows may be due: look now rather than at the next poll."""
        self._wake.set()

    async def throttle(self, chat_id: int) -> None:
        """Wait for, and take, one more message's room in `chat_id` (for extra calls a
        delivery makes, like creating a forum topic before posting in it)."""
        while (ready := self.limiter.try_take(chat_id, self.clock())) is not None:
            await asyncio.sleep(max(ready - self.clock(), 0.001))

    async def run(self) -> None:
        """Deliver until `stop()`; rows claimed by a dead predecessor are resumed first."""
        released = await self.run_db(self.outbox.release_orphans)
        if released:
            log.warning("resuming %d deliveries a stopped process left unacknowledged",
                        released)
        while not self._stopping:
            self._wake.clear()
            wait = await self._dispatch()
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.005))

    async def _dispatch(self) -> float:
        """Record the deliveries that ended and start those that may go now, in one
        transaction; returns how long to sleep before looking again."""
        now = self.clock()
        ended, self._ended = self._ended, []
        self._cancel_record_timer()
        settled = {lane for lane, _ in ended}
        busy = set(self._busy) - settled
        room = 0 if self._stopping else self.max_in_flight - len(busy)
        if room <= 0 and not ended:
            return self.poll_s
        limited: list[float] = []

        def choose(heads: list[tuple[int, str]]) -> list[int]:
            # Runs on the database thread, inside the claiming transaction (the limiter
            # has its own lock; `busy` is a copy). Rows whose turn within the limits
            # comes in the next `reserve_s` are all taken: with Telegram's overall limit
            # only one message per round could go otherwise, whatever was waiting.
            free = [(row_id, lane, self.chat_of(lane)) for row_id, lane in heads
                    if lane not in busy][:max(room, 0)]
            limited_chats = [chat_id for _, _, chat_id in free if chat_id is not None]
            turns = iter(self.limiter.plan(limited_chats, self.clock(), self.reserve_s))
            chosen = []
            for row_id, _lane, chat_id in free:
                at, soon = next(turns) if chat_id is not None else (now, True)
                if soon:
                    chosen.append(row_id)
                else:
                    limited.append(at)
            return chosen

        broadcast = self.broadcast_in_flight - len(self._broadcasting - settled)
        try:
            claimed, due = await self.run_db(self.outbox.record_and_claim,
                                             [outcome for _, outcome in ended], now,
                                             max(room, 0) + len(busy), choose, LEASE_S,
                                             max(broadcast, 0))
        except BaseException:
            self._ended[:0] = ended  # not recorded: their lanes stay busy until they are
            raise
        for lane in settled:
            self._busy.pop(lane, None)
            self._broadcasting.discard(lane)
        if self._stopping:  # stop() came while claiming: nothing was sent, give them back
            for delivery in claimed:
                await self.run_db(self.outbox.release, delivery.id, uncertain=False)
            return self.poll_s
        for delivery in claimed:
            # Each message's room is taken now, in order, on the clock it will be sent by.
            chat_id = self.chat_of(delivery.lane)
            at = self.limiter.reserve(chat_id, self.clock())[0] if chat_id is not None \
                else now
            self._busy[delivery.lane] = asyncio.create_task(self._deliver(delivery, at))
            if isinstance(delivery.reply, SendText) and delivery.reply.broadcast:
                self._broadcasting.add(delivery.lane)
        wake_at = min([now + self.poll_s, *limited])
        if due is not None and due > now:
            wake_at = min(wake_at, due)
        return wake_at - self.clock()

    async def _deliver(self, delivery: Delivery, at: float) -> None:
        requested = False
        try:
            if (wait := at - self.clock()) > 0:
                await asyncio.sleep(wait)  # its slot within the rate limits
            # Slots are kept on the clock of the moment they were taken; a task that wakes
            # late must not go out right beside the next one: the overall limit is also
            # kept between the moments messages actually leave.
            while (wait := self._next_send - self.clock()) > 0:
                await asyncio.sleep(wait)
            self._next_send = self.clock() + self._send_gap
            requested = True
            outcome = await self._attempt(delivery)
            if outcome.status == "failed" and self.on_failed is not None:
                await self._report_failure(delivery, outcome.error or "")
        except asyncio.CancelledError:
            # Stopped mid-request: Telegram may or may not have the message.
            await self.run_db(self.outbox.release, delivery.id, uncertain=requested)
            self._busy.pop(delivery.lane, None)
            self._broadcasting.discard(delivery.lane)
            raise
        self._ended.append((delivery.lane, outcome))
        if delivery.lane == AGENTS_LANE:
            # At once: an agent may reply to this message, and its id is how the reply
            # finds its ticket.
            self.kick()
        elif self._record_timer is None:
            self._record_timer = asyncio.get_running_loop().call_later(self.record_after_s,
                                                                      self.kick)

    async def _report_failure(self, delivery: Delivery, error: str) -> None:
        assert self.on_failed is not None
        try:
            await self.on_failed(delivery, error)
        except Exception:  # the failure itself is still recorded
            log.exception("could not report the failed delivery of row %d", delivery.id)

    def _cancel_record_timer(self) -> None:
        if self._record_timer is not None:
            self._record_timer.cancel()
            self._record_timer = None

    async def _attempt(self, delivery: Delivery) -> Outcome:
        """One delivery: what happened, to be recorded (CancelledError if stopped)."""
        chat_id = self.chat_of(delivery.lane)
        try:
            sent = await self.deliver(delivery)
        except RetryAfter as exc:
            self.stats.rate_limited += 1
            until = self.clock() + exc.seconds
            # A 429 may be about this chat or about the bot as a whole: honour both.
            self.limiter.pause(None, until)
            if chat_id is not None:
                self.limiter.pause(chat_id, until)
            log.warning("flood control on %s: retrying row %d in %.0f s", delivery.lane,
                        delivery.id, exc.seconds)
            return Outcome(delivery.id, "pending", due_at=until, error=str(exc))
        except Refused as exc:
            self.stats.failed += 1
            log.warning("Telegram refused row %d for %s for good: %s", delivery.id,
                        delivery.lane, exc)
            return Outcome(delivery.id, "failed", error=str(exc))
        except Exception as exc:
            self.stats.retried += 1
            wait = exc.wait if isinstance(exc, Transient) and exc.wait is not None \
                else _backoff(delivery.attempts)
            if not isinstance(exc, Transient):
                log.exception("delivering row %d failed unexpectedly; retrying", delivery.id)
            else:
                log.warning("delivering row %d to %s failed (%s); retry in %.1f s",
                            delivery.id, delivery.lane, exc, wait)
            return Outcome(delivery.id, "pending", due_at=self.clock() + wait,
                           error=f"{type(exc).__name__}: {exc}")
        self.stats.sent += 1
        card = delivery.reply.ticket_id if isinstance(delivery.reply, NotifyAgents) else None
        return Outcome(delivery.id, "sent", sent, ticket_id=card)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking rows; let requests in flight finish (up to `timeout` s) and record
        their outcome. Anything unfinished stays in the outbox for the next start."""
        self._stopping = True
        self.kick()
        tasks = list(self._busy.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._cancel_record_timer()
        while self._ended:
            ended, self._ended = self._ended, []
            try:
                await self.run_db(self.outbox.record, [outcome for _, outcome in ended])
            except BaseException:
                self._ended[:0] = ended
                raise
            for lane, _ in ended:
                self._busy.pop(lane, None)


def _backoff(attempts: int) -> float:
    """1, 2, 4 ... seconds, capped at 5 minutes, with jitter so retries do not align."""
    base = min(MAX_BACKOFF_S, 2.0 ** max(attempts - 1, 0))
    return base * random.uniform(0.8, 1.2)
