"""Hypothesis strategies for Telegram updates as the Bot API sends them (JSON dicts):
messages with text, commands, captions and attachments, edited messages, button
presses, service messages, channel posts, messages sent as a chat, forum topics,
replies; and the same updates with parts missing or replaced by anything."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .strategies import callback_data, texts

AGENTS_CHAT_ID = -1001234567890
BOT = {"id": 7000001, "is_bot": True, "first_name": "Navigator", "username": "mtl_nav_bot"}

user_ids = st.one_of(st.integers(1, 2**40), st.sampled_from((42, 1001, 5001)))
message_ids = st.integers(1, 2**31 - 1)
dates = st.integers(0, 2**32)
names = st.one_of(st.sampled_from(("Анна", "Oleg", "🦊", " ", "A" * 64)), st.text(max_size=70))


@st.composite
def users(draw: st.DrawFn, is_bot: bool | None = None) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": draw(user_ids), "first_name": draw(names),
        "is_bot": draw(st.integers(0, 7)) == 0 if is_bot is None else is_bot}
    if draw(st.booleans()):
        user["last_name"] = draw(names)
    if draw(st.booleans()):
        user["username"] = draw(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{4,31}", fullmatch=True))
    if draw(st.booleans()):
        user["language_code"] = draw(st.one_of(
            st.sampled_from(("ru", "en", "en-GB", "uk", "be", "kk", "sr", "de", "")),
            st.text(max_size=8)))
    return user


def private_chat(user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "type": "private", "first_name": user["first_name"]}


agents_chat = st.builds(lambda forum: {"id": AGENTS_CHAT_ID, "type": "supergroup",
                                       "title": "Агенты", "is_forum": forum}, st.booleans())
group_chats = st.one_of(
    agents_chat, agents_chat,
    st.builds(lambda i, t, title: {"id": i, "type": t, "title": title},
              st.integers(-(10**13), -1), st.sampled_from(("group", "supergroup", "channel")),
              names),
)

entity_types = st.sampled_from(("bot_command", "mention", "url", "bold", "italic", "code",
                                "hashtag", "text_link", "custom_emoji", "spoiler"))


@st.composite
def entities(draw: st.DrawFn, text: str) -> list[dict[str, Any]]:
    """Entities for `text`: usually a command at the start, sometimes nonsense offsets."""
    found = []
    if text.startswith("/") and draw(st.booleans()):
        found.append({"type": "bot_command", "offset": 0,
                      "length": len(text.split(" ")[0].encode("utf-16-le")) // 2})
    for _ in range(draw(st.integers(0, 2))):
        entity = {"type": draw(entity_types), "offset": draw(st.integers(0, 100)),
                  "length": draw(st.integers(1, 100))}
        if entity["type"] == "text_link":
            entity["url"] = "https://example.org"
        if entity["type"] == "custom_emoji":
            entity["custom_emoji_id"] = "5368324170671202286"
        found.append(entity)
    return found


def _file(extra: dict[str, Any] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda fid, size: {"file_id": fid, "file_unique_id": fid[:8] or "u",
                                        "file_size": size, **(extra or {})},
                     st.text(min_size=1, max_size=20), st.integers(0, 2**31))


ATTACHMENTS: dict[str, st.SearchStrategy[Any]] = {
    "photo": st.lists(_file({"width": 90, "height": 90}), max_size=3),
    "document": st.builds(lambda f, n: {**f, **({"file_name": n} if n is not None else {})},
                          _file(), st.one_of(st.none(), st.text(max_size=40))),
    "voice": st.builds(lambda f, d: {**f, "duration": d}, _file(), st.integers(0, 2**31)),
    "audio": st.builds(lambda f, d: {**f, "duration": d}, _file(), st.integers(0, 10**6)),
    "video": st.builds(lambda f, d: {**f, "duration": d, "width": 1, "height": 1}, _file(),
                       st.integers(0, 10**6)),
    "video_note": st.builds(lambda f, d: {**f, "duration": d, "length": 240}, _file(),
                            st.integers(0, 60)),
    "animation": st.builds(lambda f: {**f, "duration": 1, "width": 1, "height": 1}, _file()),
    "sticker": st.builds(lambda f, e: {**f, "type": "regular", "width": 512, "height": 512,
                                       "is_animated": False, "is_video": False,
                                       **({"emoji": e} if e else {})},
                         _file(), st.one_of(st.none(), st.sampled_from(("👍", "🇲🇪", "")))),
    "location": st.just({"latitude": 42.43, "longitude": 19.26}),
    "contact": st.just({"phone_number": "+38267000000", "first_name": "Анна"}),
    "poll": st.just({"id": "1", "question": "?", "options": [], "total_voter_count": 0,
                     "is_closed": False, "is_anonymous": True, "type": "regular",
                     "allows_multiple_answers": False, "allows_revoting": False,
                     "members_only": False}),
}
SERVICE = {
    "new_chat_members": st.builds(lambda u: [u], users()),
    "left_chat_member": users(),
    "pinned_message": st.just({"chat": {"id": AGENTS_CHAT_ID, "type": "supergroup"},
                               "message_id": 1, "date": 0}),
    "forum_topic_created": st.just({"name": "№12 · Анна", "icon_color": 7322096}),
    "forum_topic_edited": st.just({"name": "№12"}),
    "new_chat_title": names,
}


@st.composite
def messages(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    sender = draw(users())
    chat = draw(st.one_of(st.just(private_chat(sender)), st.just(private_chat(sender)),
                          group_chats))
    message: dict[str, Any] = {"message_id": draw(message_ids), "date": draw(dates),
                               "chat": chat}
    if draw(st.integers(0, 9)):  # channel posts have no sender
        message["from"] = sender
    if chat["id"] < 0 and not draw(st.integers(0, 4)):  # an anonymous admin or a channel
        message["sender_chat"] = draw(st.one_of(st.just(chat), group_chats))
    content = draw(st.sampled_from(("text", "text", "text", "attachment", "service", "none")))
    if content == "text":
        text = draw(st.one_of(texts(), st.builds(
            lambda c, bot, args: f"/{c}{bot} {args}".rstrip(),
            st.sampled_from(("start", "take", "refuse", "lang", "human", "note", "Start", "x")),
            st.sampled_from(("", "@mtl_nav_bot", "@other_bot", "@")),
            st.one_of(st.sampled_from(("12", "#12 текст", "12 причина", "١٢", "-1", "")),
                      texts(30))))).strip() or "."
        message["text"] = text
        if draw(st.booleans()):
            message["entities"] = draw(entities(text))
    elif content == "attachment":
        kind = draw(st.sampled_from(sorted(ATTACHMENTS)))
        message[kind] = draw(ATTACHMENTS[kind])
        if kind in ("photo", "document", "voice", "audio", "video", "animation") and \
                draw(st.booleans()):
            message["caption"] = draw(texts(1100))
    elif content == "service":
        kind = draw(st.sampled_from(sorted(SERVICE)))
        message[kind] = draw(SERVICE[kind])
    if chat.get("is_forum") and draw(st.booleans()):
        message["message_thread_id"] = draw(st.integers(1, 5000))
        message["is_topic_message"] = draw(st.booleans())
    if depth == 0 and draw(st.integers(0, 3)) == 0:
        message["reply_to_message"] = draw(messages(depth=1))
    return message


@st.composite
def callback_queries(draw: st.DrawFn) -> dict[str, Any]:
    presser = draw(users())
    query: dict[str, Any] = {"id": str(draw(st.integers(0, 2**63))), "from": presser,
                             "chat_instance": draw(st.text(min_size=1, max_size=20))}
    if draw(st.integers(0, 9)):
        query["data"] = draw(callback_data())
    shown = draw(st.sampled_from(("message", "message", "inaccessible", "none", "inline")))
    chat = draw(st.one_of(st.just(private_chat(presser)), group_chats))
    if shown == "message":
        query["message"] = {"message_id": draw(message_ids), "date": draw(dates), "chat": chat,
                            "from": BOT, "text": "Меню"}
    elif shown == "inaccessible":  # too old to be shown: date 0
        query["message"] = {"message_id": draw(message_ids), "date": 0, "chat": chat}
    elif shown == "inline":
        query["inline_message_id"] = "AgAAA"
    return query


# Weighted by repetition: what the bot handles comes up most.
KINDS = ("message", "message", "message", "edited_message", "callback_query", "callback_query",
         "channel_post", "my_chat_member")


@st.composite
def updates(draw: st.DrawFn, update_id: int | None = None) -> dict[str, Any]:
    """One update as Telegram sends it (`update_id` fixed, or drawn)."""
    kind = draw(st.sampled_from(KINDS))
    if kind == "callback_query":
        body: dict[str, Any] = draw(callback_queries())
    elif kind == "my_chat_member":
        body = {"chat": draw(group_chats), "from": draw(users()), "date": draw(dates),
                "old_chat_member": {"status": "left", "user": BOT},
                "new_chat_member": {"status": "member", "user": BOT}}
    else:
        body = draw(messages())
        if kind == "edited_message":
            body["edit_date"] = draw(dates)
    return {"update_id": update_id if update_id is not None else draw(st.integers(0, 2**31)),
            kind: body}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.just([]) | st.just({}),
    lambda inner: st.lists(inner, min_size=1, max_size=3)
    | st.dictionaries(st.text(max_size=12), inner, min_size=1, max_size=3),
    max_leaves=8)


@st.composite
def mangled(draw: st.DrawFn, update: dict[str, Any]) -> dict[str, Any]:
    """`update` with a few of its parts (at any depth) removed or replaced by any JSON."""
    result = _copy(update)
    for _ in range(draw(st.integers(1, 4))):
        path = []
        node: Any = result
        while isinstance(node, dict) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node)))
            path.append((node, key))
            node = node[key]
        if not path:
            key = draw(st.sampled_from(sorted(result)))
            path.append((result, key))
        parent, key = path[-1]
        if key == "update_id":
            continue  # the inbox keys rows by it; what we store always has it
        if draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(json_values)
    return result


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
