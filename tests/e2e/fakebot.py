"""A fake Telegram Bot API server for end-to-end tests.

The real ``python-telegram-bot`` library talks to :class:`FakeTelegram` over HTTP on
127.0.0.1, exactly as it would talk to ``api.telegram.org``. The fake keeps the state
Telegram keeps (users, chats, messages, forum topics, files, commands, webhook) and
answers with the same JSON objects and the same error descriptions, so a bot that works
against it has a good chance of working against Telegram.

Typical use inside a test (the ``fake_telegram`` fixture lives in ``conftest.py``)::

    app = fake_telegram.application_builder().build()
    app.add_handler(CommandHandler("start", start))
    user = fake_telegram.add_user(first_name="Анна", username="anna", language_code="ru")
    async with run_polling(app):
        await fake_telegram.user_sends(user, "/start")
        call = await fake_telegram.wait_for("sendMessage", chat_id=user, text=contains("Привет"))

Messages, users and chats are plain Bot API JSON dicts (``message["message_id"]``,
``message["chat"]["id"]``), the same shape Telegram sends.

Known differences from Telegram:

* webhooks may be plain http:// on any port; a failed delivery is recorded and the update
  kept pending (visible after deleteWebhook) but never retried;
* no automatic flood control: 429s happen only when injected (``inject_429``), while
  ``max_rate`` lets a test check the bot stayed within Telegram's limits;
* inline messages, media groups, stickers, payments, polls and business features are
  not implemented (calls answer 400 and land in ``unimplemented_calls``);
* photos keep the uploaded bytes as is (no resizing; sizes are nominal);
* Markdown parsing covers the documented markers, its error texts may differ in detail
  from Telegram's. HTML is parsed by a port of Telegram's own parser (``parse_html``):
  same refusals, same words, same byte offsets.

Strict where Telegram is strict, so a bot that passes here is not refused there: HTML
Telegram cannot parse, texts over 4096 and captions over 1024 characters (code points of
the text after entity parsing and trimming, as TDLib counts them), empty texts, inline
buttons with no action or with two (Telegram documents "exactly one"; its server would
silently drop one), invalid button URLs (``javascript:...``), callback data over 64
bytes, ``message_thread_id`` in a private chat, topic names over 128 characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from telegram import Bot
from telegram.constants import ReactionEmoji
from telegram.ext import Application, ApplicationBuilder

JSONDict: TypeAlias = dict[str, Any]
Matcher: TypeAlias = Callable[[Any], bool]

DEFAULT_TOKEN = "7000000001:AAFakeTokenForNavigatorTests_0123456"
LONG_POLL_CAP_S = 1.0
# Characters (code points) of the text after entity parsing: TDLib refuses a bot's text
# when utf8_length(text) > message_text_length_max (td/telegram/MessageContent.cpp).
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024

# Parameters whose form-encoded value is a JSON document (PTB json-encodes them).
JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "reply_parameters",
        "link_preview_options",
        "reaction",
        "commands",
        "scope",
        "allowed_updates",
        "media",
        "results",
        "permissions",
        "menu_button",
        "options",
        "explanation_entities",
        "question_entities",
        "message_ids",
        "rights",
        "prices",
        "button",
    }
)
# Parameters the Bot API documents as Integer (chat_id may also be "@username").
INT_FIELDS = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "message_thread_id",
        "reply_to_message_id",
        "offset",
        "limit",
        "timeout",
        "user_id",
        "cache_time",
        "max_connections",
        "icon_color",
        "until_date",
        "duration",
        "width",
        "height",
    }
)
BOOL_FIELDS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "show_alert",
        "is_big",
        "drop_pending_updates",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "has_spoiler",
        "disable_content_type_detection",
        "allow_paid_broadcast",
        "show_caption_above_media",
        "only_if_banned",
        "revoke_messages",
    }
)
# Methods that create a message in a chat (counted by the rate-limit helpers).
SEND_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "copyMessage", "forwardMessage"}
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Update types Telegram only delivers when they are listed in allowed_updates.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})
PRESENT_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})
FORUM_ICON_COLORS = (0x6FB9F0, 0xFFD67E, 0xCB86DB, 0x8EEE98, 0xFF93B2, 0xFB6F5F)
_COMMAND_RE = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{5,32})?(?![\w/])")
_AUTO_ENTITY_PATTERNS = (
    ("bot_command", _COMMAND_RE),
    ("mention", re.compile(r"(?<!\w)@[A-Za-z0-9_]{5,32}\b")),
    ("hashtag", re.compile(r"(?<!\w)#\w+")),
    ("url", re.compile(r"\bhttps?://[^\s<>\"]+")),
)
_BOT_COMMAND_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramApiError(Exception):
    """An error answer of the Bot API; raised inside method implementations."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> JSONDict:
        """The JSON body Telegram sends for this error."""
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(description: str) -> TelegramApiError:
    """A 400 answer, worded as Telegram words it ("Bad Request: ...")."""
    return TelegramApiError(400, f"Bad Request: {description}")


def forbidden(description: str) -> TelegramApiError:
    """A 403 answer, worded as Telegram words it ("Forbidden: ...")."""
    return TelegramApiError(403, f"Forbidden: {description}")


# --------------------------------------------------------------------------- records


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One Bot API request the bot made, with the answer the fake gave."""

    method: str
    params: JSONDict
    timestamp: float  # time.monotonic() when the request arrived
    status: int
    response: JSONDict

    @property
    def ok(self) -> bool:
        """Whether Telegram would have accepted the call."""
        return bool(self.response.get("ok"))

    @property
    def result(self) -> Any:
        """The ``result`` of a successful call (a Message dict, True, ...)."""
        return self.response.get("result")

    @property
    def description(self) -> str | None:
        """The error description of a failed call."""
        return self.response.get("description")

    def brief(self) -> str:
        """A one-line summary for assertion messages."""
        params = json.dumps(_printable(self.params), ensure_ascii=False)
        if len(params) > 240:
            params = params[:237] + "..."
        outcome = "ok" if self.ok else f"{self.status} {self.description}"
        return f"{self.method}({params}) -> {outcome}"


@dataclass
class WebhookDelivery:
    """One POST of an update to the bot's webhook."""

    update: JSONDict
    url: str
    secret_token: str | None
    status: int | None  # None when the connection failed
    body: str = ""
    error: str | None = None


@dataclass
class FakeUser:
    """A Telegram user (``to_api()`` is the Bot API ``User``)."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False
    started: bool = False  # has the user ever written to the bot (/start)?
    blocked: bool = False  # has the user blocked the bot?
    hide_forwards: bool = False  # privacy setting: forwards show only the name

    def to_api(self) -> JSONDict:
        """The Bot API ``User`` object."""
        return _drop_none(
            {
                "id": self.id,
                "is_bot": self.is_bot,
                "first_name": self.first_name,
                "last_name": self.last_name,
                "username": self.username,
                "language_code": self.language_code,
            }
        )

    @property
    def full_name(self) -> str:
        """First and last name, as Telegram shows it."""
        return " ".join(part for part in (self.first_name, self.last_name) if part)


@dataclass
class ForumTopicState:
    """A topic of a forum supergroup."""

    message_thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False


@dataclass
class FakeChat:
    """A chat: private (id == the user's id), group, or supergroup (maybe a forum)."""

    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    is_forum: bool = False
    members: dict[int, str] = field(default_factory=dict)  # user id -> status
    messages: dict[int, JSONDict] = field(default_factory=dict)
    topics: dict[int, ForumTopicState] = field(default_factory=dict)
    last_message_id: int = 0

    def to_api(self) -> JSONDict:
        """The Bot API ``Chat`` object (as embedded in messages)."""
        return _drop_none(
            {
                "id": self.id,
                "type": self.type,
                "title": self.title,
                "username": self.username,
                "first_name": self.first_name,
                "last_name": self.last_name,
                "is_forum": True if self.is_forum else None,
            }
        )

    def next_message_id(self) -> int:
        self.last_message_id += 1
        return self.last_message_id


@dataclass
class StoredFile:
    """A file Telegram stores (sent by a user or uploaded by the bot)."""

    file_id: str
    file_unique_id: str
    data: bytes
    kind: str  # "documents", "photos", ...
    file_name: str | None = None
    mime_type: str | None = None
    file_path: str | None = None


ChatRef: TypeAlias = "FakeChat | FakeUser | int | str"
MessageRef: TypeAlias = "Mapping[str, Any] | Call"


@dataclass
class _Fault:
    method: str | None
    chat_id: int | str | None
    remaining: int
    error: TelegramApiError

    def matches(self, method: str, params: Mapping[str, Any]) -> bool:
        if self.remaining <= 0:
            return False
        if self.method is None and method == "getUpdates":
            return False  # a catch-all fault must not be swallowed by the poller
        if self.method is not None and self.method.lower() != method.lower():
            return False
        return self.chat_id is None or params.get("chat_id") == self.chat_id


@dataclass
class _Hang:
    """Matching calls get no answer until released (a request lost in the network)."""

    method: str
    chat_id: int | str | None
    accept: bool  # Telegram did the call; only its answer is lost
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, method: str, params: Mapping[str, Any]) -> bool:
        return (not self.released.is_set() and self.method.lower() == method.lower()
                and (self.chat_id is None or params.get("chat_id") == self.chat_id))


@dataclass
class _Webhook:
    url: str = ""
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    ip_address: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None


# --------------------------------------------------------------------------- matchers


def contains(fragment: str) -> Matcher:
    """Matcher for :meth:`FakeTelegram.wait_for`: the value is a string containing ``fragment``."""

    def match(value: Any) -> bool:
        return isinstance(value, str) and fragment in value

    match.__name__ = f"contains({fragment!r})"
    return match


def matches(pattern: str) -> Matcher:
    """Matcher for :meth:`FakeTelegram.wait_for`: the value is a string matching ``pattern``."""
    compiled = re.compile(pattern)

    def match(value: Any) -> bool:
        return isinstance(value, str) and compiled.search(value) is not None

    match.__name__ = f"matches({pattern!r})"
    return match


def _expected_value(expected: Any) -> Any:
    if isinstance(expected, FakeUser | FakeChat):
        return expected.id
    return expected


def _params_match(params: Mapping[str, Any], criteria: Mapping[str, Any]) -> bool:
    for name, expected in criteria.items():
        actual = params.get(name)
        expected = _expected_value(expected)
        if callable(expected):
            if not expected(actual):
                return False
        elif actual != expected:
            return False
    return True


def _describe_criteria(criteria: Mapping[str, Any]) -> str:
    parts = []
    for name, expected in criteria.items():
        value = _expected_value(expected)
        shown = getattr(value, "__name__", None) if callable(value) else repr(value)
        parts.append(f"{name}={shown}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- text helpers


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _auto_entities(text: str) -> list[JSONDict]:
    """Entities Telegram detects in a user's plain text (commands, mentions, URLs...)."""
    found: list[JSONDict] = []
    for kind, pattern in _AUTO_ENTITY_PATTERNS:
        for m in pattern.finditer(text):
            found.append(
                {
                    "type": kind,
                    "offset": utf16_len(text[: m.start()]),
                    "length": utf16_len(m.group()),
                }
            )
    return sorted(found, key=lambda e: (e["offset"], -e["length"]))


class _HtmlParseError(Exception):
    pass


# Telegram's HTML parse mode, ported from the parser the Bot API server runs (TDLib,
# td/telegram/MessageEntity.cpp: parse_html and decode_html_entity), byte for byte on the
# UTF-8 text, so the same input is refused with the same words and byte offsets:
# * a `<` always starts a tag: `a < b` is "Unsupported start tag "" at byte offset 2";
# * only b strong i em u ins s strike del span(class="tg-spoiler") tg-spoiler a tg-emoji
#   code pre blockquote are known; end tags must match the innermost open tag (`</>`
#   closes whatever is open); every tag must be closed;
# * entities: &lt; &gt; &amp; &quot; and numeric ones (1..0x10FFFE, `&#x` lowercase,
#   at most 7 decimal / 6 hex digits); anything else (`&nbsp;`, a lone `&`) stays text;
#   a numeric one that leaves a lone surrogate is refused;
# * a text link whose URL Telegram finds invalid (javascript:...) silently loses its link.
_HTML_TAGS = frozenset({"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins",
                        "tg-spoiler", "tg-emoji", "span", "pre", "code", "blockquote"})
_HTML_SPACE = frozenset(b" \t\r\n\0\v")
_SIMPLE_ENTITIES = {"i": "italic", "em": "italic", "b": "bold", "strong": "bold",
                    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
                    "u": "underline", "ins": "underline", "tg-spoiler": "spoiler"}


def _decode_html_entity(data: bytes, pos: int) -> tuple[int, int]:
    """(code point, position after it) of the entity at `pos`; code 0 if it is none."""

    def at(i: int) -> int:
        return data[i] if i < len(data) else 0

    end = pos + 1
    code = 0
    if at(pos + 1) == ord("#"):
        end += 1
        if at(pos + 2) == ord("x"):
            end += 1
            while chr(at(end)) in "0123456789abcdefABCDEF" and at(end):
                code = code * 16 + int(chr(at(end)), 16)
                end += 1
        else:
            while ord("0") <= at(end) <= ord("9"):
                code = code * 10 + at(end) - ord("0")
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while ord("a") <= (at(end) | 0x20) <= ord("z"):
            end += 1
        name = data[pos + 1:end]
        code = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}.get(name, 0)
        if code == 0:
            return 0, pos
    return code, end + 1 if at(end) == ord(";") else end


def link_problem(url: str) -> str | None:
    """Why Telegram finds `url` invalid for a text link or a URL button, in its words, or
    None if it is valid (TDLib's LinkManager::check_link and parse_url, simplified:
    http(s) with a dotted host and a sane port, or tg:// ton:// links)."""
    scheme, separator, rest = url.partition("://")
    if re.match(r"(?i)(tg|ton|tonsite):", url):
        body = url.split(":", 1)[1].removeprefix("//")
        return None if re.fullmatch(r"[A-Za-z0-9_.-]+([/?].*)?", body, re.DOTALL) else \
            "Wrong tg URL"
    if separator and scheme.lower() not in ("http", "https"):
        return "Unsupported URL protocol"
    authority = re.split(r"[/?#]", rest if separator else url, maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    if ":" in host and not host.endswith("]"):
        host, _, port = host.rpartition(":")
        if not port.isdigit() or not 0 < int(port) <= 65535:
            return "Wrong port number specified in the URL"
    if not host:
        return "URL host is empty"
    if "." not in host and not host.startswith("["):
        return "Wrong HTTP URL"
    return None


def parse_html(source: str) -> tuple[str, list[JSONDict]]:
    """Telegram's HTML parse mode: the visible text and its entities (UTF-16 offsets)."""
    data = source.encode("utf-8", "surrogatepass")

    def at(i: int) -> int:
        return data[i] if i < len(data) else 0

    out = bytearray()
    utf16 = 0
    recheck_utf8 = False
    open_tags: list[tuple[str, str, int, int]] = []  # name, argument, utf16 offset, out pos
    entities: list[JSONDict] = []
    i = 0
    while i < len(data):
        c = data[i]
        if c == ord("&"):
            code, after = _decode_html_entity(data, i)
            if code:
                utf16 += 1 + (code > 0xFFFF)
                recheck_utf8 = recheck_utf8 or 0xD800 <= code <= 0xDFFF
                out += chr(code).encode("utf-8", "surrogatepass")
                i = after
                continue
        if c != ord("<"):
            if c & 0xC0 != 0x80:
                utf16 += 1 + (c >= 0xF0)
            out.append(c)
            i += 1
            continue
        begin = i
        i += 1
        if at(i) != ord("/"):
            while at(i) not in _HTML_SPACE and at(i) != ord(">"):
                i += 1
            if at(i) == 0:
                raise _HtmlParseError(f"Unclosed start tag at byte offset {begin}")
            tag = data[begin + 1:i].decode("utf-8", "replace").lower()
            if tag not in _HTML_TAGS:
                raise _HtmlParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            while at(i) != ord(">"):
                while at(i) and at(i) in _HTML_SPACE:
                    i += 1
                if at(i) == ord(">"):
                    break
                name_start = i
                while at(i) not in _HTML_SPACE and at(i) not in b"=>/\"'":
                    i += 1
                attribute = data[name_start:i].decode("utf-8", "replace")
                if not attribute:
                    raise _HtmlParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
                while at(i) and at(i) in _HTML_SPACE:
                    i += 1
                if at(i) != ord("="):
                    if at(i) == 0:
                        raise _HtmlParseError(
                            f'Unclosed start tag "{tag}" at byte offset {begin}')
                    if tag == "blockquote" and attribute == "expandable":
                        argument = "1"
                    continue
                i += 1
                while at(i) and at(i) in _HTML_SPACE:
                    i += 1
                if at(i) == 0:
                    raise _HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if at(i) not in b"'\"":
                    token_start = i
                    while chr(at(i)).isascii() and (chr(at(i)).isalnum() or at(i) in b".-") \
                            and at(i):
                        i += 1
                    value = data[token_start:i].decode().lower()
                    if at(i) not in _HTML_SPACE and at(i) != ord(">"):
                        raise _HtmlParseError(
                            f"Unexpected end of name token at byte offset {token_start}")
                else:
                    quote = at(i)
                    i += 1
                    raw = bytearray()
                    while at(i) != quote and at(i):
                        if at(i) == ord("&"):
                            code, after = _decode_html_entity(data, i)
                            if code:
                                raw += chr(code).encode("utf-8", "surrogatepass")
                                i = after
                                continue
                        raw.append(at(i))
                        i += 1
                    if at(i) == quote:
                        i += 1
                    value = raw.decode("utf-8", "replace")
                if at(i) == 0:
                    raise _HtmlParseError(f"Unclosed start tag at byte offset {begin}")
                if tag == "a" and attribute == "href":
                    argument = value
                elif tag == "code" and attribute == "class" and value.startswith("language-"):
                    argument = value[len("language-"):]
                elif tag == "span" and attribute == "class" and value.startswith("tg-"):
                    argument = value[len("tg-"):]
                elif tag == "tg-emoji" and attribute == "emoji-id":
                    argument = value
                elif tag == "blockquote" and attribute == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise _HtmlParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
            open_tags.append((tag, argument, utf16, len(out)))
            i += 1  # past ">"
            continue
        if not open_tags:
            raise _HtmlParseError(f"Unexpected end tag at byte offset {begin}")
        while at(i) not in _HTML_SPACE and at(i) != ord(">"):
            i += 1
        end_tag = data[begin + 2:i].decode("utf-8", "replace").lower()
        while at(i) and at(i) in _HTML_SPACE:
            i += 1
        if at(i) != ord(">"):
            raise _HtmlParseError(f"Unclosed end tag at byte offset {begin}")
        i += 1
        tag, argument, start, start_pos = open_tags.pop()
        if end_tag and end_tag != tag:
            raise _HtmlParseError(f'Unmatched end tag at byte offset {begin}, expected '
                                  f'"</{tag}>", found "</{end_tag}>"')
        if utf16 > start:
            _add_html_entity(entities, tag, argument, start, utf16 - start,
                             bytes(out[start_pos:]).decode("utf-8", "surrogatepass"))
    if open_tags:
        raise _HtmlParseError(
            f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    try:
        text = bytes(out).decode("utf-8")
    except UnicodeDecodeError:
        if not recheck_utf8:
            raise
        raise _HtmlParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, check "
            "for unmatched surrogate code units") from None
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    return text, sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _add_html_entity(entities: list[JSONDict], tag: str, argument: str, offset: int,
                     length: int, content: str) -> None:
    span = {"offset": offset, "length": length}
    last = entities[-1] if entities else None
    same_span = last is not None and (last["offset"], last["length"]) == (offset, length)
    if tag in _SIMPLE_ENTITIES or (tag == "span" and argument == "spoiler"):
        entities.append({"type": _SIMPLE_ENTITIES.get(tag, "spoiler"), **span})
    elif tag == "tg-emoji":
        if not argument.isdigit() or int(argument) == 0:
            raise _HtmlParseError("Invalid custom emoji identifier specified")
        entities.append({"type": "custom_emoji", "custom_emoji_id": argument, **span})
    elif tag == "a":
        url = argument or content
        user = re.fullmatch(r"tg://user\?id=(\d+)", url)
        if user:
            entities.append({"type": "text_mention", "user": {"id": int(user.group(1))},
                             **span})
        elif link_problem(url) is None:  # else the text stays, without a link
            entities.append({"type": "text_link", "url": url, **span})
    elif tag == "pre":
        if same_span and last is not None and last["type"] == "code" and last.get("language"):
            last["type"] = "pre"
        else:
            entities.append({"type": "pre", **span})
    elif tag == "code":
        if same_span and last is not None and last["type"] == "pre" and argument:
            last["language"] = argument
        else:
            entities.append({"type": "code", **span, **({"language": argument}
                                                        if argument else {})})
    elif tag == "blockquote":
        entities.append({"type": "expandable_blockquote" if argument else "blockquote",
                         **span})


def _strip_text(text: str, entities: list[JSONDict]) -> tuple[str, list[JSONDict]]:
    """Telegram trims leading and trailing whitespace of texts and captions."""
    stripped = text.strip()
    shift = utf16_len(text) - utf16_len(text.lstrip())
    limit = utf16_len(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] - shift + entity["length"], limit)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def format_text(
    text: str, parse_mode: str | None, entities: list[JSONDict] | None
) -> tuple[str, list[JSONDict]]:
    """Apply parse_mode as Telegram does; returns the visible text and its entities."""
    if entities:
        return _strip_text(text, list(entities))
    mode = (parse_mode or "").lower()
    if mode == "html":
        try:
            plain, found = parse_html(text)
        except _HtmlParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
        return _strip_text(plain, found)
    if mode in ("markdown", "markdownv2"):
        try:
            plain, found = _MarkdownParser(text, v2=mode == "markdownv2").parse()
        except _MarkdownParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
        return _strip_text(plain, found)
    if mode == "":
        return _strip_text(text, [])
    raise bad_request(f"unsupported parse mode {parse_mode}")


class _MarkdownParseError(Exception):
    pass


_MD2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MD_ENTITY_NAMES = {
    "*": "bold",
    "_": "italic",
    "__": "underline",
    "~": "strikethrough",
    "||": "spoiler",
    "[": "text_link",
    ">": "blockquote",
}


class _MarkdownParser:
    """Telegram's MarkdownV2 (``v2=True``) and legacy Markdown parse modes.

    Covers bold, italic, underline, strikethrough, spoiler, inline links, inline code,
    pre blocks (with language) and ``>`` block quotes; in MarkdownV2 an unescaped
    reserved character is refused as Telegram refuses it.
    """

    def __init__(self, text: str, *, v2: bool) -> None:
        self.text, self.v2 = text, v2
        self.markers = ("||", "__", "*", "_", "~") if v2 else ("*", "_")
        self.i = 0
        self.parts: list[str] = []
        self.position = 0
        self.stack: list[tuple[str, int, int]] = []  # marker, utf16 start, text index
        self.entities: list[JSONDict] = []

    def parse(self) -> tuple[str, list[JSONDict]]:
        text = self.text
        while self.i < len(text):
            if self.v2 and self._at_line_start() and text[self.i] == ">":
                self._open_quote()
                continue
            if self.v2 and text[self.i] == "\n":
                self._close_quote_if_ends()
            self._step()
        self._close_quote_if_ends(final=True)
        if self.stack:
            marker, _, index = self.stack[-1]
            raise _MarkdownParseError(self._unclosed(marker, index))
        entities = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), entities

    def _step(self) -> None:
        text, ch = self.text, self.text[self.i]
        if ch == "\\" and self.i + 1 < len(text) and (self.v2 or text[self.i + 1] in "_*`["):
            self._emit(text[self.i + 1])
            self.i += 2
        elif ch == "`":
            self._code()
        elif ch == "[":
            self.stack.append(("[", self.position, self.i))
            self.i += 1
        elif ch == "]" and self.stack and self.stack[-1][0] == "[":
            self._link()
        elif marker := next((m for m in self.markers if text.startswith(m, self.i)), None):
            self._toggle(marker)
        elif self.v2 and ch in _MD2_RESERVED:
            raise _MarkdownParseError(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        else:
            self._emit(ch)
            self.i += 1

    def _emit(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.position += utf16_len(chunk)

    def _add_entity(self, marker: str, start: int, **extra: Any) -> None:
        if self.position > start:
            entity = {"type": _MD_ENTITY_NAMES.get(marker, marker), **extra}
            self.entities.append({**entity, "offset": start, "length": self.position - start})

    def _toggle(self, marker: str) -> None:
        if self.stack and self.stack[-1][0] == marker:
            _, start, _ = self.stack.pop()
            self._add_entity(marker, start)
        else:
            self.stack.append((marker, self.position, self.i))
        self.i += len(marker)

    def _find_closing(self, token: str, start: int) -> int:
        index = start
        while index < len(self.text):
            if self.text[index] == "\\" and self.v2:
                index += 2
            elif self.text.startswith(token, index):
                return index
            else:
                index += 1
        return -1

    def _unescape(self, chunk: str) -> str:
        return re.sub(r"\\(.)", r"\1", chunk, flags=re.DOTALL) if self.v2 else chunk

    def _code(self) -> None:
        fence = "```" if self.text.startswith("```", self.i) else "`"
        end = self._find_closing(fence, self.i + len(fence))
        if end < 0:
            raise _MarkdownParseError(self._unclosed(fence, self.i))
        body = self.text[self.i + len(fence) : end]
        extra: JSONDict = {}
        if fence == "```":
            first, newline, rest = body.partition("\n")
            if newline and first and " " not in first:
                extra["language"], body = first, rest
        start = self.position
        self._emit(self._unescape(body))
        self._add_entity("pre" if fence == "```" else "code", start, **extra)
        self.i = end + len(fence)

    def _link(self) -> None:
        _, start, index = self.stack.pop()
        if not self.text.startswith("(", self.i + 1):
            raise _MarkdownParseError(self._unclosed("[", index))
        end = self._find_closing(")", self.i + 2)
        if end < 0:
            raise _MarkdownParseError(self._unclosed("[", index))
        url = self._unescape(self.text[self.i + 2 : end])
        match = re.fullmatch(r"tg://user\?id=(\d+)", url)
        if match:
            self._add_entity("text_mention", start, user={"id": int(match.group(1))})
        else:
            self._add_entity("[", start, url=url)
        self.i = end + 1

    def _at_line_start(self) -> bool:
        return self.i == 0 or self.text[self.i - 1] == "\n"

    def _open_quote(self) -> None:
        if not (self.stack and self.stack[-1][0] == ">"):
            self.stack.append((">", self.position, self.i))
        self.i += 1

    def _close_quote_if_ends(self, *, final: bool = False) -> None:
        if not (self.stack and self.stack[-1][0] == ">"):
            return
        if final or not self.text.startswith(">", self.i + 1):
            _, start, _ = self.stack.pop()
            self._add_entity(">", start)

    def _unclosed(self, marker: str, index: int) -> str:
        offset = len(self.text[:index].encode())
        if not self.v2:
            return f"Can't find end of the entity starting at byte offset {offset}"
        name = {"`": "Code", "```": "Pre"}.get(marker, _MD_ENTITY_NAMES.get(marker, marker))
        return f"Can't find end of {name.title().replace('_', '')} entity at byte offset {offset}"


# --------------------------------------------------------------------------- request decoding


def _decode_value(name: str, value: Any) -> Any:
    if name in JSON_FIELDS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None
    if name in INT_FIELDS and isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value)
    if name in BOOL_FIELDS and isinstance(value, str):
        return value.lower() in ("true", "1")
    return value


async def decode_params(request: web.Request) -> JSONDict:
    """Decode query string plus form / multipart / JSON body into typed Bot API params."""
    raw: JSONDict = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                raw.update(body)
        else:
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    raw[name] = Upload(
                        filename=value.filename,
                        content_type=value.content_type,
                        data=value.file.read(),
                    )
                else:
                    raw[name] = value
    return {name: _decode_value(name, value) for name, value in raw.items()}


# --------------------------------------------------------------------------- misc helpers


def _drop_none(data: JSONDict) -> JSONDict:
    return {key: value for key, value in data.items() if value is not None}


def _printable(value: Any) -> Any:
    if isinstance(value, Upload):
        return f"<upload {value.filename} {len(value.data)} bytes>"
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value


def _now() -> int:
    return int(time.time())


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _shallow_reply(message: Mapping[str, Any]) -> JSONDict:
    """A replied-to message as Telegram embeds it: without its own reply_to_message."""
    return {key: value for key, value in message.items() if key != "reply_to_message"}


# What a copy or a forward carries over.
_CONTENT_KEYS = (
    "text", "entities", "photo", "document", "animation", "video", "voice", "audio",
    "sticker", "video_note", "caption", "caption_entities",
)
# The placeholder accounts Telegram puts in ``from`` when a message is sent as a chat.
GROUP_ANONYMOUS_BOT = {
    "id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"
}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
_PAST_TENSE = {"copy": "copied", "forward": "forwarded"}


# --------------------------------------------------------------------------- the server


class FakeTelegram:
    """A fake Telegram Bot API server bound to 127.0.0.1 on a free port.

    Start it with ``await start()`` (or ``async with FakeTelegram() as fake``); point the
    bot at :attr:`base_url` / :attr:`base_file_url`, or use :meth:`application_builder`.
    """

    def __init__(self, token: str = DEFAULT_TOKEN, *, bot_username: str = "navigator_test_bot"):
        self.token = token
        bot_id = int(token.split(":", 1)[0])
        self.bot = FakeUser(
            id=bot_id, first_name="Navigator Test", username=bot_username, is_bot=True
        )
        self.privacy_mode = True  # bots that are not admins see only commands/replies/mentions
        self.long_poll_cap_s = LONG_POLL_CAP_S
        self.calls: list[Call] = []
        self.unimplemented_calls: list[Call] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.users: dict[int, FakeUser] = {}
        self.chats: dict[int, FakeChat] = {}
        self.files: dict[str, StoredFile] = {}
        self.callback_queries: dict[str, JSONDict] = {}
        self.callback_answers: dict[str, JSONDict] = {}
        self.reactions: dict[tuple[int, int], list[JSONDict]] = {}
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        self.bot_settings: dict[str, str] = {}
        self.sends: list[tuple[float, int]] = []  # (monotonic time, chat id) of bot sends
        self._faults: list[_Fault] = []
        self._hangs: list[_Hang] = []
        self.hung_calls: list[Call] = []  # calls answered with nothing (see hang())
        # Called with the new offset whenever getUpdates acknowledges updates: a test can
        # kill the bot at the moment Telegram forgets them.
        self.on_updates_confirmed: Callable[[int], None] | None = None
        self._updates: list[JSONDict] = []
        self._update_ids = itertools.count(100_000_001)
        self._user_ids = itertools.count(200_000_001)
        self._group_ids = itertools.count(4_000_001)
        self._supergroup_ids = itertools.count(1_000_000_001)
        self._file_counter = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._allowed_updates: list[str] = []
        self._updates_changed = asyncio.Event()
        self._poll_generation = 0
        self._webhook = _Webhook()
        self._consumed: set[int] = set()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0
        self._methods: dict[str, Callable[[JSONDict], Awaitable[Any]]] = self._method_table()
        self._methods_lower = {name.lower(): name for name in self._methods}

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind to a free port on 127.0.0.1 and start serving."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_not_found)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = _free_socket()
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._session = ClientSession(timeout=ClientTimeout(total=10))

    async def stop(self) -> None:
        """Stop serving and close the webhook client."""
        for hang in self._hangs:
            hang.released.set()
        self._poll_generation += 1
        self._wake_pollers()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Value for ``ApplicationBuilder().base_url(...)`` (the token is appended by PTB)."""
        return f"{self.root_url}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``ApplicationBuilder().base_file_url(...)``."""
        return f"{self.root_url}/file/bot"

    def application_builder(self) -> ApplicationBuilder:
        """A PTB ``ApplicationBuilder`` with token, base_url and base_file_url set."""
        return (
            ApplicationBuilder()
            .token(self.token)
            .base_url(self.base_url)
            .base_file_url(self.base_file_url)
        )

    def make_bot(self) -> Bot:
        """A bare PTB ``Bot`` pointed at the fake (use ``async with bot:`` to initialize)."""
        return Bot(self.token, base_url=self.base_url, base_file_url=self.base_file_url)

    # ----------------------------------------------------------------- world building

    def add_user(
        self,
        first_name: str = "Test",
        *,
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = "ru",
        started: bool = False,
        user_id: int | None = None,
    ) -> FakeUser:
        """Create a user and their private chat with the bot.

        ``started=False`` means the user never wrote to the bot, so the bot cannot message
        them yet (403 "bot can't initiate conversation with a user"), as on Telegram.
        """
        user = FakeUser(
            id=user_id or next(self._user_ids),
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
            started=started,
        )
        self.users[user.id] = user
        self.chats[user.id] = FakeChat(
            id=user.id,
            type="private",
            first_name=first_name,
            last_name=last_name,
            username=username,
            members={user.id: "member", self.bot.id: "member"},
        )
        return user

    def add_supergroup(
        self,
        title: str,
        *,
        forum: bool = False,
        members: Iterable[FakeUser] = (),
        admins: Iterable[FakeUser] = (),
        username: str | None = None,
        bot_status: str = "administrator",
    ) -> FakeChat:
        """Create a supergroup (a forum if ``forum=True``); the bot is an admin by default."""
        chat_id = -(1_000_000_000_000 + next(self._supergroup_ids))
        chat = FakeChat(id=chat_id, type="supergroup", title=title, username=username)
        chat.is_forum = forum
        return self._populate(chat, members, admins, bot_status)

    def add_group(
        self,
        title: str,
        *,
        members: Iterable[FakeUser] = (),
        admins: Iterable[FakeUser] = (),
        bot_status: str = "member",
    ) -> FakeChat:
        """Create a basic (non-super) group; the bot is a plain member by default."""
        chat = FakeChat(id=-next(self._group_ids), type="group", title=title)
        return self._populate(chat, members, admins, bot_status)

    def _populate(
        self,
        chat: FakeChat,
        members: Iterable[FakeUser],
        admins: Iterable[FakeUser],
        bot_status: str,
    ) -> FakeChat:
        for user in members:
            chat.members[user.id] = "member"
        for user in admins:
            chat.members[user.id] = "administrator"
        chat.members[self.bot.id] = bot_status
        self.chats[chat.id] = chat
        return chat

    def add_channel(self, title: str, *, username: str | None = None) -> FakeChat:
        """Create a channel (the bot is not in it); members may post "as" it in groups."""
        chat_id = -(1_000_000_000_000 + next(self._supergroup_ids))
        chat = FakeChat(id=chat_id, type="channel", title=title, username=username)
        self.chats[chat.id] = chat
        return chat

    def set_member_status(self, chat: FakeChat, user: FakeUser, status: str) -> None:
        """Set a user's status in a chat: creator, administrator, member, restricted,
        left or kicked (use ``self.bot`` as the user to change the bot's own status)."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        chat.members[user.id] = status

    def block_bot(self, user: FakeUser, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: sends answer 403 "bot was blocked"."""
        user.blocked = blocked

    def add_forum_topic(self, chat: FakeChat, name: str, *, icon_color: int = 0x6FB9F0) -> int:
        """Create a topic in a forum as a user would; returns its message_thread_id."""
        return self._create_topic(chat, name, icon_color, None, creator=self.bot.to_api())

    # ----------------------------------------------------------------- users act

    async def user_sends(
        self,
        user: FakeUser,
        text: str,
        *,
        chat: FakeChat | None = None,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
        entities: list[JSONDict] | None = None,
    ) -> JSONDict:
        """The user sends ``text`` (in their private chat with the bot unless ``chat``).

        Commands, mentions, hashtags and URLs get entities as Telegram detects them.
        Returns the Message dict (delivered to the bot as a ``message`` update).
        """
        content: JSONDict = {"text": text}
        found = entities if entities is not None else _auto_entities(text)
        if found:
            content["entities"] = found
        return await self._user_message(user, chat, content, reply_to, thread_id)

    async def agent_says(
        self,
        group: FakeChat,
        agent: FakeUser,
        text: str,
        *,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """A group member writes in ``group``, optionally replying or inside a forum topic."""
        return await self.user_sends(
            agent, text, chat=group, reply_to=reply_to, thread_id=thread_id
        )

    async def anonymous_admin_says(
        self,
        group: FakeChat,
        text: str,
        *,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """An admin who "remains anonymous" writes in ``group``: the message comes from
        the group itself (``sender_chat``), ``from`` is the placeholder @GroupAnonymousBot."""
        return await self._sent_as(group, group, GROUP_ANONYMOUS_BOT, text, reply_to, thread_id)

    async def channel_says(
        self,
        group: FakeChat,
        channel: FakeChat,
        text: str,
        *,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """A member writes in ``group`` on behalf of ``channel`` ("send as"):
        ``sender_chat`` is the channel, ``from`` the placeholder @Channel_Bot."""
        return await self._sent_as(group, channel, CHANNEL_BOT, text, reply_to, thread_id)

    async def _sent_as(
        self,
        group: FakeChat,
        sender_chat: FakeChat,
        placeholder: JSONDict,
        text: str,
        reply_to: MessageRef | None,
        thread_id: int | None,
    ) -> JSONDict:
        if group.type != "supergroup":
            raise AssertionError("only supergroups let members write as a chat")
        content: JSONDict = {"text": text, "sender_chat": sender_chat.to_api()}
        if found := _auto_entities(text):
            content["entities"] = found
        reply_id = self._message_id_of(reply_to) if reply_to is not None else None
        message = self._create_message(
            group, dict(placeholder), content, thread_id=thread_id, reply_to_id=reply_id
        )
        if self._bot_sees(group, message):
            await self._push_update("message", message)
        return message

    async def user_sends_document(
        self,
        user: FakeUser,
        data: bytes,
        *,
        file_name: str = "document.pdf",
        mime_type: str = "application/pdf",
        caption: str | None = None,
        chat: FakeChat | None = None,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """The user sends a document; its bytes are served by getFile + the file route."""
        stored = self._store_file(data, "documents", file_name=file_name, mime_type=mime_type)
        content: JSONDict = {"document": self._document_api(stored)}
        self._add_caption(content, caption)
        return await self._user_message(user, chat, content, reply_to, thread_id)

    async def user_sends_photo(
        self,
        user: FakeUser,
        data: bytes,
        *,
        width: int = 1280,
        height: int = 960,
        caption: str | None = None,
        chat: FakeChat | None = None,
        reply_to: MessageRef | None = None,
        thread_id: int | None = None,
    ) -> JSONDict:
        """The user sends a photo (two PhotoSize entries, largest last, as Telegram does)."""
        content: JSONDict = {"photo": self._photo_sizes(data, width, height)}
        self._add_caption(content, caption)
        return await self._user_message(user, chat, content, reply_to, thread_id)

    async def user_edits(self, user: FakeUser, message: MessageRef, text: str) -> JSONDict:
        """The user edits the text of a message they sent; the bot gets ``edited_message``."""
        chat, current = self._resolve_message(message)
        if current["from"]["id"] != user.id or "text" not in current:
            raise AssertionError("only the sender can edit a text message")
        current["text"] = text
        current.pop("entities", None)
        if found := _auto_entities(text):
            current["entities"] = found
        current["edit_date"] = _now()
        if self._bot_sees(chat, current):
            await self._push_update("edited_message", dict(current))
        return current

    async def user_presses(
        self, user: FakeUser, message: MessageRef, callback_data: str
    ) -> JSONDict:
        """The user presses the inline button with ``callback_data`` on a bot message.

        Fails the test if the message (as it is now, after edits) has no such button.
        Returns the CallbackQuery dict; its ``id`` is what answerCallbackQuery must carry.
        """
        chat, current = self._resolve_message(message)
        buttons = [
            button
            for row in current.get("reply_markup", {}).get("inline_keyboard", [])
            for button in row
        ]
        if not any(button.get("callback_data") == callback_data for button in buttons):
            offered = [button.get("callback_data") for button in buttons]
            raise AssertionError(
                f"message {current['message_id']} in chat {chat.id} has no button with "
                f"callback_data={callback_data!r}; buttons offered: {offered}"
            )
        user.started = user.started or chat.type == "private"
        query_id = f"{next(self._query_ids)}{secrets.randbelow(10**9):09d}"
        query = {
            "id": query_id,
            "from": user.to_api(),
            "message": current,
            "chat_instance": str(zlib.crc32(f"{chat.id}:{self.bot.id}".encode())),
            "data": callback_data,
        }
        self.callback_queries[query_id] = query
        await self._push_update("callback_query", query)
        return query

    async def _user_message(
        self,
        user: FakeUser,
        chat: FakeChat | None,
        content: JSONDict,
        reply_to: MessageRef | None,
        thread_id: int | None,
    ) -> JSONDict:
        target = chat or self.chats[user.id]
        if target.type == "private":
            user.started, user.blocked = True, False
        elif target.members.get(user.id) not in PRESENT_STATUSES:
            raise AssertionError(f"{user.full_name} is not a member of {target.title!r}")
        reply_id = self._message_id_of(reply_to) if reply_to is not None else None
        message = self._create_message(
            target, user.to_api(), content, thread_id=thread_id, reply_to_id=reply_id
        )
        if self._bot_sees(target, message):
            await self._push_update("message", message)
        return message

    def _bot_sees(self, chat: FakeChat, message: Mapping[str, Any]) -> bool:
        """Privacy mode: a non-admin bot in a group sees commands, replies to it, mentions."""
        if chat.type == "private":
            return True
        status = chat.members.get(self.bot.id)
        if status not in PRESENT_STATUSES:
            return False
        if status in ("administrator", "creator") or not self.privacy_mode:
            return True
        text = message.get("text") or message.get("caption") or ""
        replied = message.get("reply_to_message") or {}
        replied_to_bot = (
            replied.get("from", {}).get("id") == self.bot.id
            and "forum_topic_created" not in replied
        )
        return text.startswith("/") or f"@{self.bot.username}" in text or replied_to_bot

    # ----------------------------------------------------------------- observing the bot

    async def wait_for(
        self,
        method: str,
        *,
        timeout: float = 5.0,
        ok: bool | None = True,
        where: Mapping[str, Any] | None = None,
        **match: Any,
    ) -> Call:
        """Wait for the first not-yet-consumed call of ``method`` whose params match.

        ``match`` values are compared for equality (a FakeUser/FakeChat stands for its id)
        or called when callable (see :func:`contains`, :func:`matches`). ``ok=True`` (the
        default) only matches calls the fake accepted, ``ok=False`` only failed ones,
        ``ok=None`` both. Use ``where={...}`` for params named ``timeout`` or ``ok``.
        A call returned once is never returned again. On timeout raises AssertionError
        listing the recent calls.
        """
        criteria = {**(where or {}), **match}
        deadline = time.monotonic() + timeout
        while True:
            for index, call in enumerate(self.calls):
                if index not in self._consumed and self._call_matches(call, method, ok, criteria):
                    self._consumed.add(index)
                    return call
            if time.monotonic() >= deadline:
                raise AssertionError(self._miss_report(method, criteria, timeout))
            await asyncio.sleep(0.01)

    async def assert_no_call(
        self, method: str, *, within: float = 0.3, ok: bool | None = True, **match: Any
    ) -> None:
        """Fail if a matching (unconsumed) call of ``method`` arrives within ``within`` s."""
        try:
            call = await self.wait_for(method, timeout=within, ok=ok, **match)
        except AssertionError:
            return
        raise AssertionError(f"unexpected call: {call.brief()}")

    def calls_to(self, method: str, *, ok: bool | None = None, **match: Any) -> list[Call]:
        """All recorded calls of ``method`` matching ``match`` (consumed or not)."""
        return [call for call in self.calls if self._call_matches(call, method, ok, match)]

    def messages_in(self, chat: ChatRef, *, thread_id: int | None = None) -> list[JSONDict]:
        """Messages the bot has sent to a chat, oldest first, with edits applied and
        deleted ones left out; ``thread_id`` narrows to one forum topic."""
        target = self._chat_or_fail(chat)
        return [
            message
            for message in target.messages.values()
            if message["from"]["id"] == self.bot.id
            and "forum_topic_created" not in message
            and (thread_id is None or message.get("message_thread_id") == thread_id)
        ]

    def texts_in(self, chat: ChatRef, *, thread_id: int | None = None) -> list[str]:
        """Texts (or captions) of :meth:`messages_in`."""
        return [
            message.get("text", message.get("caption", ""))
            for message in self.messages_in(chat, thread_id=thread_id)
        ]

    def reactions_on(self, message: MessageRef) -> list[str]:
        """Emoji the bot has set as its reaction on a message."""
        chat, current = self._resolve_message(message)
        reaction = self.reactions.get((chat.id, current["message_id"]), [])
        return [item.get("emoji") or item.get("custom_emoji_id", "") for item in reaction]

    def commands_for(
        self, scope: JSONDict | None = None, language_code: str = ""
    ) -> list[JSONDict]:
        """Commands stored by setMyCommands for a scope (default scope if None) + language."""
        return self.commands.get((_scope_key(scope), language_code), [])

    def send_times(self, chat: ChatRef | None = None) -> list[float]:
        """Monotonic timestamps of the bot's successful sends (to one chat, or all)."""
        chat_id = None if chat is None else self._chat_or_fail(chat).id
        return [at for at, target in self.sends if chat_id is None or target == chat_id]

    def max_rate(self, chat: ChatRef | None = None, window_s: float = 1.0) -> int:
        """The most sends the bot made within any ``window_s`` seconds (one chat or all).

        Telegram's limits: about 1 message/s in one chat, 20 messages/min in a group,
        30 messages/s in total; e.g. ``assert fake.max_rate(group, 60) <= 20``.
        """
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        times = self.send_times(chat)
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    @property
    def last_webhook_status(self) -> int | None:
        """HTTP status the bot's webhook gave to the latest delivery (None: no delivery
        or the connection failed)."""
        return self.webhook_deliveries[-1].status if self.webhook_deliveries else None

    @property
    def webhook_url(self) -> str:
        """The webhook URL the bot has set ("" when polling)."""
        return self._webhook.url

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates queued for getUpdates and not yet confirmed by the bot."""
        return list(self._updates)

    # ----------------------------------------------------------------- fault injection

    def inject_429(
        self,
        method: str | None = None,
        *,
        count: int = 1,
        retry_after: int = 1,
        chat_id: int | str | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` (any method but getUpdates if None),
        optionally only to ``chat_id``, answer 429 "Too Many Requests: retry after N"."""
        error = TelegramApiError(
            429,
            f"Too Many Requests: retry after {retry_after}",
            {"retry_after": retry_after},
        )
        self._faults.append(_Fault(method, _expected_value(chat_id), count, error))

    def inject_error(
        self,
        method: str | None,
        code: int,
        description: str,
        *,
        count: int = 1,
        chat_id: int | str | None = None,
    ) -> None:
        """Make the next ``count`` matching calls fail with ``code`` and ``description``,
        e.g. ``inject_error("sendMessage", 403, "Forbidden: bot was blocked by the user")``
        or ``inject_error(None, 502, "Bad Gateway")``."""
        self._faults.append(
            _Fault(method, _expected_value(chat_id), count, TelegramApiError(code, description))
        )

    def hang(self, method: str, *, chat_id: int | str | None = None,
             accept: bool = False) -> Callable[[], None]:
        """Matching calls of ``method`` get no answer until the returned function is
        called. With ``accept`` Telegram performs the call first (the message is in the
        chat) and only the answer is lost; without, the request never arrived."""
        hang = _Hang(method, _expected_value(chat_id), accept)
        self._hangs.append(hang)
        return hang.released.set

    # ----------------------------------------------------------------- HTTP handlers

    async def _handle_api(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        name = request.match_info["method"]
        try:
            params = await decode_params(request)
        except TelegramApiError as exc:
            return self._record(name, {}, started, exc.code, exc.payload())
        if request.match_info["token"] != self.token:
            body = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            return self._record(name, params, started, 401, body)
        canonical = self._methods_lower.get(name.lower())
        if canonical is None:
            error = bad_request(f"method {name} is not implemented by the fake server")
            response = self._record(name, params, started, 400, error.payload())
            self.unimplemented_calls.append(self.calls[-1])
            return response
        status, body = await self._dispatch(canonical, params)
        return self._record(canonical, params, started, status, body)

    async def _dispatch(self, method: str, params: JSONDict) -> tuple[int, JSONDict]:
        hang = next((h for h in self._hangs if h.matches(method, params)), None)
        if hang is not None:
            return await self._hang_up(hang, method, params)
        fault = self._take_fault(method, params)
        if fault is not None:
            return fault.code, fault.payload()
        try:
            result = await self._methods[method](params)
        except TelegramApiError as exc:
            return exc.code, exc.payload()
        chat = self._find_chat(params.get("chat_id"))
        if method in SEND_METHODS and chat is not None:
            self.sends.append((time.monotonic(), chat.id))
        return 200, {"ok": True, "result": result}

    async def _hang_up(self, hang: _Hang, method: str, params: JSONDict) -> tuple[int, JSONDict]:
        started = time.monotonic()
        result: Any = None
        if hang.accept:
            result = await self._methods[method](params)
            if method in SEND_METHODS and (chat := self._find_chat(params.get("chat_id"))):
                self.sends.append((time.monotonic(), chat.id))
        body = {"ok": True, "result": result} if hang.accept else {
            "ok": False, "error_code": 504, "description": "Gateway Timeout"}
        self.hung_calls.append(Call(method, params, started, 200 if hang.accept else 504,
                                    body))
        await hang.released.wait()
        return 504, {"ok": False, "error_code": 504, "description": "Gateway Timeout"}

    def _record(
        self, method: str, params: JSONDict, started: float, status: int, body: JSONDict
    ) -> web.Response:
        self.calls.append(Call(method, params, started, status, body))
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        path = request.match_info["file_path"]
        for stored in self.files.values():
            if stored.file_path == path:
                return web.Response(
                    body=stored.data,
                    content_type=stored.mime_type or "application/octet-stream",
                )
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _handle_not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    def _take_fault(self, method: str, params: Mapping[str, Any]) -> TelegramApiError | None:
        for fault in self._faults:
            if fault.matches(method, params):
                fault.remaining -= 1
                return fault.error
        return None

    # ----------------------------------------------------------------- updates

    async def _push_update(self, kind: str, payload: JSONDict) -> JSONDict:
        update = {"update_id": next(self._update_ids), kind: payload}
        allowed = self._allowed_updates
        if (allowed and kind not in allowed) or (not allowed and kind in OPT_IN_UPDATES):
            return update  # Telegram does not even store updates the bot opted out of
        if self._webhook.url:
            await self._deliver_webhook(update)
        else:
            self._updates.append(update)
            self._wake_pollers()
        return update

    def _wake_pollers(self) -> None:
        self._updates_changed.set()
        self._updates_changed = asyncio.Event()

    async def _deliver_webhook(self, update: JSONDict) -> None:
        hook = self._webhook
        headers = {}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        delivery = WebhookDelivery(update, hook.url, hook.secret_token, None)
        assert self._session is not None, "the fake server is not started"
        try:
            async with self._session.post(hook.url, json=update, headers=headers) as response:
                delivery.status = response.status
                delivery.body = await response.text()
                if not 200 <= response.status < 300:
                    delivery.error = (
                        f"Wrong response from the webhook: {response.status} {response.reason}"
                    )
        except (ClientError, OSError, TimeoutError) as exc:
            delivery.error = f"Connection refused: {exc}"
        self.webhook_deliveries.append(delivery)
        if delivery.error:
            hook.last_error_date, hook.last_error_message = _now(), delivery.error
            self._updates.append(update)  # kept pending, as Telegram keeps it (no retries here)

    async def _get_updates(self, p: JSONDict) -> list[JSONDict]:
        if self._webhook.url:
            raise TelegramApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        if "allowed_updates" in p:
            self._allowed_updates = list(p["allowed_updates"] or [])
        offset, limit = int(p.get("offset", 0)), min(max(int(p.get("limit", 100)), 1), 100)
        self._confirm_updates(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()
        deadline = time.monotonic() + min(max(int(p.get("timeout", 0)), 0), self.long_poll_cap_s)
        while True:
            batch = self._updates[:limit]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            event = self._updates_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
            if generation != self._poll_generation:
                raise TelegramApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )

    def _confirm_updates(self, offset: int) -> None:
        before = len(self._updates)
        if offset < 0:
            self._updates = self._updates[offset:]
        elif offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if len(self._updates) < before and self.on_updates_confirmed is not None:
            self.on_updates_confirmed(offset)

    # ----------------------------------------------------------------- lookups

    def _chat_or_fail(self, chat: ChatRef) -> FakeChat:
        if isinstance(chat, FakeChat | FakeUser):
            return self.chats[chat.id]
        found = self._find_chat(chat)
        if found is None:
            raise AssertionError(f"no chat {chat!r} in the fake")
        return found

    def _find_chat(self, chat_id: Any) -> FakeChat | None:
        if isinstance(chat_id, int):
            return self.chats.get(chat_id)
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for chat in self.chats.values():
                if chat.username and chat.username.lower() == chat_id[1:].lower():
                    return chat
        return None

    def _message_id_of(self, message: MessageRef | int) -> int:
        if isinstance(message, int):
            return message
        if isinstance(message, Call):
            message = message.result
        return int(message["message_id"])

    def _resolve_message(self, message: MessageRef) -> tuple[FakeChat, JSONDict]:
        if isinstance(message, Call):
            message = message.result
        chat = self._chat_or_fail(message["chat"]["id"])
        current = chat.messages.get(message["message_id"])
        if current is None:
            raise AssertionError(f"message {message['message_id']} no longer exists in {chat.id}")
        return chat, current

    def _chat_param(self, p: JSONDict, name: str = "chat_id") -> FakeChat:
        if name not in p or p[name] in ("", None):
            raise bad_request(f"{name} is empty")
        chat = self._find_chat(p[name])
        if chat is None or chat.members.get(self.bot.id) is None:
            raise bad_request("chat not found")
        return chat

    def _writable_chat(self, p: JSONDict) -> FakeChat:
        """The target chat of a send, with Telegram's 403s for chats the bot can't write to."""
        chat = self._chat_param(p)
        if chat.type == "private":
            user = self.users[chat.id]
            if user.blocked:
                raise forbidden("bot was blocked by the user")
            if not user.started:
                raise forbidden("bot can't initiate conversation with a user")
            return chat
        status = chat.members.get(self.bot.id)
        kind = "supergroup chat" if chat.type == "supergroup" else "group chat"
        if status == "kicked":
            raise forbidden(f"bot was kicked from the {kind}")
        if status not in PRESENT_STATUSES:
            raise forbidden(f"bot is not a member of the {kind}")
        return chat

    def _int_param(self, p: JSONDict, name: str) -> int:
        value = p.get(name)
        if value in (None, ""):
            if name == "message_id":
                raise bad_request("message identifier is not specified")
            raise bad_request(f"{name} is empty")
        if not isinstance(value, int):
            raise bad_request(f"{name} is invalid")
        return value

    # ----------------------------------------------------------------- message building

    def _create_message(
        self,
        chat: FakeChat,
        sender: JSONDict,
        content: JSONDict,
        *,
        thread_id: int | None = None,
        reply_to_id: int | None = None,
        allow_without_reply: bool = False,
    ) -> JSONDict:
        replied = chat.messages.get(reply_to_id) if reply_to_id is not None else None
        if reply_to_id is not None and replied is None and not allow_without_reply:
            raise bad_request("message to be replied not found")
        if thread_id is None and replied is not None:
            thread_id = replied.get("message_thread_id")
        topic_start = self._topic_start(chat, thread_id)
        message: JSONDict = {
            "message_id": chat.next_message_id(),
            "from": sender,
            "chat": chat.to_api(),
            "date": _now(),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if chat.is_forum:
                message["is_topic_message"] = True
        if replied is None:
            replied = topic_start
        if replied is not None:
            message["reply_to_message"] = _shallow_reply(replied)
        message.update(content)
        chat.messages[message["message_id"]] = message
        return message

    def _topic_start(self, chat: FakeChat, thread_id: int | None) -> JSONDict | None:
        """The service message that opened a forum topic (replies in a topic point to it).
        A private chat has no topics (the bot's private topic mode is not modelled): the
        Bot API looks the topic up and answers "message thread not found"."""
        if thread_id is not None and chat.type == "private":
            raise bad_request("message thread not found")
        if thread_id is None or not chat.is_forum:
            return None
        if thread_id not in chat.topics:
            raise bad_request("message thread not found")
        return chat.messages.get(thread_id)

    def _create_topic(
        self,
        chat: FakeChat,
        name: str,
        icon_color: int,
        icon_custom_emoji_id: str | None,
        *,
        creator: JSONDict,
    ) -> int:
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        _check_topic_name(name)
        thread_id = chat.next_message_id()
        chat.topics[thread_id] = ForumTopicState(thread_id, name, icon_color, icon_custom_emoji_id)
        created = _drop_none(
            {"name": name, "icon_color": icon_color, "icon_custom_emoji_id": icon_custom_emoji_id}
        )
        chat.messages[thread_id] = {
            "message_id": thread_id,
            "from": creator,
            "chat": chat.to_api(),
            "date": _now(),
            "message_thread_id": thread_id,
            "forum_topic_created": created,
            "is_topic_message": True,
        }
        return thread_id

    def _send_options(self, chat: FakeChat, p: JSONDict) -> JSONDict:
        """thread and reply arguments of a bot send, validated."""
        thread_id = p.get("message_thread_id")
        reply = p.get("reply_parameters") or {}
        if "reply_to_message_id" in p:
            reply = {"message_id": p["reply_to_message_id"], **reply}
        if reply.get("chat_id") not in (None, chat.id):
            raise bad_request("cross-chat replies are not supported by the fake server")
        allow = bool(
            reply.get("allow_sending_without_reply") or p.get("allow_sending_without_reply")
        )
        return {
            "thread_id": thread_id,
            "reply_to_id": reply.get("message_id"),
            "allow_without_reply": allow,
        }

    def _bot_message(self, chat: FakeChat, p: JSONDict, content: JSONDict) -> JSONDict:
        markup = _inline_markup(p.get("reply_markup"))
        if markup:
            content["reply_markup"] = markup
        if p.get("has_spoiler"):
            content["has_media_spoiler"] = True
        return self._create_message(chat, self.bot.to_api(), content, **self._send_options(chat, p))

    def _add_caption(
        self,
        content: JSONDict,
        caption: str | None,
        parse_mode: str | None = None,
        entities: list[JSONDict] | None = None,
    ) -> None:
        if not caption:
            return
        text, found = format_text(caption, parse_mode, entities)
        if len(text) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        if text:
            content["caption"] = text
        if found:
            content["caption_entities"] = found

    # ----------------------------------------------------------------- files

    def _store_file(
        self,
        data: bytes,
        kind: str,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> StoredFile:
        number = next(self._file_counter)
        stored = StoredFile(
            file_id=f"FAKE{kind[:3].upper()}{number:06d}{secrets.token_hex(8)}",
            file_unique_id=f"U{number:06d}{secrets.token_hex(4)}",
            data=data,
            kind=kind,
            file_name=file_name,
            mime_type=mime_type,
        )
        self.files[stored.file_id] = stored
        return stored

    def _document_api(self, stored: StoredFile) -> JSONDict:
        return _drop_none(
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": stored.file_name,
                "mime_type": stored.mime_type,
                "file_size": len(stored.data),
            }
        )

    def _photo_sizes(self, data: bytes, width: int, height: int) -> list[JSONDict]:
        scale = 90 / max(width, height, 1)
        thumb = self._store_file(data, "photos", mime_type="image/jpeg")
        full = self._store_file(data, "photos", mime_type="image/jpeg")
        sizes = [
            (thumb, max(int(width * scale), 1), max(int(height * scale), 1)),
            (full, width, height),
        ]
        return [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data),
                "width": w,
                "height": h,
            }
            for stored, w, h in sizes
        ]

    def _input_file(
        self, p: JSONDict, name: str, kind: str, *, mime_type: str | None = None
    ) -> StoredFile:
        """Resolve a file argument: a multipart upload, attach://name, a file_id or a URL."""
        value = p.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = p.get(value.removeprefix("attach://"))
        if isinstance(value, Upload):
            return self._store_file(
                value.data,
                kind,
                file_name=value.filename,
                mime_type=mime_type or value.content_type or None,
            )
        if isinstance(value, str) and value in self.files:
            return self.files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            file_name = value.rsplit("/", 1)[-1] or None
            return self._store_file(b"", kind, file_name=file_name, mime_type=mime_type)
        if not value:
            raise bad_request(f"there is no {name} in the request")
        raise bad_request("wrong file identifier/HTTP URL specified")

    # ----------------------------------------------------------------- method table

    def _method_table(self) -> dict[str, Callable[[JSONDict], Awaitable[Any]]]:
        return {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "copyMessage": self._copy_message,
            "forwardMessage": self._forward_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "setMessageReaction": self._set_message_reaction,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setMyDescription": self._setting("description"),
            "setMyShortDescription": self._setting("short_description"),
            "setMyName": self._setting("name"),
            "getMyDescription": self._get_setting("description"),
            "getMyShortDescription": self._get_setting("short_description"),
            "getMyName": self._get_setting("name"),
            "setChatMenuButton": self._true,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "getChatMemberCount": self._get_chat_member_count,
            "getChatAdministrators": self._get_chat_administrators,
            "leaveChat": self._leave_chat,
            "pinChatMessage": self._pin_chat_message,
            "unpinChatMessage": self._pin_chat_message,
            "createForumTopic": self._create_forum_topic,
            "editForumTopic": self._edit_forum_topic,
            "closeForumTopic": self._topic_state_setter(closed=True),
            "reopenForumTopic": self._topic_state_setter(closed=False),
            "deleteForumTopic": self._delete_forum_topic,
        }

    async def _true(self, p: JSONDict) -> bool:
        return True

    # ----------------------------------------------------------------- bot & webhook

    async def _get_me(self, p: JSONDict) -> JSONDict:
        return {
            **self.bot.to_api(),
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _set_webhook(self, p: JSONDict) -> bool:
        url = p.get("url") or ""
        if not url:
            return await self._delete_webhook(p)
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.match(secret):
            raise bad_request("secret token contains unallowed characters")
        if p.get("drop_pending_updates"):
            self._updates.clear()
        allowed = p.get("allowed_updates")
        if allowed is not None:
            self._allowed_updates = list(allowed)
        self._webhook = _Webhook(
            url=url,
            secret_token=secret,
            max_connections=int(p.get("max_connections", 40)),
            allowed_updates=allowed,
            ip_address=p.get("ip_address"),
        )
        self._poll_generation += 1
        self._wake_pollers()
        return True

    async def _delete_webhook(self, p: JSONDict) -> bool:
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook = _Webhook()
        return True

    async def _get_webhook_info(self, p: JSONDict) -> JSONDict:
        hook = self._webhook
        info: JSONDict = {
            "url": hook.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if hook.url:
            info.update(
                _drop_none(
                    {
                        "max_connections": hook.max_connections,
                        "allowed_updates": hook.allowed_updates,
                        "ip_address": hook.ip_address or "127.0.0.1",
                        "last_error_date": hook.last_error_date,
                        "last_error_message": hook.last_error_message,
                    }
                )
            )
        return info

    # ----------------------------------------------------------------- sending

    async def _send_message(self, p: JSONDict) -> JSONDict:
        chat = self._writable_chat(p)
        text, entities = format_text(p.get("text") or "", p.get("parse_mode"), p.get("entities"))
        if not text:
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        if p.get("link_preview_options"):
            content["link_preview_options"] = p["link_preview_options"]
        return self._bot_message(chat, p, content)

    async def _send_photo(self, p: JSONDict) -> JSONDict:
        chat = self._writable_chat(p)
        source = self._input_file(p, "photo", "photos", mime_type="image/jpeg")
        content: JSONDict = {"photo": self._photo_sizes(source.data, 1280, 960)}
        self._add_caption(content, p.get("caption"), p.get("parse_mode"), p.get("caption_entities"))
        return self._bot_message(chat, p, content)

    async def _send_document(self, p: JSONDict) -> JSONDict:
        chat = self._writable_chat(p)
        stored = self._input_file(p, "document", "documents")
        content: JSONDict = {"document": self._document_api(stored)}
        self._add_caption(content, p.get("caption"), p.get("parse_mode"), p.get("caption_entities"))
        return self._bot_message(chat, p, content)

    def _source_message(self, p: JSONDict, verb: str) -> JSONDict:
        source_chat = self._chat_param(p, "from_chat_id")
        message_id = self._int_param(p, "message_id")
        source = source_chat.messages.get(message_id)
        if source is None:
            raise bad_request(f"message to {verb} not found")
        if not any(key in source for key in _CONTENT_KEYS):
            raise bad_request(f"message can't be {_PAST_TENSE[verb]}")
        return source

    async def _copy_message(self, p: JSONDict) -> JSONDict:
        chat = self._writable_chat(p)
        source = self._source_message(p, "copy")
        content = {key: source[key] for key in _CONTENT_KEYS if key in source}
        if "caption" in p:
            content.pop("caption", None)
            content.pop("caption_entities", None)
            self._add_caption(
                content, p.get("caption"), p.get("parse_mode"), p.get("caption_entities")
            )
        message = self._bot_message(chat, p, content)
        return {"message_id": message["message_id"]}

    async def _forward_message(self, p: JSONDict) -> JSONDict:
        chat = self._writable_chat(p)
        source = self._source_message(p, "forward")
        content = {key: source[key] for key in _CONTENT_KEYS if key in source}
        content["forward_origin"] = self._forward_origin(source)
        options = self._send_options(chat, p)
        options["reply_to_id"] = None
        return self._create_message(chat, self.bot.to_api(), content, **options)

    def _forward_origin(self, source: Mapping[str, Any]) -> JSONDict:
        origin = source.get("forward_origin")
        if origin:
            return origin
        sender = source["from"]
        user = self.users.get(sender["id"])
        if user is not None and user.hide_forwards:
            return {
                "type": "hidden_user",
                "sender_user_name": user.full_name,
                "date": source["date"],
            }
        return {"type": "user", "sender_user": sender, "date": source["date"]}

    # ----------------------------------------------------------------- editing

    def _editable_message(self, p: JSONDict, verb: str = "edit") -> tuple[FakeChat, JSONDict]:
        if p.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the fake server")
        chat = self._chat_param(p)
        message_id = self._int_param(p, "message_id")
        message = chat.messages.get(message_id)
        if message is None:
            raise bad_request(f"message to {verb} not found")
        if message["from"]["id"] != self.bot.id or "forum_topic_created" in message:
            raise bad_request("message can't be edited")
        return chat, message

    def _apply_edit(self, message: JSONDict, changes: JSONDict) -> JSONDict:
        """Replace content + keyboard; Telegram refuses an edit that changes nothing."""
        before = {key: message.get(key) for key in changes}
        after = dict(changes)
        if before == after:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = _now()
        return message

    async def _edit_message_text(self, p: JSONDict) -> JSONDict:
        _, message = self._editable_message(p)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        text, entities = format_text(p.get("text") or "", p.get("parse_mode"), p.get("entities"))
        if not text:
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        changes = {
            "text": text,
            "entities": entities or None,
            "reply_markup": _inline_markup(p.get("reply_markup")),
        }
        return self._apply_edit(message, changes)

    async def _edit_message_caption(self, p: JSONDict) -> JSONDict:
        _, message = self._editable_message(p)
        if "text" in message:
            raise bad_request("there is no caption in the message to edit")
        content: JSONDict = {}
        self._add_caption(content, p.get("caption"), p.get("parse_mode"), p.get("caption_entities"))
        changes = {
            "caption": content.get("caption"),
            "caption_entities": content.get("caption_entities"),
            "reply_markup": _inline_markup(p.get("reply_markup")),
        }
        return self._apply_edit(message, changes)

    async def _edit_message_reply_markup(self, p: JSONDict) -> JSONDict:
        _, message = self._editable_message(p)
        return self._apply_edit(message, {"reply_markup": _inline_markup(p.get("reply_markup"))})

    async def _delete_message(self, p: JSONDict) -> bool:
        chat = self._chat_param(p)
        message_id = self._int_param(p, "message_id")
        message = chat.messages.get(message_id)
        if message is None:
            raise bad_request("message to delete not found")
        own = message["from"]["id"] == self.bot.id
        is_admin = chat.members.get(self.bot.id) in ("administrator", "creator")
        if not (own or chat.type == "private" or is_admin):
            raise bad_request("message can't be deleted")
        del chat.messages[message_id]
        return True

    async def _pin_chat_message(self, p: JSONDict) -> bool:
        chat = self._chat_param(p)
        message_id = p.get("message_id")
        if message_id is not None and message_id not in chat.messages:
            raise bad_request("message to pin not found")
        return True

    # ----------------------------------------------------------------- interaction

    async def _answer_callback_query(self, p: JSONDict) -> bool:
        query_id = str(p.get("callback_query_id") or "")
        if query_id not in self.callback_queries or query_id in self.callback_answers:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(p.get("text") or "") > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self.callback_answers[query_id] = dict(p)
        return True

    async def _set_message_reaction(self, p: JSONDict) -> bool:
        chat = self._chat_param(p)
        message_id = self._int_param(p, "message_id")
        if message_id not in chat.messages:
            raise bad_request("message to react not found")
        reaction = p.get("reaction") or []
        allowed = {emoji.value for emoji in ReactionEmoji}
        for item in reaction:
            bad_emoji = item.get("type") == "emoji" and item.get("emoji") not in allowed
            bad_custom = (
                item.get("type") == "custom_emoji"
                and not str(item.get("custom_emoji_id", "")).isdigit()
            )
            if bad_emoji or bad_custom or item.get("type") not in ("emoji", "custom_emoji"):
                raise bad_request("REACTION_INVALID")
        self.reactions[(chat.id, message_id)] = list(reaction)
        return True

    async def _send_chat_action(self, p: JSONDict) -> bool:
        chat = self._writable_chat(p)
        if p.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._topic_start(chat, p.get("message_thread_id"))
        return True

    async def _get_file(self, p: JSONDict) -> JSONDict:
        stored = self.files.get(str(p.get("file_id") or ""))
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD_SIZE:
            raise bad_request("file is too big")
        if stored.file_path is None:
            extension = (stored.file_name or "").rpartition(".")[2] if stored.file_name else "jpg"
            stored.file_path = f"{stored.kind}/{stored.file_unique_id}.{extension}"
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    # ----------------------------------------------------------------- commands & settings

    async def _set_my_commands(self, p: JSONDict) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("commands must be a list of at most 100 BotCommand")
        for command in commands:
            if not _BOT_COMMAND_NAME_RE.match(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = (_scope_key(p.get("scope")), p.get("language_code") or "")
        self.commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, p: JSONDict) -> list[JSONDict]:
        return self.commands.get((_scope_key(p.get("scope")), p.get("language_code") or ""), [])

    async def _delete_my_commands(self, p: JSONDict) -> bool:
        self.commands.pop((_scope_key(p.get("scope")), p.get("language_code") or ""), None)
        return True

    def _setting(self, name: str) -> Callable[[JSONDict], Awaitable[bool]]:
        async def setter(p: JSONDict) -> bool:
            key = f"{name}:{p.get('language_code') or ''}"
            self.bot_settings[key] = p.get(name) or ""
            return True

        return setter

    def _get_setting(self, name: str) -> Callable[[JSONDict], Awaitable[JSONDict]]:
        async def getter(p: JSONDict) -> JSONDict:
            key = f"{name}:{p.get('language_code') or ''}"
            return {name: self.bot_settings.get(key, "")}

        return getter

    # ----------------------------------------------------------------- chats & members

    async def _get_chat(self, p: JSONDict) -> JSONDict:
        chat = self._chat_param(p)
        info: JSONDict = {
            **chat.to_api(),
            "accent_color_id": chat.id % 7,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
        if chat.type == "private":
            info["has_private_forwards"] = True if self.users[chat.id].hide_forwards else None
        else:
            info["permissions"] = _default_permissions()
            info["join_to_send_messages"] = True if chat.type == "supergroup" else None
        return _drop_none(info)

    async def _get_chat_member(self, p: JSONDict) -> JSONDict:
        chat = self._chat_param(p)
        user_id = p.get("user_id")
        if user_id == self.bot.id:
            user = self.bot
        elif isinstance(user_id, int) and user_id in self.users:
            user = self.users[user_id]
        else:
            raise bad_request("PARTICIPANT_ID_INVALID")
        return _chat_member(user, chat.members.get(user.id, "left"))

    async def _get_chat_member_count(self, p: JSONDict) -> int:
        chat = self._chat_param(p)
        return sum(1 for status in chat.members.values() if status in PRESENT_STATUSES)

    async def _get_chat_administrators(self, p: JSONDict) -> list[JSONDict]:
        chat = self._chat_param(p)
        if chat.type == "private":
            raise bad_request("there are no administrators in the private chat")
        admins = []
        for user_id, status in chat.members.items():
            if status in ("administrator", "creator"):
                user = self.bot if user_id == self.bot.id else self.users[user_id]
                admins.append(_chat_member(user, status))
        return admins

    async def _leave_chat(self, p: JSONDict) -> bool:
        chat = self._chat_param(p)
        if chat.type == "private":
            raise bad_request("chat member status can't be changed in private chats")
        chat.members[self.bot.id] = "left"
        return True

    # ----------------------------------------------------------------- forum topics

    async def _create_forum_topic(self, p: JSONDict) -> JSONDict:
        chat = self._writable_chat(p)
        color = int(p.get("icon_color") or FORUM_ICON_COLORS[0])
        if color not in FORUM_ICON_COLORS:
            raise bad_request("TOPIC_ICON_COLOR_INVALID")
        emoji = p.get("icon_custom_emoji_id")
        name = str(p.get("name") or "")
        thread_id = self._create_topic(chat, name, color, emoji, creator=self.bot.to_api())
        return _drop_none(
            {
                "message_thread_id": thread_id,
                "name": name,
                "icon_color": color,
                "icon_custom_emoji_id": emoji,
            }
        )

    def _topic_param(self, p: JSONDict) -> tuple[FakeChat, ForumTopicState]:
        chat = self._chat_param(p)
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        topic = chat.topics.get(p.get("message_thread_id"))  # type: ignore[arg-type]
        if topic is None:
            raise bad_request("message thread not found")
        return chat, topic

    async def _edit_forum_topic(self, p: JSONDict) -> bool:
        _, topic = self._topic_param(p)
        new_name = p.get("name") or topic.name
        _check_topic_name(new_name)
        new_emoji = p.get("icon_custom_emoji_id", topic.icon_custom_emoji_id)
        if (new_name, new_emoji) == (topic.name, topic.icon_custom_emoji_id):
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.name, topic.icon_custom_emoji_id = new_name, new_emoji
        return True

    def _topic_state_setter(self, *, closed: bool) -> Callable[[JSONDict], Awaitable[bool]]:
        async def set_state(p: JSONDict) -> bool:
            _, topic = self._topic_param(p)
            if topic.closed == closed:
                raise bad_request("TOPIC_NOT_MODIFIED")
            topic.closed = closed
            return True

        return set_state

    async def _delete_forum_topic(self, p: JSONDict) -> bool:
        chat, topic = self._topic_param(p)
        del chat.topics[topic.message_thread_id]
        for message_id in [
            mid
            for mid, message in chat.messages.items()
            if message.get("message_thread_id") == topic.message_thread_id
        ]:
            del chat.messages[message_id]
        return True

    # ----------------------------------------------------------------- reporting

    def _call_matches(
        self, call: Call, method: str, ok: bool | None, criteria: Mapping[str, Any]
    ) -> bool:
        return (
            call.method == method
            and (ok is None or call.ok == ok)
            and _params_match(call.params, criteria)
        )

    def _miss_report(self, method: str, criteria: Mapping[str, Any], timeout: float) -> str:
        recent = [call for call in self.calls if call.method != "getUpdates"][-15:]
        lines = [f"no {method}({_describe_criteria(criteria)}) call within {timeout} s."]
        lines.append("Recent calls (getUpdates omitted):" if recent else "The bot made no calls.")
        lines.extend(f"  {call.brief()}" for call in recent)
        if self.unimplemented_calls:
            lines.append(
                "Unimplemented methods called: "
                + ", ".join(call.method for call in self.unimplemented_calls)
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------- API objects


def _check_topic_name(name: str) -> None:
    """createForumTopic's `name`: "1-128 characters" (code points). Telegram would cut a
    longer one where it pleases (inside a flag or an emoji); refused here, so the bot's
    own cut, on a grapheme boundary, is what tests see."""
    if not 1 <= len(name) <= 128:
        raise bad_request("TOPIC_TITLE_EMPTY" if not name else "TOPIC_TITLE_TOO_LONG")


def _scope_key(scope: JSONDict | None) -> str:
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


def _inline_markup(markup: Any) -> JSONDict | None:
    """Validate reply_markup; return what Telegram stores on the message (inline only)."""
    if not markup:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    keyboard = markup.get("inline_keyboard")
    if keyboard is None:
        return None  # reply keyboards / remove / force_reply are not part of Message
    for row in keyboard:
        for button in row:
            _check_inline_button(button)
    return {"inline_keyboard": keyboard} if any(keyboard) else None


_BUTTON_ACTIONS = ("url", "callback_data", "callback_game", "pay", "switch_inline_query",
                   "switch_inline_query_chosen_chat", "switch_inline_query_current_chat",
                   "login_url", "web_app", "copy_text")


def _check_inline_button(button: Mapping[str, Any]) -> None:
    if not button.get("text"):
        raise bad_request("can't parse inline keyboard button: Text must be non-empty")
    # An empty url or callback_data counts as absent, as the Bot API server reads them.
    actions = [name for name in _BUTTON_ACTIONS
               if name in button and (button[name] or name not in ("url", "callback_data"))]
    if not actions:
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if len(actions) > 1:
        # The Bot API documents "exactly one of the optional fields"; the server itself
        # would keep the first it knows (a url over callback_data) and silently drop the
        # other, which is a bug in the bot either way: refused here so tests see it.
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must have exactly one "
            f"optional field, found {', '.join(actions)}"
        )
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= 64:
        raise bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and (problem := link_problem(str(url))) is not None:
        raise bad_request(f"inline keyboard button URL '{url}' is invalid: {problem}")


def _default_permissions() -> JSONDict:
    names = (
        "can_send_messages",
        "can_send_audios",
        "can_send_documents",
        "can_send_photos",
        "can_send_videos",
        "can_send_video_notes",
        "can_send_voice_notes",
        "can_send_polls",
        "can_send_other_messages",
        "can_add_web_page_previews",
        "can_invite_users",
    )
    restricted = ("can_change_info", "can_pin_messages", "can_manage_topics")
    return {**dict.fromkeys(names, True), **dict.fromkeys(restricted, False)}


def _chat_member(user: FakeUser, status: str) -> JSONDict:
    member: JSONDict = {"status": status, "user": user.to_api()}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        rights = (
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
            "can_pin_messages",
            "can_manage_topics",
        )
        member.update(dict.fromkeys(rights, True))
        member.update(can_be_edited=False, is_anonymous=False, can_promote_members=False)
    elif status == "restricted":
        member.update(_default_permissions())
        member.update(is_member=True, until_date=0, can_edit_tag=False)
    elif status == "kicked":
        member["until_date"] = 0
    return member


# --------------------------------------------------------------------------- PTB helpers


@contextlib.asynccontextmanager
async def run_polling(
    app: Application, *, fail_on_handler_errors: bool = True
) -> AsyncIterator[list[BaseException]]:
    """Run a PTB Application with polling for the duration of the block.

    Yields the list of exceptions raised inside handlers; with
    ``fail_on_handler_errors`` (the default) any such exception fails the test when the
    block exits, so a broken handler never hides behind a ``wait_for`` timeout.
    """
    errors: list[BaseException] = []

    async def collect(update: object, context: Any) -> None:
        errors.append(context.error)

    app.add_error_handler(collect)
    try:
        async with app:
            await app.start()
            assert app.updater is not None, "the Application was built without an Updater"
            await app.updater.start_polling(poll_interval=0.0, timeout=10)
            try:
                yield errors
            except BaseException as exc:
                if fail_on_handler_errors and errors:
                    raise _handler_failure(errors, exc) from errors[0]
                raise
            finally:
                await app.updater.stop()
                await app.stop()
    finally:
        app.remove_error_handler(collect)
    if fail_on_handler_errors and errors:
        raise _handler_failure(errors, None) from errors[0]


def _handler_failure(errors: list[BaseException], cause: BaseException | None) -> AssertionError:
    lines = [f"{len(errors)} exception(s) raised in bot handlers:"]
    lines.extend(f"  {type(error).__name__}: {error}" for error in errors)
    if cause is not None:
        lines.append(f"(the test body then failed with {type(cause).__name__}: {cause})")
    return AssertionError("\n".join(lines))
