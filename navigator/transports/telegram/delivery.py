"""The outbox's replies as Bot API calls (the `deliver` the Sender calls).

`SendText` -> sendMessage (HTML, inline keyboard; with an image, sendPhoto);
`CopyToUser` -> copyMessage (an agent's attachment with the signed caption; a copy,
unlike a forward, does not show the agent's account); `DeleteMessage` -> deleteMessage;
`NotifyAgents` -> the agents' chat, one forum topic per ticket, or in a plain group a
card message that the ticket's later messages reply to; `AgentsText` -> the agents'
chat itself; `AgentsDocument` -> sendDocument there (a payout batch's file).
python-telegram-bot's errors become the Sender's `RetryAfter`, `Transient` and `Refused`.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    TelegramError,
)
from telegram.error import RetryAfter as TelegramRetryAfter

from navigator.desk import threads
from navigator.events import (
    AgentsDocument,
    AgentsReport,
    AgentsText,
    Button,
    CopyToUser,
    DeleteMessage,
    NotifyAgents,
    SendText,
)
from navigator.outbox import AGENTS_LANE, Delivery, Outbox, Sent
from navigator.report import Period, report_document
from navigator.sender import Refused, RetryAfter, Transient
from navigator.telegram_html import CAPTION_LIMIT, split_html, visible_length, visible_text

log = logging.getLogger(__name__)

AGENTS_CHAT_RETRY_S = 60.0  # how often undeliverable cards retry while the chat is broken
# A deletion (of a message with a secret) that keeps failing is given up: after a day
# or two Telegram refuses it anyway.
MAX_DELETE_ATTEMPTS = 10


def keyboard(buttons: tuple[Button, ...]) -> InlineKeyboardMarkup | None:
    """One button per row, as the engine lays them out."""
    if not buttons:
        return None
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(b.label, url=b.url) if b.url else
         InlineKeyboardButton(b.label, callback_data=b.data)] for b in buttons])


class _TopicGone(Exception):
    """The ticket's forum topic was deleted by an agent."""


class BotApiDelivery:
    """Sends outbox rows through the Bot API. `bot()` is python-telegram-bot's Bot;
    `run_db` runs a database call on the store's writer thread; `throttle(chat_id)`
    waits for room within the rate limits (the Sender's, set once it exists) for the
    extra calls a delivery makes."""

    def __init__(self, bot: Callable[[], Any], agents_chat_id: int | None, outbox: Outbox,
                 run_db: Callable[..., Awaitable[Any]]):
        self.bot = bot
        self.agents_chat_id = agents_chat_id
        self.outbox = outbox
        self.store = outbox.store
        self.run_db = run_db
        self.throttle: Callable[[int], Awaitable[None]] = _no_throttle
        self._agents_forum: bool | None = None

    def chat_of(self, lane: str) -> int | None:
        """The Telegram chat a lane delivers to (its rate limits depend on it)."""
        if lane == AGENTS_LANE:
            return self.agents_chat_id
        return int(lane.partition(":")[2])

    async def deliver(self, delivery: Delivery) -> Sent:
        """Send one outbox row; raise RetryAfter / Transient / Refused on failure."""
        reply = delivery.reply
        if isinstance(reply, SendText):
            if reply.image and visible_length(reply.text) <= CAPTION_LIMIT:
                message = await _translated(self.bot().send_photo(
                    reply.user_id, reply.image, caption=reply.text, parse_mode=ParseMode.HTML,
                    reply_markup=keyboard(reply.buttons)))
                return Sent(message.chat_id, message.message_id)
            if reply.image:  # a caption holds 1024 characters: the picture goes first
                await _translated(self.bot().send_photo(reply.user_id, reply.image))
            message = await self._send(reply.user_id, reply.text,
                                       reply_markup=keyboard(reply.buttons))
            return Sent(message.chat_id, message.message_id)
        if isinstance(reply, CopyToUser):
            return await self._copy_to_user(reply)
        if isinstance(reply, DeleteMessage):
            return await self._delete(delivery, reply)
        if isinstance(reply, NotifyAgents | AgentsText | AgentsDocument | AgentsReport):
            try:
                if isinstance(reply, AgentsText | AgentsDocument):
                    return await self._to_agents_chat(reply)
                if isinstance(reply, AgentsReport):
                    return await self._report_to_agents(reply)
                return await self._to_agents(delivery, reply)
            except Refused as exc:
                if _chat_unreachable(str(exc)):
                    # Cards are never dropped for a misconfigured agents' chat: they wait
                    # until the bot is (re)added or the setting is fixed.
                    log.error("the agents' chat %s is unreachable (%s): ticket cards wait "
                              "in the outbox", self.agents_chat_id, exc)
                    self._agents_forum = None
                    raise Transient(str(exc), wait=AGENTS_CHAT_RETRY_S) from exc
                raise
        raise Refused(f"no way to deliver {reply!r}")

    async def _send(self, chat_id: int, text: str, **options: Any) -> Message:
        """sendMessage in HTML; text Telegram cannot parse goes again as plain text."""
        try:
            return await _translated(self.bot().send_message(
                chat_id, text, parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True), **options))
        except Refused as exc:
            if not _unparsable(exc):
                raise
            log.error("Telegram could not parse the HTML of a message to %s (%s); sending "
                      "it as plain text", chat_id, exc)
            return await _translated(self.bot().send_message(chat_id, visible_text(text),
                                                           **options))

    async def _copy_to_user(self, reply: CopyToUser) -> Sent:
        """copyMessage with the caption replaced (an empty one removes the agent's own:
        nothing reaches the user unsigned); HTML, or plain text if Telegram cannot parse it."""
        source = reply.attachment
        try:
            copied = await _translated(self.bot().copy_message(
                reply.user_id, source.chat_id, source.message_id, caption=reply.caption,
                parse_mode=ParseMode.HTML))
        except Refused as exc:
            if not _unparsable(exc):
                raise
            log.error("Telegram could not parse the HTML of a caption to %s (%s); sending "
                      "it as plain text", reply.user_id, exc)
            copied = await _translated(self.bot().copy_message(
                reply.user_id, source.chat_id, source.message_id,
                caption=visible_text(reply.caption)))
        return Sent(reply.user_id, copied.message_id)

    async def _delete(self, delivery: Delivery, reply: DeleteMessage) -> Sent:
        """deleteMessage (a message that carried a secret). Refused (too old, already
        gone, no right to delete) fails for good; network trouble retries, but not
        forever."""
        chat_id = reply.user_id if reply.user_id is not None else self.agents_chat_id
        if chat_id is None:
            raise Refused("no agents' chat configured")
        try:
            await _translated(self.bot().delete_message(chat_id, reply.message_id))
        except Transient as exc:
            if delivery.attempts >= MAX_DELETE_ATTEMPTS:
                raise Refused(f"gave up after {delivery.attempts} attempts: {exc}") from exc
            raise
        return Sent(chat_id, reply.message_id)


    async def _to_agents_chat(self, reply: AgentsText | AgentsDocument) -> Sent:
        """A post outside any ticket (the queue, an answer to /myname, a payout batch's
        file): the main chat."""
        if self.agents_chat_id is None:
            raise Transient("no agents' chat configured", wait=AGENTS_CHAT_RETRY_S)
        if isinstance(reply, AgentsDocument):
            message = await _translated(self.bot().send_document(
                self.agents_chat_id, InputFile(reply.content.encode("utf-8"),
                                               filename=reply.file_name),
                caption=reply.caption or None, parse_mode=ParseMode.HTML))
        else:
            message = await self._send(self.agents_chat_id, reply.text)
        return Sent(self.agents_chat_id, message.message_id)

    async def _report_to_agents(self, reply: AgentsReport) -> Sent:
        """The HTML report as a document in the agents' chat, rendered now in its own
        thread: it reads the store for seconds on a big desk, and the database thread
        must keep serving live updates meanwhile."""
        if self.agents_chat_id is None:
            raise Transient("no agents' chat configured", wait=AGENTS_CHAT_RETRY_S)
        period = Period(reply.first, reply.last, ZoneInfo(reply.zone))
        try:
            name, content = await asyncio.to_thread(
                report_document, self.store, period, datetime.now(UTC), reply.language)
        except Exception as exc:
            # Retrying a report that cannot be made would hold up every ticket card
            # behind it in the agents' lane: it is given up, and said in the log.
            log.exception("the report for %s – %s could not be made", reply.first, reply.last)
            raise Refused(f"the report could not be made: {exc}") from exc
        message = await _translated(self.bot().send_document(
            self.agents_chat_id, InputFile(content, filename=name), caption=reply.caption,
            parse_mode=ParseMode.HTML))
        return Sent(self.agents_chat_id, message.message_id)

    async def _to_agents(self, delivery: Delivery, reply: NotifyAgents) -> Sent:
        chat_id = self.agents_chat_id
        if chat_id is None:
            log.error("NAVIGATOR_AGENTS_CHAT_ID is not set: ticket cards wait in the outbox")
            raise Transient("no agents' chat configured", wait=AGENTS_CHAT_RETRY_S)
        thread = await self.run_db(self.store.call, threads.ticket_thread, reply.ticket_id)
        if thread is None:
            raise Refused(f"ticket {reply.ticket_id} does not exist")
        if not await self.agents_chat_is_forum():
            card = thread.card_message_id if thread.chat_id == chat_id else None
            # The first message of a ticket is its card; the later ones reply to it.
            reply_to = (ReplyParameters(card, allow_sending_without_reply=True)
                        if card is not None else None)
            message = await self._send(chat_id, reply.text, reply_parameters=reply_to,
                                       reply_markup=keyboard(reply.buttons))
            return Sent(chat_id, message.message_id)
        topic = thread.thread_id if thread.chat_id == chat_id else None
        for _ in range(3):
            repost_card = False
            if topic is None:
                await self.throttle(chat_id)  # a topic is a message in the group
                created = await _translated(self.bot().create_forum_topic(chat_id, thread.title))
                topic = created.message_thread_id
                await self.run_db(self.store.call, threads.set_topic, reply.ticket_id, chat_id,
                                  topic)
                # A new topic for a ticket that had one (an agent deleted it): the card
                # goes first, so the topic makes sense on its own.
                repost_card = thread.card_row_id not in (None, delivery.id)
            try:
                if repost_card:
                    for text in await self.run_db(self.outbox.opening_texts, reply.ticket_id,
                                                  delivery.id):
                        # Split too: a card stored before cards were bounded may be long.
                        for part in split_html(text):
                            await self.throttle(chat_id)
                            await self._in_topic(chat_id, topic, part)
                message = await self._in_topic(chat_id, topic, reply.text,
                                               keyboard(reply.buttons))
                return Sent(chat_id, message.message_id, topic)
            except _TopicGone:
                log.info("the topic of ticket %s was deleted; creating a new one",
                         reply.ticket_id)
                await self.run_db(self.store.call, threads.set_topic, reply.ticket_id, chat_id,
                                  None)
                topic = None
        raise Transient(f"the topic of ticket {reply.ticket_id} keeps disappearing")

    async def _in_topic(self, chat_id: int, topic: int, text: str,
                        markup: InlineKeyboardMarkup | None = None) -> Message:
        try:
            return await self._send(chat_id, text, message_thread_id=topic, reply_markup=markup)
        except Refused as exc:
            reason = str(exc).lower()
            if "thread not found" in reason or "topic_deleted" in reason:
                raise _TopicGone from exc
            raise

    async def agents_chat_is_forum(self) -> bool:
        """Whether the agents' chat is a forum (asked once, again after a failure)."""
        if self._agents_forum is None:
            chat = await _translated(self.bot().get_chat(self.agents_chat_id))
            self._agents_forum = bool(chat.is_forum)
        return self._agents_forum


async def _no_throttle(chat_id: int) -> None:
    return None


async def _translated(call: Any) -> Any:
    """Await a Bot API call, turning python-telegram-bot's errors into the outbox's."""
    try:
        return await call
    except TelegramRetryAfter as exc:
        raise RetryAfter(retry_seconds(exc), exc.message) from exc
    except Forbidden as exc:
        raise Refused(exc.message) from exc
    except BadRequest as exc:  # a subclass of NetworkError: caught first
        raise Refused(exc.message) from exc
    except ChatMigrated as exc:
        raise Refused(f"the group became supergroup {exc.new_chat_id}: use that id") from exc
    except InvalidToken as exc:
        raise Transient(f"the token was refused: {exc.message}", wait=60) from exc
    except (NetworkError, TelegramError) as exc:  # timeouts, 5xx, conflicts
        raise Transient(exc.message) from exc


def retry_seconds(exc: TelegramRetryAfter) -> float:
    # PTB 22 warns on `retry_after` (int today, timedelta later); its own network loop
    # reads the timedelta kept in `_retry_after`, and so do we when it is there.
    value = getattr(exc, "_retry_after", None)
    if value is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _unparsable(exc: Refused) -> bool:
    """Telegram refused the HTML itself (the text as plain text would go through)."""
    return "can't parse entities" in str(exc).lower()


def _chat_unreachable(reason: str) -> bool:
    reason = reason.lower()
    return any(s in reason for s in ("chat not found", "kicked", "not a member",
                                     "have no rights", "not enough rights", "became supergroup",
                                     "chat_write_forbidden"))
