"""The bot in Telegram: python-telegram-bot updates in, Bot API calls out.

* `updates`: an update -> an engine event (users' private chats, the agents' chat).
* `intake`: updates stored in the inbox before they are acknowledged (long polling, the
  webhook's queue, replay on start), then handed to the engine.
* `delivery`: the outbox's replies as Bot API calls (the Sender's `deliver`).
* `menus`: the command menus.
* `bot`: `TelegramBot`, all of it wired together, and `serve`.

The engine never sees Telegram objects; this package never decides what to say.
"""

from navigator.transports.telegram.bot import TelegramBot, Webhook, new_webhook_secret

__all__ = ["TelegramBot", "Webhook", "new_webhook_secret"]
