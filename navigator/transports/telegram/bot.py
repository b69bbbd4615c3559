"""The bot: python-telegram-bot, the intake, the outbox's Sender and the Bot API
delivery wired together, and `serve(stop)`, which runs them all.

`serve` runs long polling or a webhook server until `stop` is set, then stops cleanly:
updates in hand are processed, requests in flight finish, and what is still undelivered
waits in the outbox for the next start. A start first sets the command menus, looks at
the agents' chat, and replays the updates a previous process stored but did not handle.
Once a minute the engine hears that time passed (reminders).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from navigator.events import CopyToUser, DeliveryFailed, SendText, Tick
from navigator.handling import Navigator
from navigator.log_masking import hide_in_logs, redact_secrets_in_logs
from navigator.outbox import Delivery, Outbox
from navigator.ratelimit import Limit, Limits, RateLimiter
from navigator.sender import Refused, RetryAfter, Sender, Transient
from navigator.settings import Settings
from navigator.transports.http import AiohttpRequest
from navigator.transports.telegram.delivery import BotApiDelivery
from navigator.transports.telegram.intake import ALLOWED_UPDATES, Intake
from navigator.transports.telegram.menus import set_commands

log = logging.getLogger(__name__)
T = TypeVar("T")
# Durations as timedelta, as python-telegram-bot 23 will have them (and no warnings now).
os.environ.setdefault("PTB_TIMEDELTA", "true")

TICK_S = 60.0  # how often the engine is told that time passed (reminders)
PRUNE_EVERY_TICKS = 60  # forget old handled updates about once an hour


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
        # Every database call of this process queues up on the store's one writer thread.
        self.writer = navigator.store.writer
        self.intake = Intake(navigator, lambda: self.bot, self.agents_chat_id,
                             settings.default_language, self._kick)
        self.inbox, self.updates = self.intake.inbox, self.intake.updates
        self.delivery = BotApiDelivery(lambda: self.bot, self.agents_chat_id, self.outbox,
                                       self.run_db)
        limits = limits or Limits(total=Limit(settings.telegram_send_rate),
                                  group=Limit(settings.telegram_group_rate / 60))
        self.sender = Sender(self.outbox, self.delivery.deliver, self.delivery.chat_of,
                             limiter=RateLimiter(limits), run_db=self.run_db,
                             on_failed=self._report_failure)
        self.delivery.throttle = self.sender.throttle
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
        self.running = asyncio.Event()  # set once updates are being received

    @property
    def bot(self) -> Any:
        return self.application.bot

    async def run_db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking database call on the store's writer thread."""
        return await self.writer.run(fn, *args, **kwargs)

    def _kick(self) -> None:
        self.sender.kick()

    def guard(self, update: Update) -> tuple[Update, dict[str, Any]]:
        """The update with its secrets taken out, and its JSON for the inbox
        (navigator.transports.telegram.intake)."""
        return self.intake.guard(update)

    async def on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """One update: the engine decides, the sender is woken (the intake's)."""
        await self.intake.on_update(update, context)

    async def _replay_stored_updates(self) -> None:
        await self.intake.replay_stored_updates()

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


    # Starting and stopping -------------------------------------------------------------

    async def check_agents_chat(self) -> None:
        """Say in the log what the agents' chat is, or what is wrong with it."""
        if self.agents_chat_id is None:
            log.warning("NAVIGATOR_AGENTS_CHAT_ID is not set: hand-overs will wait in the "
                        "outbox until it is")
            return
        try:
            forum = await self.delivery.agents_chat_is_forum()
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
                await set_commands(self.bot, self.agents_chat_id,
                                   self.settings.default_language)
                await self.check_agents_chat()
                await app.start()
                await self.intake.replay_stored_updates()
                sender = asyncio.create_task(self.sender.run(), name="outbox-sender")
                ticker = asyncio.create_task(self._tick(self.tick_s), name="reminders")
                assert app.updater is not None
                poller: asyncio.Task[None] | None = None
                if webhook is None:
                    poller = asyncio.create_task(self.intake.poll(), name="polling")
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
            self.writer.shutdown()
            log.info("stopped; outbox: %s; inbox: %s", self.outbox.counts(),
                     self.inbox.counts())



def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)
