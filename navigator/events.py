"""What comes into the engine (events) and what it decides to send (replies).

Small frozen dataclasses with no behaviour: transports build events from Telegram
updates or terminal lines, and turn replies into Bot API calls or printed text.
Texts in replies are Telegram HTML (the subset Telegram accepts: b, i, u, s, code,
pre, a, blockquote); the console renders the same HTML for the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class UserRef:
    """Who wrote: the Telegram user (or the terminal's stand-in)."""

    id: int
    name: str = ""
    username: str | None = None
    language_code: str | None = None


# Inbound events -----------------------------------------------------------------------


@dataclass(frozen=True)
class UserText:
    """A user typed free text in the private chat with the bot."""

    user: UserRef
    text: str


@dataclass(frozen=True)
class UserCommand:
    """A user sent a bot command, e.g. `/lang en` -> name="lang", args="en"."""

    user: UserRef
    name: str
    args: str = ""


@dataclass(frozen=True)
class ButtonPressed:
    """A user pressed an inline button; `data` is what the engine put in `Button.data`."""

    user: UserRef
    data: str


Event = UserText | UserCommand | ButtonPressed


# Outbound replies ---------------------------------------------------------------------


@dataclass(frozen=True)
class Button:
    """An inline button: what the user sees, and the data the engine gets back (<= 64
    bytes). A button with a `url` opens that link instead and sends no data."""

    label: str
    data: str
    url: str | None = None


@dataclass(frozen=True)
class SendText:
    """Send a message to a user; buttons are laid out one per row. With `image` (a URL),
    the message is a photo and the text its caption."""

    user_id: int
    text: str
    buttons: tuple[Button, ...] = field(default_factory=tuple)
    image: str | None = None


@dataclass(frozen=True)
class NotifyAgents:
    """Post to the agents' chat: a ticket card or a message that joins a ticket."""

    ticket_id: int
    text: str


Reply = SendText | NotifyAgents
