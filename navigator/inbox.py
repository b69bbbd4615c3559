"""Durable intake: every update is stored before it is acknowledged, and handled once.

The receiving side of "no request lost" (navigator.outbox is the sending side):

* `Inbox.store` commits an update (its id and raw JSON) to the `inbox` table. The
  transport acknowledges an update only after that commit: long polling asks for the
  next offset, a webhook answers 200. A process killed at any moment has either not
  acknowledged the update (Telegram sends it again) or has it in the table.
* The engine calls `begin_handling` inside the transaction of the state change the
  update causes: it flips the row from `pending` to `handled`, or says the update was
  already handled (a redelivery after a crash between the commit and the acknowledgement,
  or a replay), and then nothing is decided again. So each update changes state once.
* On start the transport replays `pending()` rows (stored, not yet handled) first.
* Updates that are not for the engine are marked `skipped`; one the engine failed on,
  `failed` with the error, so a poisonous update is not replayed forever.

Telegram keeps an unacknowledged update for at most 24 hours, and after a week without
updates it may start numbering from a random value, so an id seen more than a day ago
is not a redelivery: the row is reused. Finished rows are pruned after `KEEP_DAYS`.

Nothing here imports Telegram: payloads are plain JSON dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from navigator.store import Repository, Store
from navigator.store.models import InboxUpdate, as_utc, utcnow

PENDING, HANDLED, SKIPPED, FAILED = "pending", "handled", "skipped", "failed"
# The key of a stored payload that lists what the secret guard took out of it
# (navigator.secret_guard), so a replayed update still warns and deletes: Telegram's own
# fields never use it, and users cannot add keys to an update.
REDACTED = "navigator_redacted"
REDELIVERY_WINDOW = timedelta(hours=24)  # how long Telegram retries an unacknowledged update
KEEP_DAYS = 7


@dataclass(frozen=True)
class Stored:
    """An update waiting in the inbox."""

    update_id: int
    payload: dict[str, Any]


class Inbox:
    """The `inbox` table."""

    def __init__(self, store: Store):
        self.store = store

    def store_update(self, update_id: int, payload: dict[str, Any],
                     now: datetime | None = None) -> bool:
        """Commit an arriving update; False if it is a redelivery of one already stored
        (then it must not be processed again: it is handled, or waiting to be)."""
        try:
            return bool(self.store_batch([Stored(update_id, payload)], now))
        except IntegrityError:  # another process stored it a moment ago
            return False

    def store_batch(self, updates: list[Stored], now: datetime | None = None) -> list[int]:
        """Commit a batch of arriving updates in one transaction; returns the ids that
        are new (the others are redeliveries of stored ones)."""
        now = now or utcnow()
        if not updates:
            return []
        with self.store.transaction() as repo:
            known = {row.update_id: row for row in repo.session.scalars(select(InboxUpdate).where(
                InboxUpdate.update_id.in_([u.update_id for u in updates])))}
            fresh = []
            for stored in updates:
                row = known.get(stored.update_id)
                if row is None:
                    row = InboxUpdate(update_id=stored.update_id, payload=stored.payload,
                                      status=PENDING, received_at=now,
                                      user_id=private_sender(stored.payload))
                    repo.session.add(row)
                    known[stored.update_id] = row
                elif as_utc(row.received_at) > now - REDELIVERY_WINDOW:
                    continue
                else:  # an old id Telegram reused: a new update, not a redelivery
                    row.payload, row.status, row.error = stored.payload, PENDING, None
                    row.user_id = private_sender(stored.payload)
                    row.received_at, row.handled_at = now, None
                fresh.append(stored.update_id)
            return fresh

    def pending(self) -> list[Stored]:
        """Stored and not yet handled, in arrival order (replayed on start)."""
        with self.store.transaction() as repo:
            rows = repo.session.scalars(select(InboxUpdate).where(
                InboxUpdate.status == PENDING).order_by(InboxUpdate.seq)).all()
            return [Stored(row.update_id, row.payload) for row in rows]

    def finish(self, update_id: int, status: str, error: str | None = None) -> None:
        """Mark an update the engine did not handle: `skipped` or `failed`."""
        with self.store.transaction() as repo:
            repo.session.execute(
                update(InboxUpdate)
                .where(InboxUpdate.update_id == update_id, InboxUpdate.status == PENDING)
                .values(status=status, error=(error or None) and error[:2000],
                        handled_at=utcnow()))

    def prune(self, now: datetime | None = None) -> int:
        """Forget finished updates older than KEEP_DAYS; returns how many."""
        cutoff = (now or utcnow()) - timedelta(days=KEEP_DAYS)
        with self.store.transaction() as repo:
            result = repo.session.execute(delete(InboxUpdate).where(
                InboxUpdate.status != PENDING, InboxUpdate.received_at < cutoff))
            return int(result.rowcount or 0)

    def counts(self) -> dict[str, int]:
        with self.store.transaction() as repo:
            rows = repo.session.execute(select(InboxUpdate.status, func.count())
                                        .group_by(InboxUpdate.status)).all()
            return {status: count for status, count in rows}


def private_sender(payload: dict[str, Any]) -> int | None:
    """The user who sent an update in a private chat with the bot (a message, an edit, a
    button press), from its raw JSON; None for anything else (groups, channels)."""
    for key in ("message", "edited_message", "callback_query"):
        part = payload.get(key)
        if not isinstance(part, dict):
            continue
        message = part.get("message") if key == "callback_query" else part
        chat = message.get("chat") if isinstance(message, dict) else None
        sender = part.get("from") if isinstance(part.get("from"), dict) else {}
        if isinstance(chat, dict) and chat.get("type") == "private" and \
                isinstance(sender.get("id"), int):
            return sender["id"]
        return None
    return None


def mark_about(repo: Repository, update_id: int, user_id: int) -> None:
    """In the engine's transaction: the update is about this user (an agent's answer in
    their ticket), so erasing the user's data erases it too."""
    repo.session.execute(update(InboxUpdate).where(InboxUpdate.update_id == update_id)
                         .values(user_id=user_id))


def begin_handling(repo: Repository, update_id: int) -> bool:
    """In the engine's transaction: True if this update is handled now for the first
    time (its row becomes `handled` when the transaction commits), False if it was
    handled already. An update that was never stored is handled (nothing to dedupe)."""
    result = repo.session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.update_id == update_id, InboxUpdate.status == PENDING)
        .values(status=HANDLED, handled_at=utcnow()))
    if result.rowcount:
        return True
    return repo.session.scalar(select(InboxUpdate.status).where(
        InboxUpdate.update_id == update_id)) is None
