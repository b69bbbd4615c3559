"""The fake Telegram server, driven by the real python-telegram-bot library.

Every handler here is a tiny stand-in written for the test, not the Navigator bot.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram import (
    AcceptedGiftTypes,
    Bot,
    BotCommand,
    BotCommandScopeChat,
    ChatFullInfo,
    ChatMemberAdministrator,
    ChatMemberLeft,
    ChatMemberMember,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageOriginUser,
    ReactionTypeEmoji,
    Update,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from .fakebot import FakeTelegram, contains, run_polling

Context = ContextTypes.DEFAULT_TYPE


# --------------------------------------------------------------------------- the brief's flows


async def test_get_me_at_start_up(fake_telegram: FakeTelegram) -> None:
    app = fake_telegram.application_builder().build()
    async with app:
        assert app.bot.username == fake_telegram.bot.username
        assert app.bot.id == fake_telegram.bot.id
        assert app.bot.bot.api_kwargs == {}
    call = await fake_telegram.wait_for("getMe")
    assert call.result["is_bot"] is True


async def test_polling_start_command_gets_a_reply(fake_telegram: FakeTelegram) -> None:
    async def start(update: Update, context: Context) -> None:
        assert update.message is not None and update.message.api_kwargs == {}
        assert context.args == ["from_site"]
        await update.message.reply_text(f"Привет, {update.message.from_user.first_name}!")

    app = fake_telegram.application_builder().build()
    app.add_handler(CommandHandler("start", start))
    user = fake_telegram.add_user(first_name="Анна", username="anna", language_code="ru")
    async with run_polling(app):
        sent = await fake_telegram.user_sends(user, "/start from_site")
        call = await fake_telegram.wait_for(
            "sendMessage", chat_id=user, text=contains("Привет, Анна")
        )
    assert sent["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert call.result["chat"] == {
        "id": user.id,
        "type": "private",
        "first_name": "Анна",
        "username": "anna",
    }
    assert fake_telegram.texts_in(user) == ["Привет, Анна!"]
    assert fake_telegram.pending_updates == []  # PTB confirmed the update on shutdown


async def test_inline_button_is_answered_and_edits_the_message(
    fake_telegram: FakeTelegram,
) -> None:
    async def menu(update: Update, context: Context) -> None:
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Русский", callback_data="lang:ru"),
                    InlineKeyboardButton("English", callback_data="lang:en"),
                ]
            ]
        )
        await update.effective_message.reply_text("Выберите язык", reply_markup=keyboard)

    async def chosen(update: Update, context: Context) -> None:
        query = update.callback_query
        assert query.api_kwargs == {} and query.message.text == "Выберите язык"
        await query.answer("Готово")
        await query.edit_message_text(f"Язык: {query.data.removeprefix('lang:')}")

    app = fake_telegram.application_builder().build()
    app.add_handler(CommandHandler("menu", menu))
    app.add_handler(CallbackQueryHandler(chosen, pattern=r"^lang:"))
    user = fake_telegram.add_user(first_name="Анна")
    async with run_polling(app):
        await fake_telegram.user_sends(user, "/menu")
        menu_call = await fake_telegram.wait_for("sendMessage", chat_id=user)
        query = await fake_telegram.user_presses(user, menu_call, "lang:ru")
        await fake_telegram.wait_for(
            "answerCallbackQuery", callback_query_id=query["id"], text="Готово"
        )
        await fake_telegram.wait_for(
            "editMessageText", chat_id=user, message_id=menu_call.result["message_id"]
        )
    [message] = fake_telegram.messages_in(user)
    assert message["text"] == "Язык: ru"
    assert "reply_markup" not in message  # editMessageText without markup drops the keyboard
    assert "edit_date" in message
    with pytest.raises(AssertionError, match="no button"):
        await fake_telegram.user_presses(user, message, "lang:en")


async def test_agent_reply_in_a_forum_topic_reaches_the_user(fake_telegram: FakeTelegram) -> None:
    agent = fake_telegram.add_user(first_name="Олег", username="oleg_agent")
    user = fake_telegram.add_user(first_name="Анна")
    group = fake_telegram.add_supergroup("MTL Support agents", forum=True, members=[agent])
    user_of_topic: dict[int, int] = {}

    async def hand_off(update: Update, context: Context) -> None:
        name = f"{update.effective_user.first_name} #{update.effective_user.id}"
        topic = await context.bot.create_forum_topic(group.id, name)
        user_of_topic[topic.message_thread_id] = update.effective_chat.id
        await context.bot.send_message(
            group.id, "Новый вопрос", message_thread_id=topic.message_thread_id
        )

    async def relay(update: Update, context: Context) -> None:
        message = update.message
        assert message.is_topic_message and message.reply_to_message.forum_topic_created
        await context.bot.send_message(user_of_topic[message.message_thread_id], message.text)

    app = fake_telegram.application_builder().build()
    app.add_handler(CommandHandler("help", hand_off, filters.ChatType.PRIVATE))
    app.add_handler(MessageHandler(filters.Chat(group.id) & filters.TEXT, relay))
    async with run_polling(app):
        await fake_telegram.user_sends(user, "/help")
        topic = await fake_telegram.wait_for("createForumTopic", chat_id=group)
        thread_id = topic.result["message_thread_id"]
        posted = await fake_telegram.wait_for(
            "sendMessage", chat_id=group, message_thread_id=thread_id
        )
        await fake_telegram.agent_says(group, agent, "Здравствуйте!", thread_id=thread_id)
        await fake_telegram.wait_for("sendMessage", chat_id=user, text="Здравствуйте!")
    assert posted.result["is_topic_message"] is True
    assert posted.result["reply_to_message"]["forum_topic_created"]["name"] == f"Анна #{user.id}"
    assert fake_telegram.texts_in(group, thread_id=thread_id) == ["Новый вопрос"]


async def test_document_sent_by_user_is_downloaded(fake_telegram: FakeTelegram) -> None:
    payload = bytes(range(256)) * 40

    async def on_document(update: Update, context: Context) -> None:
        document = update.message.document
        file = await document.get_file()
        data = await file.download_as_bytearray()
        digest = hashlib.sha256(data).hexdigest()[:16]
        await update.message.reply_text(f"{document.file_name}: {len(data)} bytes, {digest}")

    app = fake_telegram.application_builder().build()
    app.add_handler(MessageHandler(filters.Document.ALL, on_document))
    user = fake_telegram.add_user(first_name="Анна")
    async with run_polling(app):
        sent = await fake_telegram.user_sends_document(user, payload, file_name="scan.pdf")
        await fake_telegram.wait_for("getFile", file_id=sent["document"]["file_id"])
        reply = await fake_telegram.wait_for("sendMessage", chat_id=user)
    digest = hashlib.sha256(payload).hexdigest()[:16]
    assert reply.params["text"] == f"scan.pdf: {len(payload)} bytes, {digest}"


async def test_handler_retries_after_injected_429(
    fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # RetryAfter.retry_after as a timedelta

    async def start(update: Update, context: Context) -> None:
        for _ in range(3):
            try:
                await update.message.reply_text("Привет!")
                return
            except RetryAfter as exc:
                await asyncio.sleep(exc.retry_after.total_seconds())
        raise AssertionError("still rate limited after 3 attempts")

    app = fake_telegram.application_builder().build()
    app.add_handler(CommandHandler("start", start))
    user = fake_telegram.add_user(first_name="Анна")
    fake_telegram.inject_429("sendMessage", count=1, retry_after=1)
    async with run_polling(app):
        await fake_telegram.user_sends(user, "/start")
        refused = await fake_telegram.wait_for("sendMessage", ok=False)
        accepted = await fake_telegram.wait_for("sendMessage", chat_id=user)
    assert refused.status == 429 and refused.response["parameters"] == {"retry_after": 1}
    assert accepted.timestamp - refused.timestamp >= 0.95
    assert fake_telegram.texts_in(user) == ["Привет!"]  # arrived exactly once
    assert len(fake_telegram.calls_to("sendMessage")) == 2


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[tuple[str, list[dict]]]:
    """A tiny webhook endpoint that accepts only the secret "expected-secret"."""
    received: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != "expected-secret":
            return web.Response(status=403)
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook", received
    finally:
        await runner.cleanup()


async def test_webhook_posts_updates_with_the_secret_header(
    fake_telegram: FakeTelegram, webhook_receiver: tuple[str, list[dict]]
) -> None:
    url, received = webhook_receiver
    user = fake_telegram.add_user(first_name="Анна")
    async with fake_telegram.make_bot() as bot:
        await bot.set_webhook(url, secret_token="expected-secret")
        await fake_telegram.user_sends(user, "/start")
        assert fake_telegram.last_webhook_status == 200
        update = Update.de_json(received[0], bot)
        assert update.message.text == "/start" and update.api_kwargs == {}

        await bot.set_webhook(url, secret_token="wrong-secret")
        await fake_telegram.user_sends(user, "ещё вопрос")
        assert fake_telegram.last_webhook_status == 403
        assert fake_telegram.webhook_deliveries[-1].secret_token == "wrong-secret"
        info = await bot.get_webhook_info()
        assert info.url == url and info.pending_update_count == 1
        assert "403" in info.last_error_message
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates()

        await bot.delete_webhook()
        [pending] = await bot.get_updates()
        assert pending.message.text == "ещё вопрос"
    assert len(received) == 1


async def test_get_chat_parses_into_chat_full_info(fake_telegram: FakeTelegram) -> None:
    agent = fake_telegram.add_user(first_name="Олег")
    outsider = fake_telegram.add_user(first_name="Гость")
    forum = fake_telegram.add_supergroup("MTL Support agents", forum=True, members=[agent])
    plain = fake_telegram.add_supergroup("Chat", username="mtl_chat")
    async with fake_telegram.make_bot() as bot:
        info = await bot.get_chat(forum.id)
        assert isinstance(info, ChatFullInfo) and info.api_kwargs == {}
        assert info.type == ChatType.SUPERGROUP and info.is_forum is True
        assert info.title == "MTL Support agents" and info.max_reaction_count == 11
        assert isinstance(info.accepted_gift_types, AcceptedGiftTypes)
        by_username = await bot.get_chat("@mtl_chat")
        assert by_username.id == plain.id and not by_username.is_forum
        private = await bot.get_chat(agent.id)
        assert private.type == ChatType.PRIVATE and private.first_name == "Олег"

        member = await bot.get_chat_member(forum.id, agent.id)
        assert isinstance(member, ChatMemberMember) and member.api_kwargs == {}
        assert isinstance(await bot.get_chat_member(forum.id, outsider.id), ChatMemberLeft)
        me = await bot.get_chat_member(forum.id, bot.id)
        assert isinstance(me, ChatMemberAdministrator) and me.api_kwargs == {}


async def test_unimplemented_method_answers_a_clear_400(fake_telegram: FakeTelegram) -> None:
    user = fake_telegram.add_user(first_name="Анна", started=True)
    async with fake_telegram.make_bot() as bot:
        with pytest.raises(BadRequest, match="not implemented by the fake server"):
            await bot.send_dice(user.id)
    assert [call.method for call in fake_telegram.unimplemented_calls] == ["sendDice"]
    fake_telegram.unimplemented_calls.clear()  # or the fixture fails this test


# --------------------------------------------------------------------------- fidelity details


async def test_errors_are_worded_like_telegram(fake_telegram: FakeTelegram) -> None:
    user = fake_telegram.add_user(first_name="Анна", started=True)
    stranger = fake_telegram.add_user(first_name="Пётр")
    async with fake_telegram.make_bot() as bot:
        message = await bot.send_message(user.id, "Текст")
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_text("Текст", chat_id=user.id, message_id=message.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await bot.edit_message_text("x", chat_id=user.id, message_id=999)
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(123, "x")
        with pytest.raises(Forbidden, match="can't initiate conversation"):
            await bot.send_message(stranger.id, "x")
        with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
            await bot.send_message(user.id, " ")
        fake_telegram.block_bot(user)
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(user.id, "x")
        fake_telegram.inject_error("getChat", 502, "Bad Gateway")
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.get_chat(user.id)
    revoked = Bot("1:revoked-token", base_url=fake_telegram.base_url)
    with pytest.raises(InvalidToken, match="Unauthorized"):
        await revoked.get_me()


async def test_html_parse_mode_yields_entities(fake_telegram: FakeTelegram) -> None:
    user = fake_telegram.add_user(first_name="Анна", started=True)
    async with fake_telegram.make_bot() as bot:
        message = await bot.send_message(
            user.id,
            '<b>Жирный</b> и <a href="https://example.org">ссылка</a> 👍',
            parse_mode=ParseMode.HTML,
        )
        assert message.text == "Жирный и ссылка 👍"
        assert [(e.type, e.offset, e.length) for e in message.entities] == [
            ("bold", 0, 6),
            ("text_link", 9, 6),
        ]
        with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
            await bot.send_message(user.id, "<b>не закрыт", parse_mode=ParseMode.HTML)


async def test_markdown_v2_is_parsed_and_unescaped_characters_refused(
    fake_telegram: FakeTelegram,
) -> None:
    user = fake_telegram.add_user(first_name="Анна", started=True)
    async with fake_telegram.make_bot() as bot:
        message = await bot.send_message(
            user.id, r"*Шаг 1\.* откройте [сайт](https://example.org)\!", parse_mode="MarkdownV2"
        )
        assert message.text == "Шаг 1. откройте сайт!"
        assert [e.type for e in message.entities] == ["bold", "text_link"]
        with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved"):
            await bot.send_message(user.id, "Шаг 1.", parse_mode="MarkdownV2")


async def test_handler_exceptions_fail_the_test(fake_telegram: FakeTelegram) -> None:
    async def broken(update: Update, context: Context) -> None:
        raise RuntimeError("boom")

    app = fake_telegram.application_builder().build()
    app.add_handler(CommandHandler("start", broken))
    user = fake_telegram.add_user(first_name="Анна")
    with pytest.raises(AssertionError, match="RuntimeError: boom"):
        async with run_polling(app):
            await fake_telegram.user_sends(user, "/start")
            await fake_telegram.wait_for("sendMessage", timeout=0.3)


async def test_copy_forward_reply_react_delete(fake_telegram: FakeTelegram) -> None:
    agent = fake_telegram.add_user(first_name="Олег")
    user = fake_telegram.add_user(first_name="Анна")
    group = fake_telegram.add_supergroup("Agents", members=[agent])
    question = await fake_telegram.user_sends(user, "Где получить номер?")
    async with fake_telegram.make_bot() as bot:
        copied = await bot.copy_message(group.id, user.id, question["message_id"])
        forwarded = await bot.forward_message(group.id, user.id, question["message_id"])
        assert isinstance(forwarded.forward_origin, MessageOriginUser)
        assert forwarded.forward_origin.sender_user.id == user.id
        answer = await fake_telegram.agent_says(group, agent, "В мэрии", reply_to=copied.message_id)
        assert answer["reply_to_message"]["text"] == "Где получить номер?"
        await bot.set_message_reaction(group.id, answer["message_id"], ReactionTypeEmoji("👍"))
        assert fake_telegram.reactions_on(answer) == ["👍"]
        with pytest.raises(BadRequest, match=r"(?i)reaction_invalid"):
            await bot.set_message_reaction(group.id, answer["message_id"], ReactionTypeEmoji("🐍"))
        assert await bot.delete_message(group.id, forwarded.message_id)
        with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
            await bot.delete_message(group.id, forwarded.message_id)
    assert fake_telegram.texts_in(group) == ["Где получить номер?"]


async def test_copy_keeps_the_media_and_replaces_or_drops_the_caption(
    fake_telegram: FakeTelegram,
) -> None:
    agent = fake_telegram.add_user(first_name="Олег")
    user = fake_telegram.add_user(first_name="Анна", started=True)
    group = fake_telegram.add_supergroup("Agents", members=[agent])
    photo = await fake_telegram.user_sends_photo(agent, b"\x89PNG", caption="схема", chat=group)
    scan = await fake_telegram.user_sends_document(
        agent, b"%PDF", file_name="scan.pdf", caption="скан", chat=group
    )
    async with fake_telegram.make_bot() as bot:
        await bot.copy_message(user.id, group.id, photo["message_id"])
        await bot.copy_message(
            user.id, group.id, photo["message_id"], caption="<b>Ольга</b>: схема", parse_mode="HTML"
        )
        await bot.copy_message(user.id, group.id, scan["message_id"], caption="")
    kept, signed, bare = fake_telegram.messages_in(user)
    assert kept["photo"] == photo["photo"] and kept["caption"] == "схема"
    assert signed["caption"] == "Ольга: схема" and signed["caption_entities"][0]["type"] == "bold"
    assert bare["document"]["file_name"] == "scan.pdf" and "caption" not in bare


async def test_members_can_write_as_the_group_or_as_a_channel(fake_telegram: FakeTelegram) -> None:
    group = fake_telegram.add_supergroup("Agents")
    channel = fake_telegram.add_channel("Новости")
    anonymous = await fake_telegram.anonymous_admin_says(group, "Объявление")
    posted = await fake_telegram.channel_says(group, channel, "Пост")
    assert anonymous["from"]["username"] == "GroupAnonymousBot"
    assert anonymous["sender_chat"]["id"] == group.id
    assert posted["from"]["username"] == "Channel_Bot"
    assert posted["sender_chat"] == {"id": channel.id, "type": "channel", "title": "Новости"}


async def test_commands_are_stored_per_scope_and_language(fake_telegram: FakeTelegram) -> None:
    group = fake_telegram.add_supergroup("Agents")
    async with fake_telegram.make_bot() as bot:
        await bot.set_my_commands([BotCommand("start", "Начать")])
        scope = BotCommandScopeChat(group.id)
        await bot.set_my_commands([BotCommand("close", "Закрыть")], scope, language_code="ru")
        assert [c.command for c in await bot.get_my_commands()] == ["start"]
        assert [c.command for c in await bot.get_my_commands(scope, "ru")] == ["close"]
        assert await bot.get_my_commands(scope) == ()
        with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
            await bot.set_my_commands([BotCommand("Bad-Name", "x")])
    assert fake_telegram.commands_for({"type": "chat", "chat_id": group.id}, "ru") == [
        {"command": "close", "description": "Закрыть"}
    ]


async def test_photo_upload_round_trip_and_rate_observation(fake_telegram: FakeTelegram) -> None:
    user = fake_telegram.add_user(first_name="Анна", started=True)
    image = b"\x89PNG fake image bytes"
    async with fake_telegram.make_bot() as bot:
        sent = await bot.send_photo(user.id, photo=image, caption="<i>схема</i>", parse_mode="HTML")
        assert sent.caption == "схема" and sent.caption_entities[0].type == "italic"
        file = await bot.get_file(sent.photo[-1].file_id)
        assert bytes(await file.download_as_bytearray()) == image
        await bot.send_message(user.id, "1")
        await bot.send_message(user.id, "2")
    assert fake_telegram.max_rate(user, window_s=1.0) == 3
    assert fake_telegram.max_rate(window_s=1.0) == 3  # all chats


async def test_get_updates_offset_limit_and_privacy_mode(fake_telegram: FakeTelegram) -> None:
    member = fake_telegram.add_user(first_name="Олег")
    group = fake_telegram.add_supergroup("Chat", members=[member], bot_status="member")
    await fake_telegram.agent_says(group, member, "просто текст")  # privacy mode: not seen
    for text in ("/one", "/two", "/three"):
        await fake_telegram.agent_says(group, member, text)
    async with fake_telegram.make_bot() as bot:
        first = await bot.get_updates(limit=2)
        assert [u.message.text for u in first] == ["/one", "/two"]
        rest = await bot.get_updates(offset=first[-1].update_id + 1, timeout=5)
        assert [u.message.text for u in rest] == ["/three"]
        await bot.get_updates(offset=rest[-1].update_id + 1, timeout=0)
    assert fake_telegram.pending_updates == []


async def test_wait_for_timeout_lists_recent_calls(fake_telegram: FakeTelegram) -> None:
    user = fake_telegram.add_user(first_name="Анна", started=True)
    async with fake_telegram.make_bot() as bot:
        await bot.send_message(user.id, "Привет")
    with pytest.raises(AssertionError, match=r"(?s)no sendMessage\(text='Пока'\).*Привет"):
        await fake_telegram.wait_for("sendMessage", timeout=0.1, text="Пока")
    await fake_telegram.assert_no_call("sendMessage", within=0.05, text="Пока")
