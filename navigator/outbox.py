"""Durable delivery of the engine's replies: no reply is lost, none is sent twice on purpose.

How it works:

* `enqueue` writes every reply to the `outbox` table inside the engine's transaction, so
  a reply exists exactly when the state change that caused it was committed. A message
  that shows the same thing again (a collapse key: a menu, a flow step) cancels an
  unsent copy written right before it in the same chat (status `cancelled`).
* The `Sender` (navigator.sender, one per bot process) takes the oldest undelivered row
  of each *lane* (one lane per chat: `user:<id>`, or `agents` for the agents' chat),
  waits for the `RateLimiter` (navigator.ratelimit), marks the row `sending` (a lease,
  committed) and hands it to the transport's `deliver` function. Lanes are independent;
  inside a lane rows go strictly in order, one at a time.
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

This module is the table: writing replies into it, claiming rows, recording outcomes.
Nothing here imports Telegram.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Float, and_, bindparam, case, func, literal, or_, select, update

from navigator.desk.threads import remember_card
from navigator.events import (
    AgentsDocument,
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
from navigator.store.models import OutboxMessage, as_utc, utcnow

AGENTS_LANE = "agents"
# Rows go out live replies first: of the heads due, the sender takes a broadcast's (a
# survey's questions) only when no live reply is waiting for the room, so a broadcast
# to thousands never holds up an answer by more than the slots already reserved.
LIVE, BROADCAST = 0, 1
LEASE_S = 60.0  # a claimed row is another process's for this long (> any request timeout)


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
        elif isinstance(reply, AgentsDocument):
            row = OutboxMessage(kind="agents_document", payload={
                "file_name": reply.file_name, "content": reply.content,
                "caption": reply.caption})
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
    if row.kind == "agents_document":
        return AgentsDocument(payload["file_name"], payload["content"], payload["caption"])
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
                remember_card(repo, outcome.ticket_id, answer.chat_id, answer.message_id)
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

    def last_id(self) -> int:
        """The newest row's id (0 if none)."""
        with self.store.transaction() as repo:
            return repo.session.scalar(select(func.max(OutboxMessage.id))) or 0

    def added_since(self, row_id: int) -> list[tuple[int, Reply]]:
        """The undelivered rows added after row `row_id`, in order, with their replies."""
        with self.store.transaction() as repo:
            rows = repo.session.scalars(
                select(OutboxMessage).where(OutboxMessage.id > row_id,
                                            OutboxMessage.status == "pending")
                .order_by(OutboxMessage.id))
            return [(row.id, reply_of(row)) for row in rows]

    def mark_delivered(self, ids: Iterable[int], chat_id: int | None = None) -> None:
        """Rows another way delivered (the terminal chat prints replies directly). With
        `chat_id`, each row is recorded as that chat's message numbered by the row's id,
        so a reply to it finds its ticket as in Telegram (navigator.desk.threads)."""
        ids = list(ids)
        if ids:
            values: dict[str, Any] = {"status": "sent", "sent_at": utcnow()}
            if chat_id is not None:
                values.update(chat_id=chat_id, message_id=OutboxMessage.id)
            with self.store.transaction() as repo:
                repo.session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids))
                                     .values(values))

    def newest_ticket_message(self, chat_id: int) -> int | None:
        """The newest message delivered to `chat_id` for a ticket (its id in the chat)."""
        with self.store.transaction() as repo:
            return repo.session.scalar(
                select(OutboxMessage.message_id).where(OutboxMessage.chat_id == chat_id,
                                                       OutboxMessage.status == "sent",
                                                       OutboxMessage.ticket_id.is_not(None))
                .order_by(OutboxMessage.id.desc()).limit(1))

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

    def _set(self, row_id: int, **values: Any) -> None:
        with self.store.transaction() as repo:
            repo.session.execute(update(OutboxMessage).where(OutboxMessage.id == row_id)
                                 .values(**values))


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
