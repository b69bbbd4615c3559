"""What comes into the engine (events) and what it decides to send (replies).

Small frozen dataclasses with no behaviour: transports build events from Telegram
updates or terminal lines, and turn replies into Bot API calls or printed text.
Texts in replies are Telegram HTML (the subset Telegram accepts: b, i, u, s, code,
pre, a, blockquote); the console renders the same HTML for the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class UserRef:
    """Who wrote: the Telegram user (or the terminal's stand-in)."""

    id: int
    name: str = ""
    username: str | None = None
    language_code: str | None = None


# Inbound events -----------------------------------------------------------------------


@dataclass(frozen=True)
class Redacted:
    """The secret guard took a secret key or a recovery phrase out of a message before
    anything stored or saw it (navigator.secret_guard): its text holds placeholders
    instead. `kinds`: "secret_key", "recovery_phrase". `message_id`: the Telegram
    message that carried it, to delete (None where there is none, as in the terminal)."""

    kinds: tuple[str, ...]
    message_id: int | None = None


@dataclass(frozen=True)
class UserText:
    """A user typed free text in the private chat with the bot (`redacted`: a secret
    was taken out of it)."""

    user: UserRef
    text: str
    redacted: Redacted | None = None


@dataclass(frozen=True)
class UserCommand:
    """A user sent a bot command, e.g. `/lang en` -> name="lang", args="en"."""

    user: UserRef
    name: str
    args: str = ""
    redacted: Redacted | None = None


@dataclass(frozen=True)
class ButtonPressed:
    """A user pressed an inline button; `data` is what the engine put in `Button.data`."""

    user: UserRef
    data: str


@dataclass(frozen=True)
class AgentRef:
    """A volunteer agent acting in the agents' chat (their Telegram account, which users
    never see: users see the pseudonym the agent chose with /myname)."""

    id: int
    name: str = ""
    username: str | None = None


@dataclass(frozen=True)
class Attachment:
    """A photo, document, voice... an agent posted in the agents' chat, by reference:
    Telegram keeps the file and the bot copies the message, so the engine never holds
    the bytes. `kind` is the Bot API's name for it ("photo", "document", "voice",
    "video", "audio", "animation", "sticker", "video_note")."""

    kind: str
    chat_id: int
    message_id: int
    file_name: str | None = None


@dataclass(frozen=True)
class ChatPlace:
    """Where in the agents' chat a message was posted, as the chat tells it: the chat,
    the forum topic (`thread_id`, None outside topics) and the message it replies to
    (None if none). Which ticket that is, the desk decides (navigator.desk.threads)."""

    chat_id: int
    thread_id: int | None = None
    reply_to_message_id: int | None = None


@dataclass(frozen=True)
class AgentText:
    """An agent wrote in the agents' chat. `ticket_id`: the ticket the message names
    (the terminal's `#12`), else None: the desk finds it from `place` (a reply to the
    ticket's card or to a relayed message, or its forum topic; navigator.desk.threads).
    With an `attachment`, `text` is its caption (maybe empty)."""

    agent: AgentRef
    ticket_id: int | None
    text: str
    attachment: Attachment | None = None
    redacted: Redacted | None = None
    place: ChatPlace | None = None


@dataclass(frozen=True)
class AgentCommand:
    """An agent's command in the agents' chat: `/take`, `/resolve`, `/reopen`, `/note`,
    `/myname`, `/queue`. `ticket_id` and `place` as in AgentText (`/take 12` names the
    ticket in `args`)."""

    agent: AgentRef
    name: str
    args: str = ""
    ticket_id: int | None = None
    redacted: Redacted | None = None
    place: ChatPlace | None = None


@dataclass(frozen=True)
class AgentButtonPressed:
    """An agent pressed a button on a ticket card (`data` as the engine set it)."""

    agent: AgentRef
    data: str


@dataclass(frozen=True)
class AnonymousAgentMessage:
    """A message in the agents' chat that no person signed: an anonymous admin's
    (`channel` None) or one posted on behalf of a channel (`channel`: its title). It
    cannot be attributed to an agent. `ticket_id` and `place` as in AgentText;
    `command`: the command's name if it was one."""

    ticket_id: int | None
    channel: str | None = None
    command: str | None = None
    place: ChatPlace | None = None


@dataclass(frozen=True)
class Tick:
    """Time passed (the transport sends one a minute): reminders fall due."""


@dataclass(frozen=True)
class DeliveryFailed:
    """Telegram refused for good a reply to a user about a ticket (the user blocked the
    bot, deleted their account...): the agents must not believe it arrived. `text`: what
    was not delivered (the reply's HTML; for an attachment, its caption), `attachment`:
    its kind if it was one; `reason`: Telegram's words."""

    ticket_id: int
    user_id: int
    text: str
    reason: str
    attachment: str | None = None


UserEvent = UserText | UserCommand | ButtonPressed
AgentEvent = AgentText | AgentCommand | AgentButtonPressed | AnonymousAgentMessage
Event = UserEvent | AgentEvent | Tick | DeliveryFailed


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
    the message is a photo and the text its caption.

    `collapse`: a key for a message that shows the same thing again (a menu, a flow
    step, the same acknowledgement): of copies written back to back, one not yet sent
    is replaced by the newer, and they go out at most every few seconds (the outbox:
    `/start` thirty times gives two menus, not thirty). Answers to different questions
    have none.

    `ticket_id`: the ticket it is about, if an agent's work sends it (a failed delivery
    is then reported in the ticket).

    A `broadcast` (a survey's question) is delivered only from what live replies leave
    of the rate limits."""

    user_id: int
    text: str
    buttons: tuple[Button, ...] = field(default_factory=tuple)
    image: str | None = None
    ticket_id: int | None = None
    collapse: str | None = None
    broadcast: bool = False


@dataclass(frozen=True)
class NotifyAgents:
    """Post to the agents' chat: a ticket card or a message that joins a ticket (in its
    topic, or as a reply to its card); a card has buttons (take, resolve). `opening`:
    part of what opens the ticket (the card, and the full text of a long question after
    it), posted again if the ticket's topic is deleted."""

    ticket_id: int
    text: str
    buttons: tuple[Button, ...] = field(default_factory=tuple)
    opening: bool = False


@dataclass(frozen=True)
class AgentsText:
    """Post to the agents' chat outside any ticket: the queue, an answer to /myname."""

    text: str


@dataclass(frozen=True)
class AgentsDocument:
    """Post a file to the agents' chat outside any ticket, e.g. a payout batch's unsigned
    transaction (`<hash>.xdr`). `content` is the file's text (small: kilobytes);
    `caption` is HTML."""

    file_name: str
    content: str
    caption: str = ""


@dataclass(frozen=True)
class CopyToUser:
    """Send a user a copy of an agent's message with an attachment (Bot API copyMessage),
    its caption replaced by `caption` (HTML; empty: no caption). The copy does not show
    where it came from, so the agent's account stays hidden."""

    user_id: int
    attachment: Attachment
    caption: str = ""
    ticket_id: int | None = None


@dataclass(frozen=True)
class AgentsReport:
    """Post to the agents' chat the HTML report (navigator.report) of the local days
    `first` to `last` in the time zone `zone`, as a document with `caption` (HTML). The
    transport renders it when it delivers, so it holds the figures as of then; the
    outbox keeps only the period."""

    first: date
    last: date
    zone: str
    caption: str = ""
    language: str = "ru"


@dataclass(frozen=True)
class DeleteMessage:
    """Delete a message (one that carried a secret): in the user's private chat, or in
    the agents' chat when `user_id` is None."""

    message_id: int
    user_id: int | None = None


Reply = (SendText | NotifyAgents | AgentsText | AgentsDocument | AgentsReport | CopyToUser
         | DeleteMessage)
