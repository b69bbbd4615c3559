"""The bot in Telegram: python-telegram-bot updates in, Bot API calls out.

* `event_for(update)` turns an update into an engine event (or None: not for the engine);
  `agent_event_for(update, agents_chat_id, find_ticket)` does it for the agents' chat:
  a message there (a reply to a ticket's card or relayed message, or anything in a
  ticket's forum topic) becomes AgentText / AgentCommand about that ticket (a photo,
  document, voice... becomes AgentText with an `Attachment`: the file stays with
  Telegram), a pressed card button AgentButtonPressed, and a message no person signed
  AnonymousAgentMessage (below).
* `TelegramBot` runs the engine on each event (on one database thread, so SQLite never
  sees two writers from this process), and the outbox `Sender`, whose `deliver` maps
  each reply to Bot API calls: `SendText` -> sendMessage (HTML, inline keyboard);
  `CopyToUser` -> copyMessage (an agent's attachment with the signed caption; a copy,
  unlike a forward, does not show the agent's account); `NotifyAgents` -> the agents'
  chat, one forum topic per ticket, or in a plain group a card message that the
  ticket's later messages reply to.
* Updates are durable before they are acknowledged (navigator.inbox). Long polling is
  our own loop (`_poll`): each getUpdates batch is committed to the inbox in one
  transaction, and only then does the next getUpdates carry the offset that tells
  Telegram to forget it. In webhook mode python-telegram-bot's update queue is a
  `DurableUpdates`, whose `put` commits the update first; the library's webhook handler
  awaits `put` before it answers 200 (tested). So a kill -9 at any moment loses no
  update. The engine marks each update handled in the transaction of its state change,
  so an update Telegram delivers again, or one replayed on start, changes nothing twice.
* `serve(stop)` runs it all (long polling, or a webhook server) until `stop` is set,
  then stops cleanly: updates in hand are processed, requests in flight finish, and
  what is still undelivered waits in the outbox for the next start. A start first
  replays the updates a previous process stored but did not handle.

Who is an agent: whoever is a member of the agents' chat; the bot keeps no list. Only
the agents' chat is listened to, and Telegram lets only the members of a private group
post in it or press the buttons of its cards, so the chat itself is the access check:
coordinators add and remove volunteers where they already manage the group, it takes
effect at once, and there is nothing to keep in sync (the chat must therefore stay
private: anyone may read a public group). What the desk adds on top is attribution:
answers are signed with the agent's pseudonym, and every action is logged under the
agent's account (first-response times, /stats). A member can post without a person
behind the message, as an anonymous admin (`from` is GroupAnonymousBot, `sender_chat`
the group) or on behalf of a channel (`sender_chat` the channel). Such a message cannot
be attributed, so it is never relayed nor acted on: it becomes AnonymousAgentMessage
and the engine tells the chat why. (A pressed button always names the person who
pressed it, an anonymous admin included.)

The engine never sees Telegram objects; this module never decides what to say.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from telegram import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
)
from telegram import User as TelegramUser
from telegram.constants import ChatType, MessageEntityType, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    TelegramError,
)
from telegram.error import RetryAfter as TelegramRetryAfter
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from navigator.desk.tickets import AGENTS_LANGUAGE
from navigator.engine import Handled, Navigator, language_for
from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentRef,
    AgentsReport,
    AgentsText,
    AgentText,
    AnonymousAgentMessage,
    Attachment,
    Button,
    ButtonPressed,
    CopyToUser,
    DeleteMessage,
    DeliveryFailed,
    Event,
    NotifyAgents,
    Redacted,
    SendText,
    Tick,
    UserCommand,
    UserRef,
    UserText,
)
from navigator.inbox import FAILED, REDACTED, SKIPPED, Inbox, Stored
from navigator.log_masking import hide_in_logs, redact_secrets_in_logs
from navigator.outbox import (
    AGENTS_LANE,
    Delivery,
    Limit,
    Limits,
    Outbox,
    RateLimiter,
    Refused,
    RetryAfter,
    Sender,
    Sent,
    Transient,
    ticket_for_agents_message,
)
from navigator.report import Period, report_document
from navigator.secret_guard import redact_json
from navigator.settings import Settings
from navigator.telegram_html import CAPTION_LIMIT, split_html, visible_length, visible_text
from navigator.transports.commands import command_parts
from navigator.transports.http import AiohttpRequest

log = logging.getLogger(__name__)
T = TypeVar("T")
# Durations as timedelta, as python-telegram-bot 23 will have them (and no warnings now).
os.environ.setdefault("PTB_TIMEDELTA", "true")

# Only what the bot handles; channel posts, polls, member updates... never arrive.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
TICK_S = 60.0  # how often the engine is told that time passed (reminders)
AGENTS_CHAT_RETRY_S = 60.0  # how often undeliverable cards retry while the chat is broken
PRUNE_EVERY_TICKS = 60  # forget old handled updates about once an hour
POLL_TIMEOUT_S = 10  # long polling: how long Telegram holds a getUpdates open
POLL_READ_MARGIN_S = 5  # beyond it, the answer is late (python-telegram-bot's default)
MAX_POLL_BACKOFF_S = 30.0
# A deletion (of a message with a secret) that keeps failing is given up: after a day
# or two Telegram refuses it anyway.
MAX_DELETE_ATTEMPTS = 10

# The command menus, per scope and language. The engine answers every private command
# listed here. Agents' commands (/queue, /take, ...) come with the desk (issue 6);
# until then the agents' chat gets an empty menu.
USER_COMMANDS = {
    "ru": [("start", "Главное меню"), ("help", "Что я умею"),
           ("human", "Написать человеку"), ("cancel", "Отменить текущий шаг или заявку"),
           ("lang", "Язык: /lang ru или /lang en"),
           ("forgetme", "Удалить всё, что бот знает обо мне")],
    "en": [("start", "Main menu"), ("help", "What I can do"),
           ("human", "Talk to a person"), ("cancel", "Cancel the current step or request"),
           ("lang", "Language: /lang en or /lang ru"),
           ("forgetme", "Erase everything the bot knows about me")],
}
AGENT_COMMANDS: dict[str, list[tuple[str, str]]] = {
    "ru": [("queue", "Открытые заявки, сначала старые"), ("take", "Взять заявку"),
           ("resolve", "Заявка решена: спросить оценку"),
           ("done", "Запрос выполнен: сообщить и спросить оценку"),
           ("refuse", "Отказать по запросу: /refuse причина"),
           ("reopen", "Вернуть заявку в работу"),
           ("note", "Заметка для агентов (пользователь не видит)"),
           ("messages", "Сообщения пользователя из базы бота"),
           ("myname", "Псевдоним, который видят пользователи"),
           ("stats", "Статистика: сегодня, 7 и 30 дней"),
           ("report", "Отчёт файлом: /report, /report 90, /report 2026-11"),
           ("find", "Найти статью в базе знаний"),
           ("ignore", "Больше не передавать этого пользователя (спам)")],
    "en": [("queue", "Open requests, oldest first"), ("take", "Take the request"),
           ("resolve", "Resolved: ask for a rating"),
           ("done", "Request fulfilled: tell the user, ask for a rating"),
           ("refuse", "Refuse the request: /refuse reason"),
           ("reopen", "Work on it again"),
           ("note", "A note for agents (the user does not see it)"),
           ("messages", "The user's messages from the bot's storage"),
           ("myname", "The pseudonym users see"),
           ("stats", "Statistics: today, 7 and 30 days"),
           ("report", "The report as a file: /report, /report 90, /report 2026-11"),
           ("find", "Find an article in the knowledge base"),
           ("ignore", "Stop relaying this user (spam)")],
}

_ATTACHMENTS = {
    "ru": {"photo": "фото", "document": "документ", "voice": "голосовое сообщение",
           "video": "видео", "video_note": "видеосообщение", "audio": "аудио",
           "sticker": "стикер", "seconds": "с"},
    "en": {"photo": "photo", "document": "document", "voice": "voice message",
           "video": "video", "video_note": "video message", "audio": "audio",
           "sticker": "sticker", "seconds": "s"},
}


# Updates -> events ---------------------------------------------------------------------


def user_ref(user: TelegramUser) -> UserRef:
    return UserRef(user.id, user.full_name, user.username, user.language_code)


def event_for(update: Update) -> Event | None:
    """The engine event for an update from a user in a private chat, else None.

    Commands, text, inline buttons and edited texts become events; photos, documents,
    voice and other media become text that says what was attached (with the caption),
    so an open ticket hears about them and the search sees the caption. Groups,
    channels, bots and everything else are not the engine's business (None).
    """
    if (query := update.callback_query) is not None:
        message = query.message
        if query.from_user.is_bot or message is None or message.chat.type != ChatType.PRIVATE:
            return None
        return ButtonPressed(user_ref(query.from_user), query.data or "")
    message = update.message or update.edited_message
    if message is None or message.chat.type != ChatType.PRIVATE:
        return None
    sender = message.from_user
    if sender is None or sender.is_bot:
        return None
    user = user_ref(sender)
    redacted = redaction_of(update, message)
    if message.text is not None:
        if _is_command(message):
            if update.edited_message is not None:
                return None  # re-running an edited command would surprise the user
            return UserCommand(user, *_command_parts(message.text), redacted=redacted)
        return UserText(user, message.text, redacted)
    described = describe_attachment(message, user.language_code)
    return UserText(user, described, redacted) if described else None


def redaction_of(update: Update, message: Message) -> Redacted | None:
    """What the secret guard took out of the update (`TelegramBot.guard` marked it;
    python-telegram-bot keeps the mark, an unknown field, in `api_kwargs`), with the
    message to delete; None if nothing."""
    kinds = update.api_kwargs.get(REDACTED)
    if not kinds or not isinstance(kinds, list):
        return None
    return Redacted(tuple(str(kind) for kind in kinds), message.message_id)


def agent_event_for(update: Update, agents_chat_id: int | None,
                    find_ticket: Callable[[int | None, int | None], int | None]
                    ) -> Event | None:
    """The engine event for an update from the agents' chat, else None.

    `find_ticket(thread_id, reply_to_message_id)` names the ticket a message belongs to
    (navigator.outbox.ticket_for_agents_message; it reads the database).
    """
    if agents_chat_id is None:
        return None
    if (query := update.callback_query) is not None:
        message = query.message
        if query.from_user.is_bot or message is None or message.chat.id != agents_chat_id:
            return None
        return AgentButtonPressed(agent_ref(query.from_user), query.data or "")
    message = update.message
    if message is None or message.chat.id != agents_chat_id:
        return None
    attachment = attachment_of(message)
    if message.text is None and attachment is None:
        return None  # service messages (a pin, a new member, a topic renamed...)
    sender = message.from_user
    if (sender_chat := message.sender_chat) is not None:  # no person: see the docstring
        return anonymous_event_for(message, sender_chat, _ticket_of(message, find_ticket))
    if sender is None or sender.is_bot:
        return None
    ticket_id = _ticket_of(message, find_ticket)
    redacted = redaction_of(update, message)
    if message.text is None:
        return AgentText(agent_ref(sender), ticket_id, message.caption or "", attachment,
                         redacted)
    if _is_command(message):
        return AgentCommand(agent_ref(sender), *_command_parts(message.text), ticket_id,
                            redacted)
    return AgentText(agent_ref(sender), ticket_id, message.text, redacted=redacted)


def _ticket_of(message: Message,
               find_ticket: Callable[[int | None, int | None], int | None]) -> int | None:
    thread_id = message.message_thread_id if message.is_topic_message else None
    reply_to = message.reply_to_message.message_id if message.reply_to_message else None
    return find_ticket(thread_id, reply_to)


def anonymous_event_for(message: Message, sender_chat: Chat,
                        ticket_id: int | None) -> AnonymousAgentMessage:
    """A message in the agents' chat sent as the group itself (an anonymous admin) or as
    a channel: who wrote it is unknown (see the module's docstring)."""
    channel = None if sender_chat.id == message.chat.id else \
        sender_chat.title or f"id {sender_chat.id}"
    command = _command_parts(message.text)[0] if message.text is not None and \
        _is_command(message) else None
    return AnonymousAgentMessage(ticket_id, channel, command)


# A GIF also comes as a `document`: "animation" is looked at first.
_ATTACHMENT_KINDS = ("animation", "photo", "video", "document", "voice", "audio",
                     "sticker", "video_note")


def attachment_of(message: Message) -> Attachment | None:
    """What the message carries besides text (by reference), or None."""
    for kind in _ATTACHMENT_KINDS:
        media = getattr(message, kind)
        if media:  # `photo` is a tuple of sizes, empty when there is none
            return Attachment(kind, message.chat.id, message.message_id,
                              getattr(media, "file_name", None))
    return None


def agent_ref(user: TelegramUser) -> AgentRef:
    return AgentRef(user.id, user.full_name, user.username)


def _command_parts(text: str) -> tuple[str, str]:
    """`/take@MTL_helper_bot 12` -> ("take", "12") (a text `_is_command` accepted)."""
    return command_parts(text) or ("", text)


def _is_command(message: Message) -> bool:
    return any(e.type == MessageEntityType.BOT_COMMAND and e.offset == 0
               for e in message.entities) or message.text.startswith("/")


def describe_attachment(message: Message, language_code: str | None) -> str | None:
    """`[фото] caption`, `[документ scan.pdf]`, `[голосовое сообщение, 12 с]`... or None."""
    words = _ATTACHMENTS["en" if (language_code or "").startswith("en") else "ru"]
    if message.photo:
        kind = words["photo"]
    elif message.document is not None:
        kind = f"{words['document']} {message.document.file_name or ''}".strip()
    elif message.voice is not None:
        kind = f"{words['voice']}, {_seconds(message.voice.duration)} {words['seconds']}"
    elif message.video is not None:
        kind = words["video"]
    elif message.video_note is not None:
        kind = words["video_note"]
    elif message.audio is not None:
        kind = words["audio"]
    elif message.sticker is not None:
        kind = f"{words['sticker']} {message.sticker.emoji or ''}".strip()
    else:
        return None
    caption = (message.caption or "").strip()
    return f"[{kind}] {caption}".strip()


def _seconds(value: int | timedelta) -> int:
    return int(value.total_seconds()) if isinstance(value, timedelta) else int(value)


def keyboard(buttons: tuple[Button, ...]) -> InlineKeyboardMarkup | None:
    """One button per row, as the engine lays them out."""
    if not buttons:
        return None
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(b.label, url=b.url) if b.url else
         InlineKeyboardButton(b.label, callback_data=b.data)] for b in buttons])


# The bot -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """Webhook mode: Telegram POSTs updates to `url`; we listen on `listen:port` (a
    reverse proxy terminates TLS) and refuse requests without the `secret`."""

    url: str
    listen: str = "127.0.0.1"
    port: int = 8443
    secret: str = ""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path.lstrip("/")


class _TopicGone(Exception):
    """The ticket's forum topic was deleted by an agent."""


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


class TelegramBot:
    """The engine, the outbox sender and python-telegram-bot, wired together."""

    def __init__(self, settings: Settings, navigator: Navigator, *,
                 limits: Limits | None = None, concurrent_updates: int = 64,
                 tick_s: float = TICK_S):
        if settings.telegram_token is None or not settings.telegram_token.get_secret_value():
            raise ValueError("no Telegram bot token: set NAVIGATOR_TELEGRAM_TOKEN")
        # Bot API URLs contain the token, and httpx (INFO) and python-telegram-bot (DEBUG)
        # log URLs: the token is masked in every log record.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        hide_in_logs(settings.telegram_token.get_secret_value())
        # So does python-telegram-bot's DEBUG dump of every update, secrets and all.
        redact_secrets_in_logs()
        self.settings = settings
        self.navigator = navigator
        self.agents_chat_id = settings.agents_chat_id
        self.outbox = Outbox(navigator.store)
        self.inbox = Inbox(navigator.store)
        # One thread for every database call of this process: the engine's transactions
        # and the sender's bookkeeping queue up there, never on the event loop.
        self._db = ThreadPoolExecutor(1, thread_name_prefix="navigator-db")
        self.updates = DurableUpdates(self.inbox, self.run_db, self.guard)
        limits = limits or Limits(total=Limit(settings.telegram_send_rate),
                                  group=Limit(settings.telegram_group_rate / 60))
        self.sender = Sender(self.outbox, self.deliver, self.chat_of,
                             limiter=RateLimiter(limits), run_db=self.run_db,
                             on_failed=self._report_failure)
        self._agents_forum: bool | None = None
        root = settings.telegram_api_url.rstrip("/")
        self.application: Application = (
            ApplicationBuilder()
            .token(settings.telegram_token.get_secret_value())
            .base_url(f"{root}/bot").base_file_url(f"{root}/file/bot")
            .update_queue(self.updates)
            .concurrent_updates(concurrent_updates)
            .request(AiohttpRequest(connection_pool_size=max(concurrent_updates, 8) + 8))
            .get_updates_request(AiohttpRequest(connection_pool_size=1))
            .build()
        )
        self.application.add_handler(TypeHandler(Update, self.on_update))
        self.application.add_error_handler(self._on_error)
        self.tick_s = tick_s  # how often the engine hears that time passed
        self.handled = 0  # updates the engine handled (for the benchmark's log line)
        self.running = asyncio.Event()  # set once updates are being received

    @property
    def bot(self) -> Any:
        return self.application.bot

    async def run_db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking database call on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, lambda: fn(*args, **kwargs))

    # Receiving -------------------------------------------------------------------------

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
        return Update.de_json(cleaned, self.bot), cleaned

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
                            self.settings.default_language)

    async def on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """One update: the engine decides (its replies land in the outbox), the sender
        is woken. A pressed button is always answered, so its spinner stops."""
        try:
            event = event_for(update)
        except Exception as exc:  # a part the Bot API promises is missing: not retried
            log.exception("update %s cannot be read; skipped", update.update_id)
            await self.run_db(self.inbox.finish, update.update_id, FAILED,
                              f"{type(exc).__name__}: {exc}")
            return
        # Submitted before any await: updates reach the engine in the order they came.
        if event is not None:
            self.navigator.anticipate(event)  # a question is embedded while it waits
            decided = asyncio.get_running_loop().run_in_executor(
                self._db, self.navigator.handle_recorded, event, update.update_id)
        elif self._in_agents_chat(update):
            decided = asyncio.get_running_loop().run_in_executor(
                self._db, self._handle_agents_update, update)
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
        if handled is None:
            await self.run_db(self.inbox.finish, update.update_id, SKIPPED)
            return
        if handled.duplicate:
            log.info("update %s was handled before; not again", update.update_id)
            return
        self.handled += 1
        self.sender.kick()

    def _in_agents_chat(self, update: Update) -> bool:
        chat = update.effective_chat
        return self.agents_chat_id is not None and chat is not None and \
            chat.id == self.agents_chat_id

    def _handle_agents_update(self, update: Update) -> Handled | None:
        """On the database thread: which ticket the message is about, then the engine."""
        def find_ticket(thread_id: int | None, reply_to: int | None) -> int | None:
            with self.navigator.store.transaction() as repo:
                return ticket_for_agents_message(repo, self.agents_chat_id or 0, thread_id,
                                                 reply_to)

        event = agent_event_for(update, self.agents_chat_id, find_ticket)
        if event is None:
            return None
        return self.navigator.handle_recorded(event, update.update_id)

    async def _tick(self, every: float = TICK_S) -> None:
        """Tell the engine, once a minute, that time passed: due reminders go out.
        About once an hour, old handled updates are forgotten."""
        ticks = 0
        while True:
            await asyncio.sleep(every)
            ticks += 1
            if ticks % PRUNE_EVERY_TICKS == 0:
                await self.run_db(self.inbox.prune)
            try:
                handled = await self.run_db(self.navigator.handle_recorded, Tick())
            except Exception as exc:  # another process reminding at the same moment
                log.warning("reminders skipped this minute: %s", exc)
                continue
            if handled.outbox_ids:
                self.sender.kick()

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("error while handling an update: %s", context.error,
                  exc_info=context.error)

    # Sending ---------------------------------------------------------------------------

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
                message = await _translated(self.bot.send_photo(
                    reply.user_id, reply.image, caption=reply.text, parse_mode=ParseMode.HTML,
                    reply_markup=keyboard(reply.buttons)))
                return Sent(message.chat_id, message.message_id)
            if reply.image:  # a caption holds 1024 characters: the picture goes first
                await _translated(self.bot.send_photo(reply.user_id, reply.image))
            message = await self._send(reply.user_id, reply.text,
                                       reply_markup=keyboard(reply.buttons))
            return Sent(message.chat_id, message.message_id)
        if isinstance(reply, CopyToUser):
            return await self._copy_to_user(reply)
        if isinstance(reply, DeleteMessage):
            return await self._delete(delivery, reply)
        if isinstance(reply, NotifyAgents | AgentsText | AgentsReport):
            try:
                if isinstance(reply, AgentsText):
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
            return await _translated(self.bot.send_message(
                chat_id, text, parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True), **options))
        except Refused as exc:
            if not _unparsable(exc):
                raise
            log.error("Telegram could not parse the HTML of a message to %s (%s); sending "
                      "it as plain text", chat_id, exc)
            return await _translated(self.bot.send_message(chat_id, visible_text(text),
                                                           **options))

    async def _copy_to_user(self, reply: CopyToUser) -> Sent:
        """copyMessage with the caption replaced (an empty one removes the agent's own:
        nothing reaches the user unsigned); HTML, or plain text if Telegram cannot parse it."""
        source = reply.attachment
        try:
            copied = await _translated(self.bot.copy_message(
                reply.user_id, source.chat_id, source.message_id, caption=reply.caption,
                parse_mode=ParseMode.HTML))
        except Refused as exc:
            if not _unparsable(exc):
                raise
            log.error("Telegram could not parse the HTML of a caption to %s (%s); sending "
                      "it as plain text", reply.user_id, exc)
            copied = await _translated(self.bot.copy_message(
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
            await _translated(self.bot.delete_message(chat_id, reply.message_id))
        except Transient as exc:
            if delivery.attempts >= MAX_DELETE_ATTEMPTS:
                raise Refused(f"gave up after {delivery.attempts} attempts: {exc}") from exc
            raise
        return Sent(chat_id, reply.message_id)

    async def _report_failure(self, delivery: Delivery, error: str) -> None:
        """A reply about a ticket that Telegram refused for good: the engine tells the
        ticket's agents (the Sender calls this before recording the failure)."""
        reply = delivery.reply
        if not isinstance(reply, SendText | CopyToUser) or reply.ticket_id is None:
            return
        if isinstance(reply, SendText):
            event = DeliveryFailed(reply.ticket_id, reply.user_id, reply.text, error)
        else:
            event = DeliveryFailed(reply.ticket_id, reply.user_id, reply.caption, error,
                                   reply.attachment.kind)
        await self.run_db(self.navigator.handle_recorded, event)
        self.sender.kick()

    async def _to_agents_chat(self, reply: AgentsText) -> Sent:
        """A post outside any ticket (the queue, an answer to /myname): the main chat."""
        if self.agents_chat_id is None:
            raise Transient("no agents' chat configured", wait=AGENTS_CHAT_RETRY_S)
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
                report_document, self.navigator.store, period, datetime.now(UTC),
                reply.language)
        except Exception as exc:
            # Retrying a report that cannot be made would hold up every ticket card
            # behind it in the agents' lane: it is given up, and said in the log.
            log.exception("the report for %s – %s could not be made", reply.first, reply.last)
            raise Refused(f"the report could not be made: {exc}") from exc
        message = await _translated(self.bot.send_document(
            self.agents_chat_id, InputFile(content, filename=name), caption=reply.caption,
            parse_mode=ParseMode.HTML))
        return Sent(self.agents_chat_id, message.message_id)

    async def _to_agents(self, delivery: Delivery, reply: NotifyAgents) -> Sent:
        chat_id = self.agents_chat_id
        if chat_id is None:
            log.error("NAVIGATOR_AGENTS_CHAT_ID is not set: ticket cards wait in the outbox")
            raise Transient("no agents' chat configured", wait=AGENTS_CHAT_RETRY_S)
        thread = await self.run_db(self.outbox.ticket_thread, reply.ticket_id)
        if thread is None:
            raise Refused(f"ticket {reply.ticket_id} does not exist")
        if not await self._agents_chat_is_forum():
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
                await self.sender.throttle(chat_id)  # a topic is a message in the group
                created = await _translated(self.bot.create_forum_topic(chat_id, thread.title))
                topic = created.message_thread_id
                await self.run_db(self.outbox.set_ticket_topic, reply.ticket_id, chat_id, topic)
                # A new topic for a ticket that had one (an agent deleted it): the card
                # goes first, so the topic makes sense on its own.
                repost_card = thread.card_row_id not in (None, delivery.id)
            try:
                if repost_card:
                    for text in await self.run_db(self.outbox.opening_texts, reply.ticket_id,
                                                  delivery.id):
                        # Split too: a card stored before cards were bounded may be long.
                        for part in split_html(text):
                            await self.sender.throttle(chat_id)
                            await self._in_topic(chat_id, topic, part)
                message = await self._in_topic(chat_id, topic, reply.text,
                                               keyboard(reply.buttons))
                return Sent(chat_id, message.message_id, topic)
            except _TopicGone:
                log.info("the topic of ticket %s was deleted; creating a new one",
                         reply.ticket_id)
                await self.run_db(self.outbox.set_ticket_topic, reply.ticket_id, chat_id, None)
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

    async def _agents_chat_is_forum(self) -> bool:
        """Whether the agents' chat is a forum (asked once, again after a failure)."""
        if self._agents_forum is None:
            chat = await _translated(self.bot.get_chat(self.agents_chat_id))
            self._agents_forum = bool(chat.is_forum)
        return self._agents_forum

    # Starting and stopping -------------------------------------------------------------

    async def set_commands(self) -> None:
        """The command menus: users' commands in private chats, per language; the agents'
        own menu in their chat; nothing in other groups."""
        bot = self.bot
        private = BotCommandScopeAllPrivateChats()
        for language, commands in USER_COMMANDS.items():
            await bot.set_my_commands([BotCommand(*c) for c in commands], scope=private,
                                      language_code=language)
        fallback = USER_COMMANDS[self.settings.default_language]
        await bot.set_my_commands([BotCommand(*c) for c in fallback], scope=private)
        await bot.delete_my_commands(scope=BotCommandScopeDefault())
        if self.agents_chat_id is not None:
            agents = BotCommandScopeChat(self.agents_chat_id)
            for language in ("", "ru", "en"):
                commands = AGENT_COMMANDS[language or self.settings.default_language]
                if commands:
                    await bot.set_my_commands([BotCommand(*c) for c in commands],
                                              scope=agents, language_code=language or None)
                else:
                    await bot.delete_my_commands(scope=agents, language_code=language or None)

    async def check_agents_chat(self) -> None:
        """Say in the log what the agents' chat is, or what is wrong with it."""
        if self.agents_chat_id is None:
            log.warning("NAVIGATOR_AGENTS_CHAT_ID is not set: hand-overs will wait in the "
                        "outbox until it is")
            return
        try:
            forum = await self._agents_chat_is_forum()
            me = await self.bot.get_chat_member(self.agents_chat_id, self.bot.id)
        except (Refused, Transient, RetryAfter) as exc:
            log.error("cannot reach the agents' chat %s: %s", self.agents_chat_id, exc)
            return
        if forum and not getattr(me, "can_manage_topics", False):
            log.error("the agents' chat is a forum but the bot may not manage topics: "
                      "make it an admin with 'Manage topics'")
        log.info("agents' chat %s: %s", self.agents_chat_id,
                 "forum, one topic per ticket" if forum else "a card per ticket, replies thread")

    async def serve(self, stop: asyncio.Event, webhook: Webhook | None = None) -> None:
        """Run until `stop` is set: receive updates, handle them, deliver the outbox."""
        app = self.application
        try:
            async with app:  # getMe: fails fast on a wrong token
                await self.set_commands()
                await self.check_agents_chat()
                await app.start()
                await self._replay_stored_updates()
                sender = asyncio.create_task(self.sender.run(), name="outbox-sender")
                ticker = asyncio.create_task(self._tick(self.tick_s), name="reminders")
                assert app.updater is not None
                poller: asyncio.Task[None] | None = None
                if webhook is None:
                    poller = asyncio.create_task(self._poll(), name="polling")
                else:
                    await app.updater.start_webhook(
                        listen=webhook.listen, port=webhook.port, url_path=webhook.path,
                        webhook_url=webhook.url, secret_token=webhook.secret,
                        allowed_updates=ALLOWED_UPDATES)
                log.info("@%s is running (%s)", app.bot.username,
                         "webhook" if webhook else "long polling")
                self.running.set()
                try:
                    await stop.wait()
                finally:
                    self.running.clear()
                    ticker.cancel()
                    if poller is not None:  # no more updates in
                        poller.cancel()
                        await asyncio.gather(poller, return_exceptions=True)
                    else:
                        await app.updater.stop()
                    await app.stop()  # updates in hand are handled
                    await self.sender.stop()  # requests in flight finish
                    await sender
        finally:
            self._db.shutdown(wait=True)
            log.info("stopped; outbox: %s; inbox: %s", self.outbox.counts(),
                     self.inbox.counts())

    async def _replay_stored_updates(self) -> None:
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
            update = Update.de_json(row.payload, self.bot)
        except Exception as exc:
            log.error("stored update %s cannot be read; skipped: %s", row.update_id, exc)
            await self.run_db(self.inbox.finish, row.update_id, FAILED, str(exc))
            return
        await self.updates.stored(update)

    async def _poll(self) -> None:
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
                    webhook_deleted = await self.bot.delete_webhook()
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
                wait = _retry_seconds(exc) if isinstance(exc, TelegramRetryAfter) else backoff
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
        return await self.bot._post("getUpdates", request,
                                    read_timeout=POLL_TIMEOUT_S + POLL_READ_MARGIN_S)


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


async def _translated(call: Any) -> Any:
    """Await a Bot API call, turning python-telegram-bot's errors into the outbox's."""
    try:
        return await call
    except TelegramRetryAfter as exc:
        raise RetryAfter(_retry_seconds(exc), exc.message) from exc
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


def _retry_seconds(exc: TelegramRetryAfter) -> float:
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
