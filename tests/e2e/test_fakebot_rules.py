"""The fake Bot API refuses what Telegram refuses, in Telegram's words.

Each request here is posted as raw JSON, so nothing between the test and the server
(python-telegram-bot's own checks) decides for it. The rules come from the Bot API
documentation and from the server's source (TDLib's HTML parser and limits).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from .fakebot import FakeTelegram, FakeUser, parse_html


async def call(fake: FakeTelegram, method: str, **params: Any) -> dict[str, Any]:
    """POST a Bot API request as JSON; the parsed answer (ok or not)."""
    url = f"{fake.base_url}{fake.token}/{method}"
    async with aiohttp.ClientSession() as session, session.post(url, json=params) as response:
        body = await response.json()
        assert response.status == (200 if body["ok"] else body["error_code"])
        return body


async def refused(fake: FakeTelegram, method: str, **params: Any) -> str:
    body = await call(fake, method, **params)
    assert body["ok"] is False and body["error_code"] == 400, body
    return body["description"]


async def sent_text(fake: FakeTelegram, user: FakeUser, text: str, **params: Any) -> str:
    body = await call(fake, "sendMessage", chat_id=user.id, text=text, **params)
    assert body["ok"], body
    return body["result"]["text"]


@pytest.fixture
def anna(fake_telegram: FakeTelegram) -> FakeUser:
    return fake_telegram.add_user("Анна", started=True)


# --------------------------------------------------------------------------- HTML


@pytest.mark.parametrize(("html", "error"), [
    ("Цена a < b, и всё", 'Unsupported start tag "" at byte offset 11'),  # UTF-8 bytes
    ("<b>не закрыт", 'Can\'t find end tag corresponding to start tag "b"'),
    ("<b><i>перепутаны</b></i>",
     'Unmatched end tag at byte offset 26, expected "</i>", found "</b>"'),
    ("лишний </b>", "Unexpected end tag at byte offset 13"),
    ("<p>абзац</p>", 'Unsupported start tag "p" at byte offset 0'),
    ("<br/>", 'Unsupported start tag "br/" at byte offset 0'),
    ('<span class="bold">x</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ("<b", "Unclosed start tag at byte offset 0"),
    ('<a href=x"y">ссылка</a>', "Unexpected end of name token at byte offset 8"),
    ('<tg-emoji emoji-id="abc">👍</tg-emoji>', "Invalid custom emoji identifier specified"),
    ("&#xD83D; половина суррогатной пары", "check for unmatched surrogate code units"),
])
async def test_html_telegram_cannot_parse_is_refused(fake_telegram: FakeTelegram, anna,
                                                     html: str, error: str) -> None:
    description = await refused(fake_telegram, "sendMessage", chat_id=anna.id, text=html,
                                parse_mode="HTML")
    assert description.startswith("Bad Request: can't parse entities: ")
    assert error in description


async def test_the_documented_html_is_accepted_with_its_entities(fake_telegram, anna) -> None:
    html = ('<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>'
            '<strike>k</strike><del>d</del><span class="tg-spoiler">p</span>'
            '<tg-spoiler>q</tg-spoiler><a href="https://mtla.me">a</a>'
            '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji><code>c</code>'
            '<pre>p</pre><pre><code class="language-python">x = 1</code></pre>'
            '<blockquote>q</blockquote><blockquote expandable>e</blockquote>')
    body = await call(fake_telegram, "sendMessage", chat_id=anna.id, text=html,
                      parse_mode="HTML")
    assert body["ok"], body
    types = [e["type"] for e in body["result"]["entities"]]
    assert types == ["bold", "bold", "italic", "italic", "underline", "underline",
                     "strikethrough", "strikethrough", "strikethrough", "spoiler", "spoiler",
                     "text_link", "custom_emoji", "code", "pre", "pre", "blockquote",
                     "expandable_blockquote"]
    assert body["result"]["entities"][15]["language"] == "python"


def test_entities_decode_as_telegram_decodes_them() -> None:
    """Only four names and numeric entities are known; anything else stays text."""
    assert parse_html("&lt;&gt;&amp;&quot;&#39;&#x1F44D;&#128077;")[0] == "<>&\"'👍👍"
    assert parse_html("&nbsp;&copy; a & b &LT; &#X41;")[0] == "&nbsp;&copy; a & b &LT; &#X41;"
    assert parse_html("&lt")[0] == "<"  # the semicolon is optional
    assert parse_html("&#12345678;")[0] == "&#12345678;"  # too many digits: text


async def test_a_link_telegram_finds_invalid_loses_its_link_not_its_text(fake_telegram,
                                                                       anna) -> None:
    body = await call(fake_telegram, "sendMessage", chat_id=anna.id, parse_mode="HTML",
                      text='<a href="javascript:alert(1)">нажми</a>')
    assert body["result"]["text"] == "нажми" and "entities" not in body["result"]


# --------------------------------------------------------------------------- lengths


async def test_text_limit_counts_characters_after_entity_parsing(fake_telegram, anna) -> None:
    # 4096 characters of visible text: tags and entities do not count...
    assert len(await sent_text(fake_telegram, anna, "<b>" + "&amp;" * 4096 + "</b>",
                               parse_mode="HTML")) == 4096
    # ...an emoji outside the BMP counts once (it is two UTF-16 units)...
    assert len(await sent_text(fake_telegram, anna, "👍" * 4096)) == 4096
    # ...and surrounding whitespace is trimmed before the count.
    assert len(await sent_text(fake_telegram, anna, "\n" + "я" * 4096 + "  ")) == 4096
    description = await refused(fake_telegram, "sendMessage", chat_id=anna.id,
                                text="<i>" + "я" * 4097 + "</i>", parse_mode="HTML")
    assert description == "Bad Request: message is too long"


async def test_an_empty_text_is_refused(fake_telegram, anna) -> None:
    for text in ("", "  \n ", "<b> </b>"):
        description = await refused(fake_telegram, "sendMessage", chat_id=anna.id, text=text,
                                    parse_mode="HTML")
        assert description == "Bad Request: message text is empty"


async def test_caption_limit_counts_characters_after_entity_parsing(fake_telegram,
                                                                   anna) -> None:
    source = await fake_telegram.user_sends_photo(anna, b"\xff\xd8jpeg")
    copy = {"chat_id": anna.id, "from_chat_id": anna.id, "message_id": source["message_id"]}
    # 990 emoji are 1980 UTF-16 units but 990 characters: a caption that fits.
    body = await call(fake_telegram, "copyMessage", caption="🎉" * 990, **copy)
    assert body["ok"], body
    body = await call(fake_telegram, "copyMessage", caption="<b>" + "ы" * 1024 + "</b>",
                      parse_mode="HTML", **copy)
    assert body["ok"], body
    description = await refused(fake_telegram, "copyMessage", caption="ы" * 1025, **copy)
    assert description == "Bad Request: message caption is too long"


# --------------------------------------------------------------------------- buttons


def keyboard(*buttons: dict[str, Any]) -> str:
    return json.dumps({"inline_keyboard": [list(buttons)]})


@pytest.mark.parametrize(("button", "error"), [
    ({"text": "Два действия", "callback_data": "menu", "url": "https://mtla.me"},
     "must have exactly one optional field"),
    ({"text": "Без действия"}, "Text buttons are unallowed in the inline keyboard"),
    ({"text": "Пустые данные", "callback_data": ""},
     "Text buttons are unallowed in the inline keyboard"),
    ({"text": "Скрипт", "url": "javascript:alert(1)"},
     "inline keyboard button URL 'javascript:alert(1)' is invalid: "
     "Wrong port number specified in the URL"),
    ({"text": "FTP", "url": "ftp://mtla.me/file"}, "Unsupported URL protocol"),
    ({"text": "Без точки", "url": "https://localhost/x"}, "Wrong HTTP URL"),
    ({"text": "Длинные данные", "callback_data": "x" * 65}, "BUTTON_DATA_INVALID"),
    ({"text": "Кириллица", "callback_data": "я" * 33}, "BUTTON_DATA_INVALID"),  # 66 bytes
    ({"text": "", "callback_data": "menu"}, "Text must be non-empty"),
])
async def test_a_button_telegram_refuses_is_refused(fake_telegram, anna, button,
                                                    error: str) -> None:
    description = await refused(fake_telegram, "sendMessage", chat_id=anna.id, text="Меню",
                                reply_markup=keyboard(button))
    assert error in description


async def test_buttons_with_one_valid_action_are_accepted(fake_telegram, anna) -> None:
    body = await call(fake_telegram, "sendMessage", chat_id=anna.id, text="Меню",
                      reply_markup=keyboard({"text": "Сайт", "url": "https://mtla.me/path?a=1"},
                                            {"text": "Данные", "callback_data": "я" * 32},
                                            {"text": "Бот", "url": "tg://resolve?domain=x"}))
    assert body["ok"], body


# --------------------------------------------------------------------------- chats, topics


async def test_a_thread_in_a_private_chat_is_refused(fake_telegram, anna) -> None:
    description = await refused(fake_telegram, "sendMessage", chat_id=anna.id, text="x",
                                message_thread_id=5)
    assert description == "Bad Request: message thread not found"


async def test_a_topic_name_over_128_characters_is_refused(fake_telegram) -> None:
    oleg = fake_telegram.add_user("Олег")
    agents = fake_telegram.add_supergroup("Агенты", forum=True, members=[oleg])
    flags = "🇲🇪" * 64  # 128 characters (code points): fits
    body = await call(fake_telegram, "createForumTopic", chat_id=agents.id, name=flags)
    assert body["ok"], body
    description = await refused(fake_telegram, "createForumTopic", chat_id=agents.id,
                                name="№1 · " + "я" * 124)
    assert description == "Bad Request: TOPIC_TITLE_TOO_LONG"
    description = await refused(fake_telegram, "editForumTopic", chat_id=agents.id,
                                message_thread_id=body["result"]["message_thread_id"],
                                name="я" * 129)
    assert description == "Bad Request: TOPIC_TITLE_TOO_LONG"
