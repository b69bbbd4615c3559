"""The Navigator bot in Telegram, end to end: `TelegramBot.serve` (what `navigator run`
runs) on a real SQLite file and the real search model, talking HTTP to the fake Bot API.

Every test also checks (fixtures) that the bot called no Bot API method the fake lacks
and logged no error it was not expected to.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import select

from navigator.desk.threads import ticket_at
from navigator.events import ChatPlace, UserRef
from navigator.flows import load_flows
from navigator.outbox import enqueue
from navigator.ratelimit import Limit, Limits
from navigator.report import survey
from navigator.store import Store
from navigator.store.models import OutboxMessage, Ticket
from navigator.texts import Texts
from navigator.transports.telegram import Webhook

from .fakebot import Call, FakeChat, FakeTelegram, FakeUser, contains

pytestmark = pytest.mark.slow


def buttons(call: Call) -> list[str]:
    """The callback data of an inline keyboard the bot sent."""
    markup = call.params.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def outbox_rows(database_url: str) -> list[OutboxMessage]:
    store = Store(database_url)
    try:
        with store.transaction() as repo:
            return list(repo.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    finally:
        store.close()


# --------------------------------------------------------------------------- users


async def test_start_shows_the_menu_and_buttons_walk_it(fake_telegram: FakeTelegram,
                                                        bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна", username="anna", language_code="ru")
    async with start_bot(bot_settings()):
        await fake_telegram.user_sends(anna, "/start")
        menu = await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                            text=contains("Здравствуйте, Анна"))
        assert menu.params["parse_mode"] == "HTML"
        wallet_option = buttons(menu)[1]  # "👛 Кошелёк и токены", a submenu
        assert wallet_option.startswith("o|main|")

        query = await fake_telegram.user_presses(anna, menu, wallet_option)
        await fake_telegram.wait_for("answerCallbackQuery", callback_query_id=query["id"])
        submenu = await fake_telegram.wait_for("sendMessage", chat_id=anna)
        assert "menu" in buttons(submenu), "a submenu offers the way back"

        query = await fake_telegram.user_presses(anna, submenu, "menu")
        await fake_telegram.wait_for("answerCallbackQuery", callback_query_id=query["id"])
        again = await fake_telegram.wait_for("sendMessage", chat_id=anna)
        assert buttons(again) == buttons(menu)
    assert fake_telegram.max_rate(anna, window_s=1.0) <= 3


async def test_a_free_text_question_gets_an_answer_with_helped_buttons(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    async with start_bot(bot_settings()):
        await fake_telegram.user_sends(anna, "Как создать кошелёк Stellar?")
        answer = await fake_telegram.wait_for("sendMessage", chat_id=anna, timeout=15)
        data = buttons(answer)
        assert [d[:5] for d in data] == ["fb|y|", "fb|n|"]
        await fake_telegram.user_presses(anna, answer, data[0])
        thanks = await fake_telegram.wait_for("sendMessage", chat_id=anna)
    assert "Рад" in thanks.params["text"] or "помог" in thanks.params["text"].lower()


# --------------------------------------------------------------------------- hand-over


async def test_a_hand_over_opens_a_forum_topic_per_ticket_and_recreates_a_deleted_one(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    anna = fake_telegram.add_user("Анна", username="anna")
    oleg = fake_telegram.add_user("Олег")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=True, members=[oleg])
    quick = Limits(group=Limit(5.0))  # the group limit has its own test; this one is long
    async with start_bot(bot_settings(agents_chat_id=agents.id), limits=quick):
        await fake_telegram.user_sends(anna, "/human")
        await fake_telegram.wait_for("sendMessage", chat_id=anna)
        await fake_telegram.user_sends(anna, "Не могу найти рекомендателя")
        await fake_telegram.wait_for("sendMessage", chat_id=anna, text=contains("№1"))
        topic = await fake_telegram.wait_for("createForumTopic", chat_id=agents)
        assert topic.params["name"] == "№1 · Анна"
        thread = topic.result["message_thread_id"]
        card = await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                            message_thread_id=thread)
        assert "Заявка №1" in card.params["text"] and "рекомендателя" in card.params["text"]

        await fake_telegram.user_sends(anna, "Я из Подгорицы")
        await fake_telegram.wait_for("sendMessage", chat_id=agents, message_thread_id=thread,
                                     text=contains("Я из Подгорицы"))

        # An agent deletes the topic; the ticket's next message makes a new one, card first.
        async with fake_telegram.make_bot() as agent_app:
            await agent_app.delete_forum_topic(agents.id, thread)
        await fake_telegram.user_sends(anna, "Есть новости?")
        second = await fake_telegram.wait_for("createForumTopic", chat_id=agents, timeout=15)
        new_thread = second.result["message_thread_id"]
        texts = []
        for _ in range(2):
            call = await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                                message_thread_id=new_thread, timeout=10)
            texts.append(call.params["text"])
        assert "Заявка №1" in texts[0] and "Есть новости?" in texts[1]

    store = Store(database_url)
    with store.transaction() as repo:
        assert ticket_at(repo, ChatPlace(agents.id, new_thread, None)) == 1
        assert ticket_at(repo, ChatPlace(agents.id, thread, None)) is None
    store.close()


async def test_a_hand_over_in_a_plain_group_posts_a_card_that_later_messages_reply_to(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    anna = fake_telegram.add_user("Анна")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=False)
    async with start_bot(bot_settings(agents_chat_id=agents.id)):
        await fake_telegram.user_sends(anna, "/human")
        await fake_telegram.wait_for("sendMessage", chat_id=anna)
        await fake_telegram.user_sends(anna, "Не могу найти рекомендателя")
        card = await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                            text=contains("Заявка №1"))
        await fake_telegram.user_sends_photo(anna, b"\x89PNG", caption="скриншот ошибки")
        follow_up = await fake_telegram.wait_for("sendMessage", chat_id=agents, timeout=10,
                                                 text=contains("скриншот ошибки"))
    assert "[фото] скриншот ошибки" in follow_up.params["text"]
    card_id = card.result["message_id"]
    assert follow_up.result["reply_to_message"]["message_id"] == card_id
    assert fake_telegram.calls_to("createForumTopic") == []

    store = Store(database_url)
    with store.transaction() as repo:
        ticket = repo.session.get(Ticket, 1)
        assert (ticket.agents_chat_id, ticket.agents_card_message_id) == (agents.id, card_id)
        # What issue 6 routes by: an agent's reply to the card or to a relayed message.
        assert ticket_at(repo, ChatPlace(agents.id, None, card_id)) == 1
        relayed = follow_up.result["message_id"]
        assert ticket_at(repo, ChatPlace(agents.id, None, relayed)) == 1
    store.close()


async def test_an_agent_answers_by_replying_to_the_card_and_the_user_rates_it(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    """The desk in Telegram: the agent's reply reaches the user under the pseudonym, never
    the account; /resolve asks the user for a rating; the rating is stored."""
    anna = fake_telegram.add_user("Анна")
    oleg = fake_telegram.add_user("Олег", last_name="Иванов", username="oleg_iv")
    stranger = fake_telegram.add_user("Посторонний")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=False, members=[oleg])
    other = fake_telegram.add_supergroup("Болталка", members=[stranger])
    quick = Limits(group=Limit(5.0))  # the group limit has its own test
    async with start_bot(bot_settings(agents_chat_id=agents.id), limits=quick):
        await fake_telegram.user_sends(anna, "/human")
        await fake_telegram.wait_for("sendMessage", chat_id=anna)
        await fake_telegram.user_sends(anna, "Где в Будве купить зимние шины?")
        card = await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                            text=contains("Заявка №1"))
        assert buttons(card) == ["take|1", "resolve|1"]

        await fake_telegram.agent_says(agents, oleg, "Здравствуйте! Шины есть в «Бемаксе».",
                                       reply_to=card.result)
        await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                     text=contains("сначала задайте псевдоним"))
        await fake_telegram.agent_says(agents, oleg, "/myname Мария")
        await fake_telegram.wait_for("sendMessage", chat_id=agents, text=contains("«Мария»"))
        await fake_telegram.agent_says(other, stranger, "/take 1")

        await fake_telegram.agent_says(agents, oleg, "Здравствуйте! Шины есть в «Бемаксе».",
                                       reply_to=card.result)
        answer = await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                              text=contains("«Бемаксе»"))
        assert "Мария" in answer.params["text"]
        assert "Олег" not in answer.params["text"] and "oleg_iv" not in answer.params["text"]

        await fake_telegram.agent_says(agents, oleg, "/resolve", reply_to=card.result)
        rating = await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                              text=contains("Мы решили ваш вопрос?"))
        assert buttons(rating) == [*(f"rate|1|{n}" for n in range(1, 6)), "unsolved|1"]
        await fake_telegram.user_presses(anna, rating.result, "rate|1|5")
        await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                     text=contains("Спасибо за оценку 5"))
        await fake_telegram.wait_for("sendMessage", chat_id=agents, text=contains("5 из 5"))

    store = Store(database_url)
    with store.transaction() as repo:
        ticket = repo.session.get(Ticket, 1)
        assert (ticket.status, ticket.rating, ticket.agent_id) == ("closed", 5, oleg.id)
    store.close()
    assert not fake_telegram.calls_to("sendMessage", chat_id=other), \
        "the bot does not act on other groups"


async def test_in_a_forum_an_agent_answers_by_writing_in_the_tickets_topic(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    anna = fake_telegram.add_user("Анна")
    oleg = fake_telegram.add_user("Олег", last_name="Иванов")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=True, members=[oleg])
    quick = Limits(group=Limit(5.0))
    async with start_bot(bot_settings(agents_chat_id=agents.id), limits=quick):
        await fake_telegram.user_sends(anna, "/human")
        await fake_telegram.wait_for("sendMessage", chat_id=anna)
        await fake_telegram.user_sends(anna, "Как получить ВНЖ в Черногории?")
        topic = await fake_telegram.wait_for("createForumTopic", chat_id=agents)
        thread = topic.result["message_thread_id"]
        card = await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                            message_thread_id=thread)
        assert buttons(card) == ["take|1", "resolve|1"]
        query = await fake_telegram.user_presses(oleg, card.result, "take|1")
        await fake_telegram.wait_for("answerCallbackQuery", callback_query_id=query["id"])
        await fake_telegram.wait_for("sendMessage", chat_id=agents, message_thread_id=thread,
                                     text=contains("взял(а) заявку №1"))
        await fake_telegram.agent_says(agents, oleg, "/myname Мария", thread_id=thread)
        await fake_telegram.wait_for("sendMessage", chat_id=agents, text=contains("«Мария»"))
        await fake_telegram.agent_says(agents, oleg, "Нужен договор аренды и справка.",
                                       thread_id=thread)
        answer = await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                              text=contains("договор аренды"))
        assert "Мария" in answer.params["text"] and "Олег" not in answer.params["text"]
    store = Store(database_url)
    with store.transaction() as repo:
        ticket = repo.session.get(Ticket, 1)
        assert (ticket.status, ticket.agent_id) == ("waiting_user", oleg.id)
    store.close()


async def hand_over(fake_telegram: FakeTelegram, user: FakeUser, agents: FakeChat,
                    question: str) -> Call:
    """The user asks for a person; returns the ticket's card in the agents' chat."""
    await fake_telegram.user_sends(user, "/human")
    await fake_telegram.wait_for("sendMessage", chat_id=user)
    await fake_telegram.user_sends(user, question)
    return await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                        text=contains("Заявка №"))


async def sign_as(fake_telegram: FakeTelegram, agents: FakeChat, agent: FakeUser,
                  pseudonym: str) -> None:
    await fake_telegram.agent_says(agents, agent, f"/myname {pseudonym}")
    await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                 text=contains(f"«{pseudonym}»"))


async def test_an_agents_photo_reaches_the_user_with_the_caption_signed(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    """copyMessage, not a forward: the user sees the photo and the pseudonym, never the
    agent's account."""
    anna = fake_telegram.add_user("Анна")
    oleg = fake_telegram.add_user("Олег", last_name="Иванов", username="oleg_iv")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=False, members=[oleg])
    async with start_bot(bot_settings(agents_chat_id=agents.id),
                         limits=Limits(group=Limit(5.0))):
        card = await hand_over(fake_telegram, anna, agents, "Как найти офис в Будве?")
        await sign_as(fake_telegram, agents, oleg, "Мария")
        photo = await fake_telegram.user_sends_photo(
            oleg, b"\x89PNG map of Budva", caption="Вот схема: вход со двора.", chat=agents,
            reply_to=card.result)
        copy = await fake_telegram.wait_for("copyMessage", chat_id=anna)
    assert (copy.params["from_chat_id"], copy.params["message_id"]) == \
        (agents.id, photo["message_id"])
    assert copy.params["parse_mode"] == "HTML"
    received = fake_telegram.messages_in(anna)[-1]
    assert received["photo"] == photo["photo"]
    assert received["caption"] == "💬 Мария, поддержка · заявка №1:\nВот схема: вход со двора."
    assert "forward_origin" not in received
    store = Store(database_url)
    with store.transaction() as repo:
        assert repo.session.get(Ticket, 1).status == "waiting_user"
    store.close()


async def test_a_document_in_a_tickets_forum_topic_reaches_the_user_signed(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    oleg = fake_telegram.add_user("Олег")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=True, members=[oleg])
    async with start_bot(bot_settings(agents_chat_id=agents.id),
                         limits=Limits(group=Limit(5.0))):
        card = await hand_over(fake_telegram, anna, agents, "Какие документы нужны для ВНЖ?")
        await sign_as(fake_telegram, agents, oleg, "Мария")
        await fake_telegram.user_sends_document(
            oleg, b"%PDF-1.4 zahtjev", file_name="zahtjev_za_boravak.pdf", chat=agents,
            thread_id=card.params["message_thread_id"])
        await fake_telegram.wait_for("copyMessage", chat_id=anna)
    received = fake_telegram.messages_in(anna)[-1]
    assert received["document"]["file_name"] == "zahtjev_za_boravak.pdf"
    assert received["caption"] == "💬 Мария, поддержка · заявка №1"


async def test_an_agent_without_a_pseudonym_sending_a_photo_is_told_and_nothing_is_sent(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    oleg = fake_telegram.add_user("Олег")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=False, members=[oleg])
    async with start_bot(bot_settings(agents_chat_id=agents.id),
                         limits=Limits(group=Limit(5.0))):
        card = await hand_over(fake_telegram, anna, agents, "Как найти офис в Будве?")
        sent_to_anna = len(fake_telegram.messages_in(anna))
        await fake_telegram.user_sends_photo(oleg, b"\x89PNG map", caption="Вот схема",
                                             chat=agents, reply_to=card.result)
        await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                     text=contains("сначала задайте псевдоним"))
        await fake_telegram.assert_no_call("copyMessage", within=1.0, ok=None)
    assert len(fake_telegram.messages_in(anna)) == sent_to_anna


async def test_an_anonymous_admins_or_a_channels_reply_is_not_relayed_and_the_chat_is_told(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=False)
    news = fake_telegram.add_channel("MTL Новости")
    async with start_bot(bot_settings(agents_chat_id=agents.id),
                         limits=Limits(group=Limit(5.0))):
        card = await hand_over(fake_telegram, anna, agents, "Как найти офис в Будве?")
        sent_to_anna = len(fake_telegram.messages_in(anna))
        await fake_telegram.anonymous_admin_says(agents, "Офис на улице Mediteranska, 5.",
                                                 reply_to=card.result)
        told = await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                            text=contains("Анонимный администратор"))
        assert told.result["reply_to_message"]["message_id"] == card.result["message_id"], \
            "told in the ticket's thread"
        assert "Сообщение НЕ отправлено" in told.params["text"]
        await fake_telegram.channel_says(agents, news, "Офис на улице Mediteranska, 5.",
                                         reply_to=card.result)
        await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                     text=contains("от имени канала «MTL Новости»"))
        # Told once per message, never again.
        await fake_telegram.assert_no_call("sendMessage", chat_id=agents, within=1.0,
                                           text=contains("НЕ отправлено"))
    assert len(fake_telegram.messages_in(anna)) == sent_to_anna


async def test_report_7_in_the_agents_chat_sends_the_html_report_as_a_document(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    oleg = fake_telegram.add_user("Олег")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=False, members=[oleg])
    async with start_bot(bot_settings(agents_chat_id=agents.id),
                         limits=Limits(group=Limit(5.0))):
        await hand_over(fake_telegram, anna, agents, "Где в Будве купить зимние шины?")
        await fake_telegram.agent_says(agents, oleg, "/report 7")
        sent = await fake_telegram.wait_for("sendDocument", chat_id=agents, timeout=30)
    document = fake_telegram.messages_in(agents)[-1]["document"]
    assert document["file_name"].startswith("navigator-report-")
    assert document["file_name"].endswith(".html")
    assert "📊 Отчёт за" in sent.params["caption"] and "(7 дн.)" in sent.params["caption"]
    html = fake_telegram.files[document["file_id"]].data.decode("utf-8")
    assert "<svg" in html and "<script" not in html
    assert "Обработано" in html and "0 из 1" in html, "the open hand-over is counted"


async def test_a_burst_of_hand_overs_queues_the_cards_within_the_group_limit(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    agents = fake_telegram.add_supergroup("MTL Support agents")
    users = [fake_telegram.add_user(f"Гость {n}") for n in range(3)]
    async with start_bot(bot_settings(agents_chat_id=agents.id)):
        for user in users:
            await fake_telegram.user_sends(user, "/human")
        for user in users:
            await fake_telegram.wait_for("sendMessage", chat_id=user)
        for n, user in enumerate(users):
            await fake_telegram.user_sends(user, f"Вопрос номер {n}")
        for _ in users:
            await fake_telegram.wait_for("sendMessage", chat_id=agents, timeout=20,
                                         text=contains("Заявка №"))
    times = fake_telegram.send_times(agents)
    assert len(times) == 3
    assert min(b - a for a, b in itertools.pairwise(times)) >= 3.0, \
        "20 messages a minute: one card every 3 s"
    assert {r.status for r in outbox_rows(database_url)} == {"sent"}


@pytest.mark.load
async def test_a_survey_of_500_users_never_delays_a_live_answer_by_more_than_2_s(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    """`navigator survey start` queues 500 questions; the bot sends them within
    Telegram's 30 messages a second, and a user writing meanwhile is answered at once:
    live replies are claimed before the broadcast."""
    community = [fake_telegram.add_user(f"Участник {n}", started=True) for n in range(500)]
    anna = fake_telegram.add_user("Анна")
    now = datetime.now(UTC)
    store = Store(database_url)
    with store.transaction() as repo:
        for person in community:
            repo.user(UserRef(person.id, person.first_name), "ru")
        repo.session.flush()
        for person in community:
            repo.add_message(person.id, "in", "/start", now - timedelta(days=3))
    delays: list[float] = []
    async with start_bot(bot_settings()):
        def start_the_survey() -> int:
            with store.transaction() as repo:
                _, questions = survey.start(repo, Texts(), None, now - timedelta(days=30), now)
                enqueue(repo, questions)
                return len(questions)

        assert await asyncio.to_thread(start_the_survey) == 500
        surveyed = contains("Насколько MTL Support полезен")
        await fake_telegram.wait_for("sendMessage", text=surveyed, timeout=10)
        for _ in range(6):
            asked = time.monotonic()
            await fake_telegram.user_sends(anna, "/help")
            answer = await fake_telegram.wait_for("sendMessage", chat_id=anna, timeout=10)
            delays.append(answer.timestamp - asked)
            await asyncio.sleep(1.0)
        last_live = time.monotonic()
        deadline = time.monotonic() + 90
        while len(fake_telegram.calls_to("sendMessage", ok=True, text=surveyed)) < 500 and \
                time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    store.close()
    questions = fake_telegram.calls_to("sendMessage", ok=True, text=surveyed)
    assert len({call.params["chat_id"] for call in questions}) == len(questions) == 500, \
        "everyone asked, once"
    assert max(call.timestamp for call in questions) > last_live, \
        "the live answers were measured while the survey was being sent"
    assert max(delays) <= 2.0, delays
    assert fake_telegram.max_rate(window_s=1.0) <= 30


# --------------------------------------------------------------------------- Telegram says no


async def test_a_429_storm_is_survived_with_nothing_lost_and_limits_kept(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    users = [fake_telegram.add_user(f"Гость {n}") for n in range(6)]
    fake_telegram.inject_429("sendMessage", count=8, retry_after=1)
    async with start_bot(bot_settings()):
        for user in users:
            await fake_telegram.user_sends(user, "/start")
            await fake_telegram.user_sends(user, "/help")
        for user in users:
            for _ in range(2):
                await fake_telegram.wait_for("sendMessage", chat_id=user, timeout=20)
    refused = fake_telegram.calls_to("sendMessage", ok=False)
    assert len(refused) == 8 and all(c.status == 429 for c in refused)
    for user in users:
        texts = fake_telegram.texts_in(user)
        assert len(texts) == 2 and "Здравствуйте" in texts[0], "each reply once, in order"
        assert fake_telegram.max_rate(user, window_s=1.0) <= 3
    assert fake_telegram.max_rate(window_s=1.0) <= 30
    assert [r.status for r in outbox_rows(database_url)] == ["sent"] * 12


async def test_a_user_who_blocked_the_bot_is_marked_failed_not_retried(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    anna = fake_telegram.add_user("Анна")
    fake_telegram.inject_error("sendMessage", 403, "Forbidden: bot was blocked by the user",
                               chat_id=anna)
    async with start_bot(bot_settings()):
        await fake_telegram.user_sends(anna, "/start")
        await fake_telegram.wait_for("sendMessage", chat_id=anna, ok=False)
        await fake_telegram.assert_no_call("sendMessage", chat_id=anna, within=2.5, ok=None)
        await fake_telegram.user_sends(anna, "/help")  # unblocked: the chat works again
        await fake_telegram.wait_for("sendMessage", chat_id=anna, text=contains("/help"))
    first, second = outbox_rows(database_url)
    assert (first.status, first.attempts) == ("failed", 1)
    assert "blocked" in first.last_error
    assert second.status == "sent"


async def test_an_unreachable_agents_chat_keeps_the_card_until_it_is_fixed(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    anna = fake_telegram.add_user("Анна")
    agents = fake_telegram.add_supergroup("MTL Support agents", bot_status="left")
    async with start_bot(bot_settings(agents_chat_id=agents.id), allow_errors=True):
        await fake_telegram.user_sends(anna, "/human")
        await fake_telegram.user_sends(anna, "Помогите")
        await fake_telegram.wait_for("sendMessage", chat_id=anna, text=contains("№1"))
        await fake_telegram.wait_for("sendMessage", chat_id=agents, ok=False, timeout=10)
    card = [r for r in outbox_rows(database_url) if r.kind == "notify_agents"]
    assert [r.status for r in card] == ["pending"], "a card is never dropped"


# --------------------------------------------------------------------------- running


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_webhook_mode_serves_updates_and_refuses_a_wrong_secret(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    async with start_bot(bot_settings(), webhook=Webhook(url, "127.0.0.1", port, "s3cret")):
        assert fake_telegram.webhook_url == url
        await fake_telegram.user_sends(anna, "/start")
        await fake_telegram.wait_for("sendMessage", chat_id=anna)
        assert fake_telegram.last_webhook_status == 200

        forged = {"update_id": 1, "message": {
            "message_id": 99, "date": int(time.time()), "text": "/start",
            "chat": {"id": anna.id, "type": "private", "first_name": "Анна"},
            "from": anna.to_api(), "entities": [{"type": "bot_command", "offset": 0,
                                                 "length": 6}]}}
        async with aiohttp.ClientSession() as session:
            for headers in ({"X-Telegram-Bot-Api-Secret-Token": "guess"}, {}):
                async with session.post(url, json=forged, headers=headers) as response:
                    assert response.status == 403
        await fake_telegram.assert_no_call("sendMessage", chat_id=anna, within=1.0)


async def test_a_restart_delivers_what_was_pending_exactly_once(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url) -> None:
    anna = fake_telegram.add_user("Анна")
    fake_telegram.inject_429("sendMessage", chat_id=anna, retry_after=3)
    async with start_bot(bot_settings()):
        await fake_telegram.user_sends(anna, "/start")
        await fake_telegram.wait_for("sendMessage", chat_id=anna, ok=False)
    assert fake_telegram.texts_in(anna) == []
    assert [r.status for r in outbox_rows(database_url)] == ["pending"]

    async with start_bot(bot_settings()):  # a new process on the same database
        await fake_telegram.wait_for("sendMessage", chat_id=anna, timeout=10)
        await fake_telegram.assert_no_call("sendMessage", chat_id=anna, within=1.5)
    assert len(fake_telegram.texts_in(anna)) == 1
    [row] = outbox_rows(database_url)
    assert (row.status, row.attempts, row.uncertain) == ("sent", 2, False)
    assert row.message_id == fake_telegram.messages_in(anna)[0]["message_id"]


async def test_command_menus_are_set_per_language_for_private_chats_and_the_agents(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=True)
    async with start_bot(bot_settings(agents_chat_id=agents.id)):
        pass
    private = {"type": "all_private_chats"}
    ru = [c["command"] for c in fake_telegram.commands_for(private, "ru")]
    en = fake_telegram.commands_for(private, "en")
    assert ru[0] == "start" and "human" in ru
    assert [c["command"] for c in en] == ru and en[0]["description"] == "Main menu"
    assert fake_telegram.commands_for(private) == fake_telegram.commands_for(private, "ru")
    assert fake_telegram.commands_for() == [], "other groups get no menu"
    agents_scope = {"type": "chat", "chat_id": agents.id}
    assert [c["command"] for c in fake_telegram.commands_for(agents_scope, "ru")] == [
        "queue", "take", "resolve", "done", "refuse", "reopen", "note", "messages", "myname",
        "stats", "report", "find", "ignore", "approve", "airdrop", "myaccount"], \
        "the agents' own menu"


async def test_the_token_never_appears_in_the_logs(
        fake_telegram: FakeTelegram, bot_settings, start_bot, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    anna = fake_telegram.add_user("Анна")
    async with start_bot(bot_settings(log_level="DEBUG")):
        await fake_telegram.user_sends(anna, "/start")
        await fake_telegram.wait_for("sendMessage", chat_id=anna)
    secret_part = fake_telegram.token.split(":")[1]
    assert caplog.records and not [r for r in caplog.records if secret_part in r.getMessage()]


async def test_link_buttons_and_a_picture_reach_telegram_as_such(fake_telegram: FakeTelegram,
                                                                bot_settings, start_bot,
                                                                tmp_path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").write_text("""\
id: main
steps:
  menu:
    kind: message
    image: https://montelibero.org/logo.png
    text: {ru: "<b>Добро пожаловать</b> в Монтелиберо", en: Welcome}
    links:
      - label: {ru: Сайт, en: Website}
        url: https://montelibero.org
""", encoding="utf-8")
    marko = fake_telegram.add_user("Марко", language_code="ru")
    async with start_bot(bot_settings(), flows=load_flows(flows)):
        await fake_telegram.user_sends(marko, "/start")
        photo = await fake_telegram.wait_for("sendPhoto", chat_id=marko)
    assert photo.params["caption"] == "<b>Добро пожаловать</b> в Монтелиберо"
    keyboard = photo.params["reply_markup"]["inline_keyboard"]
    assert keyboard[0][0]["url"] == "https://montelibero.org"
    assert "callback_data" not in keyboard[0][0]
