"""Telegram updates -> engine events (pure: no network, no database).

* `event_for(update)` turns an update from a user's private chat into an engine event
  (or None: not for the engine).
* `agent_event_for(update, agents_chat_id)` does it for the agents' chat: a message
  there becomes AgentText / AgentCommand with its place (its forum topic, the message
  it replies to), from which the desk finds its ticket (navigator.desk.threads; a photo,
  document, voice... becomes AgentText with an `Attachment`: the file stays with
  Telegram), a pressed card button AgentButtonPressed, and a message no person signed
  AnonymousAgentMessage (below).

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

from datetime import timedelta

from telegram import Chat, Message, Update
from telegram import User as TelegramUser
from telegram.constants import ChatType, MessageEntityType

from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentRef,
    AgentText,
    AnonymousAgentMessage,
    Attachment,
    ButtonPressed,
    ChatPlace,
    Event,
    Redacted,
    UserCommand,
    UserRef,
    UserText,
)
from navigator.inbox import REDACTED
from navigator.transports.commands import command_parts

_ATTACHMENTS = {
    "ru": {"photo": "фото", "document": "документ", "voice": "голосовое сообщение",
           "video": "видео", "video_note": "видеосообщение", "audio": "аудио",
           "sticker": "стикер", "seconds": "с"},
    "en": {"photo": "photo", "document": "document", "voice": "voice message",
           "video": "video", "video_note": "video message", "audio": "audio",
           "sticker": "sticker", "seconds": "s"},
}



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


def agent_event_for(update: Update, agents_chat_id: int | None) -> Event | None:
    """The engine event for an update from the agents' chat, else None."""
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
        return anonymous_event_for(message, sender_chat)
    if sender is None or sender.is_bot:
        return None
    place = place_of(message)
    redacted = redaction_of(update, message)
    if message.text is None:
        return AgentText(agent_ref(sender), None, message.caption or "", attachment,
                         redacted, place)
    if _is_command(message):
        return AgentCommand(agent_ref(sender), *_command_parts(message.text), None,
                            redacted, place)
    return AgentText(agent_ref(sender), None, message.text, redacted=redacted, place=place)


def place_of(message: Message) -> ChatPlace:
    """Where in its chat the message was posted: its forum topic, the message it replies
    to (which ticket that is, the desk decides)."""
    thread_id = message.message_thread_id if message.is_topic_message else None
    reply_to = message.reply_to_message.message_id if message.reply_to_message else None
    return ChatPlace(message.chat.id, thread_id, reply_to)


def anonymous_event_for(message: Message, sender_chat: Chat) -> AnonymousAgentMessage:
    """A message in the agents' chat sent as the group itself (an anonymous admin) or as
    a channel: who wrote it is unknown (see the module's docstring)."""
    channel = None if sender_chat.id == message.chat.id else \
        sender_chat.title or f"id {sender_chat.id}"
    command = _command_parts(message.text)[0] if message.text is not None and \
        _is_command(message) else None
    return AnonymousAgentMessage(None, channel, command, place_of(message))


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
