"""No text vanishes for being long: whatever users, agents and the bot write reaches the
other side whole, in messages Telegram accepts (at most 4096 characters, 1024 for a
caption, counted after entity parsing), and a reply Telegram refuses for good is
reported in its ticket."""

from __future__ import annotations

import re

from sqlalchemy import select
from stellar_sdk import Keypair

from navigator.desk.tickets import opening_posts
from navigator.events import AgentRef, Attachment, DeliveryFailed
from navigator.render import html_to_plain
from navigator.store.models import Message, Ticket, TicketEvent
from navigator.telegram_html import CAPTION_LIMIT, TEXT_LIMIT, visible_length, visible_text
from navigator.texts import Texts
from tests.e2e.fakebot import parse_html
from tests.helpers import (
    agent_attaches,
    agent_says,
    copies_to_user,
    press,
    say,
    to_agents,
    to_user,
)

OLGA = AgentRef(id=501, name="Ольга Петрова", username="olga_p")
PHOTO = Attachment("photo", chat_id=-100500, message_id=77)


def long_question(characters: int) -> str:
    """A user's long, real-looking question: paragraphs of sentences."""
    sentence = ("Я перевёл EURMTL на свой кошелёк, но в Lobstr его не видно, хотя линия "
                "доверия открыта. ")
    paragraph = sentence * 4
    text = ""
    while len(text) < characters:
        text += paragraph.strip() + "\n\n"
    return text[:characters]


def fits(text: str, limit: int = TEXT_LIMIT) -> bool:
    """What the fake Bot API (Telegram's own parser, ported) would accept."""
    visible, _ = parse_html(text)
    return 0 < len(visible.strip()) <= limit


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def open_ticket(navigator, user, question: str):
    say(navigator, user, "/human")
    return say(navigator, user, question)


def airdrop_request(navigator, user):
    """A typed request (agents may refuse it): the newcomer airdrop through its flow."""
    press(navigator, user, say(navigator, user, "/start"), "Эйрдроп")
    return say(navigator, user, Keypair.random().public_key)


class TestALongQuestion:
    def test_the_card_shows_an_excerpt_and_the_question_follows_whole_in_parts(
            self, make_navigator, anna):
        question = long_question(5000)
        card, *parts = to_agents(open_ticket(make_navigator(), anna, question))
        assert all(fits(r.text) for r in (card, *parts))
        assert card.buttons and not any(p.buttons for p in parts)
        assert "Вопрос длинный: целиком — в следующих 2 сообщениях" in html_to_plain(card.text)
        assert [html_to_plain(p.text).split("\n")[0] for p in parts] == [
            "📄 Заявка №1 · вопрос целиком, часть 1/2:",
            "📄 Заявка №1 · вопрос целиком, часть 2/2:"]
        whole = " ".join(visible_text(p.text).split(":\n", 1)[1] for p in parts)
        assert words(whole) == words(question)
        assert all(r.opening for r in (card, *parts))

    def test_a_question_of_a_few_hundred_characters_stays_on_the_card(self, make_navigator,
                                                                     anna):
        question = long_question(900)
        [card] = to_agents(open_ticket(make_navigator(), anna, question))
        assert question.strip() in html_to_plain(card.text)

    def test_a_card_after_a_long_conversation_keeps_the_newest_messages_that_fit(self):
        # Twenty long messages, the user's and the bot's, each shown cut to 200 characters.
        history = [{"direction": "in" if n % 2 else "out",
                    "text": f"Сообщение {n}: " + "очень подробное описание " * 20}
                   for n in range(20)]
        context = {"user": {"id": 1001, "name": "Анна", "username": None, "language": "ru"},
                   "trail": ["🎁 Эйрдроп для новичков"] * 20,
                   "tried": [{"title": "Линии доверия в Stellar", "score": 0.8}] * 5,
                   "variables": {"account": "G" * 56, "comment": "подробности " * 100},
                   "messages": history}
        card, = opening_posts(Texts(), Ticket(id=1, type="question", question="Помогите"),
                              context, earlier_tickets=3)
        assert fits(card.text)
        plain = html_to_plain(card.text)
        assert "Сообщение 19" in plain and "Сообщение 0:" not in plain
        assert re.search(r"Последние сообщения \(ещё \d+ раньше не поместились\)", plain)

    def test_status_reminds_the_user_of_the_question_in_a_few_lines(self, make_navigator,
                                                                   anna):
        navigator = make_navigator()
        open_ticket(navigator, anna, long_question(5000))
        [status] = to_user(say(navigator, anna, "/status"))
        assert fits(status.text) and visible_length(status.text) < 500

    def test_a_long_message_in_an_open_ticket_reaches_the_agents_in_headed_parts(
            self, make_navigator, anna):
        navigator = make_navigator()
        open_ticket(navigator, anna, "Вопрос про EURMTL")
        message = long_question(4090)  # one Telegram message, too long with the header
        parts = to_agents(say(navigator, anna, message))
        assert len(parts) == 2 and all(fits(p.text) for p in parts)
        assert html_to_plain(parts[0].text).startswith("💬 Заявка №1 · Анна · часть 1/2:\n")
        assert html_to_plain(parts[1].text).startswith("💬 Заявка №1 · Анна · часть 2/2:\n")
        bodies = [visible_text(p.text).split(":\n", 1)[1] for p in parts]
        bodies[-1] = bodies[-1].split("🔎 Бот предложил бы")[0]  # after the last part
        assert words(" ".join(bodies)) == words(message)


    def test_a_long_comment_on_a_rating_reaches_the_agents_in_parts(self, make_navigator,
                                                                    anna):
        navigator = make_navigator()
        open_ticket(navigator, anna, "Как открыть линию доверия?")
        agent_says(navigator, OLGA, "/myname Ольга")
        rating = agent_says(navigator, OLGA, "/resolve", ticket=1)
        press(navigator, anna, rating, "5")
        comment = long_question(5000)
        parts = to_agents(say(navigator, anna, comment))
        assert len(parts) == 2 and all(fits(p.text) for p in parts)
        assert html_to_plain(parts[1].text).startswith(
            "💬 Отзыв пользователя к заявке №1 (оценка 5), часть 2/2: «")


class TestALongAnswer:
    def test_an_agents_long_answer_reaches_the_user_in_parts_each_signed(
            self, make_navigator, anna):
        navigator = make_navigator()
        open_ticket(navigator, anna, "Как открыть линию доверия?")
        agent_says(navigator, OLGA, "/myname Ольга")
        answer = long_question(4500)
        parts = to_user(agent_says(navigator, OLGA, answer, ticket=1))
        assert len(parts) == 2 and all(fits(p.text) for p in parts)
        heads = [html_to_plain(p.text).split("\n")[0] for p in parts]
        assert heads == ["💬 Ольга, поддержка · заявка №1 · часть 1/2:",
                         "💬 Ольга, поддержка · заявка №1 · часть 2/2:"]
        bodies = [visible_text(p.text).split(":\n", 1)[1] for p in parts]
        assert words(" ".join(bodies)) == words(answer)
        assert {p.ticket_id for p in parts} == {1}

    def test_an_answer_that_fits_is_one_message_without_part_numbers(self, make_navigator,
                                                                     anna):
        navigator = make_navigator()
        open_ticket(navigator, anna, "Как открыть линию доверия?")
        agent_says(navigator, OLGA, "/myname Ольга")
        answer = long_question(4000)  # with the signature: 4,039 characters
        [message] = to_user(agent_says(navigator, OLGA, answer, ticket=1))
        assert fits(message.text) and "часть" not in html_to_plain(message.text)[:60]

    def test_a_refusal_with_a_long_reason_is_signed_in_parts_and_echoed_briefly(
            self, make_navigator, anna):
        navigator = make_navigator()
        airdrop_request(navigator, anna)
        agent_says(navigator, OLGA, "/myname Ольга")
        reason = long_question(5000)
        replies = agent_says(navigator, OLGA, f"/refuse {reason}", ticket=1)
        signed, *_ = to_user(replies)
        assert html_to_plain(signed.text).startswith(
            "💬 Ольга, поддержка · заявка №1 · часть 1/2")
        [echo] = to_agents(replies)
        assert all(fits(r.text) for r in [*to_user(replies), echo])
        assert visible_length(echo.text) < 1000 and "…" in echo.text

    def test_a_caption_of_990_emoji_stays_a_caption(self, make_navigator, anna):
        navigator = make_navigator()
        open_ticket(navigator, anna, "Пришлите схему")
        agent_says(navigator, OLGA, "/myname Ольга")
        replies = agent_attaches(navigator, OLGA, PHOTO, "🎉" * 990, ticket=1)
        [copy] = copies_to_user(replies)
        assert not to_user(replies) and "🎉" * 990 in copy.caption
        assert visible_length(copy.caption) <= CAPTION_LIMIT
        assert fits(copy.caption, CAPTION_LIMIT)

    def test_a_caption_too_long_for_a_caption_follows_the_file_signed(self, make_navigator,
                                                                       anna):
        navigator = make_navigator()
        open_ticket(navigator, anna, "Пришлите схему")
        agent_says(navigator, OLGA, "/myname Ольга")
        replies = agent_attaches(navigator, OLGA, PHOTO, "Подпись к схеме. " * 62, ticket=1)
        [copy] = copies_to_user(replies)
        [text] = to_user(replies)
        assert copy.caption == "" and copy.ticket_id == 1
        assert html_to_plain(text.text).startswith("💬 Ольга, поддержка · заявка №1:\n")


class TestAFailedDelivery:
    def test_is_reported_in_the_tickets_thread_and_logged(self, make_navigator, anna):
        navigator = make_navigator()
        open_ticket(navigator, anna, "Как открыть линию доверия?")
        agent_says(navigator, OLGA, "/myname Ольга")
        [answer] = to_user(agent_says(navigator, OLGA, "Откройте Lobstr → Assets.", ticket=1))
        replies = navigator.handle(DeliveryFailed(1, anna.id, answer.text,
                                                  "Forbidden: bot was blocked by the user"))
        [report] = to_agents(replies)
        assert report.ticket_id == 1 and fits(report.text)
        assert html_to_plain(report.text).startswith(
            "⚠️ Не доставлено пользователю (заявка №1) — Forbidden: bot was blocked by the "
            "user:\n«💬 Ольга, поддержка · заявка №1: Откройте Lobstr → Assets.»\n")
        with navigator.store.transaction() as repo:
            logged = repo.session.scalars(select(TicketEvent.text).where(
                TicketEvent.kind == "undelivered")).all()
        assert logged == ["Forbidden: bot was blocked by the user"]

    def test_of_an_attachment_names_the_attachment(self, make_navigator, anna):
        navigator = make_navigator()
        open_ticket(navigator, anna, "Пришлите схему")
        replies = navigator.handle(DeliveryFailed(
            1, anna.id, "", "Bad Request: message to copy not found", attachment="photo"))
        assert "message to copy not found:\n[фото]\n" in html_to_plain(to_agents(replies)[0].text)

    def test_the_users_own_log_keeps_each_part_they_were_sent(self, make_navigator, anna):
        navigator = make_navigator()
        open_ticket(navigator, anna, "Как открыть линию доверия?")
        agent_says(navigator, OLGA, "/myname Ольга")
        agent_says(navigator, OLGA, long_question(4500), ticket=1)
        with navigator.store.transaction() as repo:
            out = repo.session.scalars(select(Message.text).where(
                Message.direction == "out", Message.text.like("💬 Ольга%"))).all()
        assert len(out) == 2
