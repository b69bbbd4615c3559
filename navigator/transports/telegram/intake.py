"""Updates in, durably: the inbox, long polling, the webhook's queue, replay on start.

Updates are durable before they are acknowledged (navigator.inbox). Long polling is our
own loop (`Intake.poll`): each getUpdates batch is committed to the inbox in one
transaction, and only then does the next getUpdates carry the offset that tells
Telegram to forget it. In webhook mode python-telegram-bot's update queue is a
`DurableUpdates`, whose `put` commits the update first; the library's webhook handler
awaits `put` before it answers 200 (tested). So a kill -9 at any moment loses no update.
The engine marks each update handled in the transaction of its state change, so an
update Telegram delivers again, or one replayed on start (`replay_stored_updates`),
changes nothing twice. Secrets are taken out of an update before it is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from telegram import Update
from telegram.error import Conflict, TelegramError
from telegram.error import RetryAfter as TelegramRetryAfter
from telegram.ext import ContextTypes

from navigator.desk.tickets import AGENTS_LANGUAGE
from navigator.handling import Navigator
from navigator.inbox import FAILED, REDACTED, SKIPPED, Inbox, Stored
from navigator.languages import language_for
from navigator.secret_guard import redact_json
from navigator.transports.telegram.delivery import retry_seconds
from navigator.transports.telegram.updates import agent_event_for, event_for

log = logging.getLogger(__name__)

# Only what the bot handles; channel posts, polls, member updates... never arrive.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
POLL_TIMEOUT_S = 10  # long polling: how long Telegram holds a getUpdates open
POLL_READ_MARGIN_S = 5  # beyond it, the answer is late (python-telegram-bot's default)
MAX_POLL_BACKOFF_S = 30.0


class DurableUpdates(asyncio.Queue):  # type: ignore[type-arg]
    """python-telegram-bot's update queue, made durable.

    `put(update)` commits the update to the inbox before queueing it, and drops an
    update that was stored before (Telegram delivering it again after a crash). The
    library awaits `put` before it acknowledges an update (polling: the next offset;
    webhook: the 200 answer), which is what makes acknowledging safe. Anything else
    the library puts (its stop signal) passes through.
    """

    def __init__(self, inbox: Inbox, run_db: Callable[..., Any],
                 guard: Callable[[Update], tuple[Update, dict[str, Any]]]):
        super().__init__()
        self.inbox = inbox
        self.run_db = run_db
        self.guard = guard

    async def put(self, item: Any) -> None:
        if isinstance(item, Update):
            item, payload = self.guard(item)  # no secret is stored, nor handled
            if not await self.run_db(self.inbox.store_update, item.update_id, payload):
                log.info("update %s came again; it was stored before", item.update_id)
                return
        await super().put(item)

    async def stored(self, update: Update) -> None:
        """Queue an update that is in the inbox already."""
        await super().put(update)



class Intake:
    """Receives updates and has the engine decide on each, on the store's writer thread.
    `bot()` is python-telegram-bot's Bot; `kick()` wakes the outbox's Sender."""

    def __init__(self, navigator: Navigator, bot: Callable[[], Any],
                 agents_chat_id: int | None, default_language: str,
                 kick: Callable[[], None]):
        self.navigator = navigator
        self.bot = bot
        self.agents_chat_id = agents_chat_id
        self.default_language = default_language
        self.kick = kick
        self.inbox = Inbox(navigator.store)
        self.writer = navigator.store.writer
        self.updates = DurableUpdates(self.inbox, self.run_db, self.guard)
        self.handled = 0  # updates the engine handled (for the benchmark's log line)

    async def run_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.writer.run(fn, *args)

    def redacted(self, payload: dict[str, Any]) -> dict[str, Any]:
        """An update's JSON with every secret key and recovery phrase taken out of its
        strings (the placeholders in the sender's language; Russian in the agents'
        chat) and marked with what was found (`REDACTED`), so the engine warns and
        deletes also when the update is replayed from the inbox; the same dict if there
        was none. Runs before the update is stored, queued or read, so nothing after it
        sees a secret. Any JSON goes: an update nobody can read is still stored."""
        cleaned, kinds = redact_json(payload, self.navigator.placeholders(
            self._language_of(payload)))
        if not kinds:
            return payload
        cleaned[REDACTED] = list(kinds)
        return cleaned

    def guard(self, update: Update) -> tuple[Update, dict[str, Any]]:
        """`redacted` for an update python-telegram-bot has read already (webhook mode):
        the update to handle and its JSON for the inbox."""
        payload = update.to_dict()
        cleaned = self.redacted(payload)
        if cleaned is payload:
            return update, payload
        return Update.de_json(cleaned, self.bot()), cleaned

    def _language_of(self, payload: dict[str, Any]) -> str:
        """The language of the update's sender, as the engine would choose it (any JSON:
        what is not where the Bot API puts it counts as absent)."""
        def part(value: Any, key: str) -> Any:
            return value.get(key) if isinstance(value, dict) else None

        body = next((part(payload, kind) for kind in ("message", "edited_message",
                                                       "callback_query")
                     if isinstance(part(payload, kind), dict)), None)
        chat = part(body, "chat") or part(part(body, "message"), "chat")
        if self.agents_chat_id is not None and part(chat, "id") == self.agents_chat_id:
            return AGENTS_LANGUAGE
        code = part(part(body, "from"), "language_code")
        return language_for(code if isinstance(code, str) else None,
                            self.default_language)

    async def on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """One update: the engine decides (its replies land in the outbox), the sender
        is woken. A pressed button is always answered, so its spinner stops."""
        try:
            event = event_for(update) or agent_event_for(update, self.agents_chat_id)
        except Exception as exc:  # a part the Bot API promises is missing: not retried
            log.exception("update %s cannot be read; skipped", update.update_id)
            await self.run_db(self.inbox.finish, update.update_id, FAILED,
                              f"{type(exc).__name__}: {exc}")
            return
        # Submitted before any await: updates reach the engine in the order they came.
        if event is not None:
            self.navigator.anticipate(event)  # a question is embedded while it waits
            decided = self.writer.submit(self.navigator.handle_recorded, event,
                                         update.update_id)
        else:
            decided = None
        if update.callback_query is not None:
            try:
                await update.callback_query.answer()
            except TelegramError as exc:
                log.info("could not answer a button press: %s", exc)
        if decided is None:
            log.debug("update %s is not for the engine; skipped", update.update_id)
            await self.run_db(self.inbox.finish, update.update_id, SKIPPED)
            return
        try:
            handled = await decided
        except Exception as exc:
            log.exception("the engine failed on update %s; skipped", update.update_id)
            await self.run_db(self.inbox.finish, update.update_id, FAILED,
                              f"{type(exc).__name__}: {exc}")
            return
        if handled.duplicate:
            log.info("update %s was handled before; not again", update.update_id)
            return
        self.handled += 1
        self.kick()

    async def replay_stored_updates(self) -> None:
        """Queue, in arrival order, the updates a previous process stored (and so
        acknowledged) but did not get to handle."""
        stored = await self.run_db(self.inbox.pending)
        if not stored:
            return
        log.warning("handling %d updates received before the last stop", len(stored))
        for row in stored:
            await self._queue_stored(row)

    async def _queue_stored(self, row: Stored) -> None:
        """Queue an update that is in the inbox. One python-telegram-bot cannot read (a
        Bot API newer or older than the library) is marked failed, on its own."""
        try:
            update = Update.de_json(row.payload, self.bot())
        except Exception as exc:
            log.error("stored update %s cannot be read; skipped: %s", row.update_id, exc)
            await self.run_db(self.inbox.finish, row.update_id, FAILED, str(exc))
            return
        await self.updates.stored(update)

    async def poll(self) -> None:
        """Long polling that acknowledges a batch only once it is in the inbox.

        Telegram forgets updates up to the offset a getUpdates carries; the offset moves
        past a batch only after `store_batch` committed it, and redeliveries of stored
        updates are dropped there. Network trouble and 5xx back off and retry.
        """
        offset: int | None = None
        backoff = 1.0
        webhook_deleted = False
        while True:
            try:
                if not webhook_deleted:  # getUpdates is refused while a webhook is set
                    webhook_deleted = await self.bot().delete_webhook()
                updates = [Stored(u["update_id"], self.redacted(u))
                           for u in await self._get_updates(offset)]
                if not updates:
                    backoff = 1.0
                    continue
                fresh = set(await self.run_db(self.inbox.store_batch, updates))
            except TelegramError as exc:
                if isinstance(exc, Conflict):
                    log.error("another process polls with this token: %s", exc.message)
                else:
                    log.warning("getUpdates failed (%s); retrying in %.0f s", exc, backoff)
                wait = retry_seconds(exc) if isinstance(exc, TelegramRetryAfter) else backoff
                await asyncio.sleep(wait)
                backoff = min(backoff * 2, MAX_POLL_BACKOFF_S)
                continue
            except Exception:  # the database: not acknowledged, so Telegram sends them again
                log.exception("could not store updates; asking for them again in %.0f s",
                              backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_POLL_BACKOFF_S)
                continue
            backoff = 1.0
            for update in updates:
                if update.update_id in fresh:
                    await self._queue_stored(update)
                else:
                    log.info("update %s came again; it was stored before", update.update_id)
            offset = updates[-1].update_id + 1

    async def _get_updates(self, offset: int | None) -> list[dict[str, Any]]:
        """getUpdates, the updates as JSON. python-telegram-bot's `get_updates` reads the
        whole batch before returning it and fails it whole on one update it cannot read:
        polling would ask for that same batch forever (found by tests/fuzz). Its `_post`
        is what every Bot API method of the pinned version calls."""
        request = {"offset": offset, "timeout": POLL_TIMEOUT_S,
                   "allowed_updates": ALLOWED_UPDATES}
        return await self.bot()._post("getUpdates", request,
                                    read_timeout=POLL_TIMEOUT_S + POLL_READ_MARGIN_S)
