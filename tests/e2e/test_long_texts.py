"""No text vanishes for being long, end to end: `TelegramBot.serve` (what `navigator run`
runs) against the strict fake Bot API, which refuses what Telegram refuses (a text over
4096 characters after entity parsing, HTML it cannot parse...). A refusal would fail
these tests twice: the text would not arrive, and the bot would log the error."""

from __future__ import annotations

import re

import pytest

from navigator.ratelimit import Limit, Limits

from .fakebot import Call, FakeChat, FakeTelegram, FakeUser, contains

pytestmark = pytest.mark.slow

QUICK = Limits(group=Limit(5.0))  # the group limit has its own test; these post a lot


def long_text(characters: int, sentence: str) -> str:
    """Paragraphs of real-looking sentences, `characters` long."""
    text = ""
    while len(text) < characters:
        text += (sentence + " ") * 4 + "\n\n"
    return text[:characters].strip()


QUESTION = long_text(5000, "Я перевёл EURMTL на свой кошелёк, но в Lobstr его не видно, хотя "
                           "линия доверия открыта, и комиссия списалась.")
ANSWER = long_text(4500, "Откройте Lobstr, раздел Assets, и проверьте, что эмитент EURMTL "
                         "совпадает с указанным на сайте Фонда.")


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def body(call: Call) -> str:
    """A message's text after its first line (the header or the signature)."""
    return call.result["text"].split("\n", 1)[1]


async def agents_messages(fake: FakeTelegram, agents: FakeChat, count: int,
                          **match: object) -> list[Call]:
    calls = []
    for _ in range(count):
        calls.append(await fake.wait_for("sendMessage", chat_id=agents, timeout=20, **match))
    return calls


async def hand_over(fake: FakeTelegram, user: FakeUser, question: str) -> None:
    await fake.user_sends(user, "/human")
    await fake.wait_for("sendMessage", chat_id=user, timeout=30)
    await fake.user_sends(user, question)
    await fake.wait_for("sendMessage", chat_id=user, text=contains("№1"), timeout=30)


async def answering(fake: FakeTelegram, user: FakeUser, agents: FakeChat,
                    agent: FakeUser) -> Call:
    """`user`'s ticket №1 is open and `agent` signs as «Мария»; returns the ticket's card."""
    await hand_over(fake, user, "Не вижу EURMTL в кошельке")
    card = await fake.wait_for("sendMessage", chat_id=agents, text=contains("Заявка №1"))
    await fake.agent_says(agents, agent, "/myname Мария")
    await fake.wait_for("sendMessage", chat_id=agents, text=contains("«Мария»"))
    return card


async def test_a_5000_character_question_reaches_the_agents_whole_in_a_card_and_parts(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=True)
    async with start_bot(bot_settings(agents_chat_id=agents.id), limits=QUICK):
        await hand_over(fake_telegram, anna, QUESTION)
        topic = await fake_telegram.wait_for("createForumTopic", chat_id=agents)
        thread = topic.result["message_thread_id"]
        card, *parts = await agents_messages(fake_telegram, agents, 3, message_thread_id=thread)
    assert card.ok and card.result["text"].startswith("🆕 Заявка №1")
    assert "Вопрос длинный: целиком — в следующих 2 сообщениях" in card.result["text"]
    assert [p.result["text"].split("\n")[0] for p in parts] == [
        "📄 Заявка №1 · вопрос целиком, часть 1/2:", "📄 Заявка №1 · вопрос целиком, часть 2/2:"]
    assert words(" ".join(body(p) for p in parts)) == words(QUESTION)
    assert not fake_telegram.calls_to("sendMessage", ok=False)


async def test_a_4500_character_answer_reaches_the_user_whole_each_part_signed(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    oleg = fake_telegram.add_user("Олег")
    agents = fake_telegram.add_supergroup("MTL Support agents", members=[oleg])
    async with start_bot(bot_settings(agents_chat_id=agents.id), limits=QUICK):
        card = await answering(fake_telegram, anna, agents, oleg)
        await fake_telegram.agent_says(agents, oleg, ANSWER, reply_to=card.result)
        first = await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                             text=contains("часть 1/2"))
        second = await fake_telegram.wait_for("sendMessage", chat_id=anna,
                                              text=contains("часть 2/2"))
    for number, part in enumerate((first, second), 1):
        assert part.result["text"].startswith(
            f"💬 Мария, поддержка · заявка №1 · часть {number}/2:\n")
        assert len(part.result["text"]) <= 4096
    assert words(body(first) + " " + body(second)) == words(ANSWER)
    assert not fake_telegram.calls_to("sendMessage", ok=False)


async def test_an_answer_that_cannot_be_delivered_is_reported_in_the_tickets_thread(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна")
    oleg = fake_telegram.add_user("Олег")
    agents = fake_telegram.add_supergroup("MTL Support agents", members=[oleg])
    async with start_bot(bot_settings(agents_chat_id=agents.id), limits=QUICK):
        card = await answering(fake_telegram, anna, agents, oleg)
        fake_telegram.block_bot(anna)
        await fake_telegram.agent_says(agents, oleg, "Проверьте эмитента токена.",
                                       reply_to=card.result)
        refused = await fake_telegram.wait_for("sendMessage", chat_id=anna, ok=False)
        report = await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                              text=contains("Не доставлено пользователю"))
    assert refused.description == "Forbidden: bot was blocked by the user"
    assert report.result["text"].startswith(
        "⚠️ Не доставлено пользователю (заявка №1) — Forbidden: bot was blocked by the user:\n"
        "«💬 Мария, поддержка · заявка №1: Проверьте эмитента токена.»")
    # In the ticket's thread: a reply to its card.
    assert report.result["reply_to_message"]["message_id"] == card.result["message_id"]


async def test_after_a_deleted_topic_the_long_card_and_the_new_message_both_arrive(
        fake_telegram: FakeTelegram, bot_settings, start_bot) -> None:
    anna = fake_telegram.add_user("Анна", last_name="🇲🇪" * 70)  # a name too long for a topic
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=True)
    async with start_bot(bot_settings(agents_chat_id=agents.id), limits=QUICK):
        await hand_over(fake_telegram, anna, QUESTION)
        topic = await fake_telegram.wait_for("createForumTopic", chat_id=agents)
        thread = topic.result["message_thread_id"]
        await agents_messages(fake_telegram, agents, 3, message_thread_id=thread)

        async with fake_telegram.make_bot() as agent_app:
            await agent_app.delete_forum_topic(agents.id, thread)
        await fake_telegram.user_sends(anna, "Есть новости?")
        second = await fake_telegram.wait_for("createForumTopic", chat_id=agents, ok=True,
                                              timeout=20)
        new_thread = second.result["message_thread_id"]
        card, *parts, news = await agents_messages(fake_telegram, agents, 4,
                                                   message_thread_id=new_thread)
    assert card.result["text"].startswith("🆕 Заявка №1")
    assert words(" ".join(body(p) for p in parts)) == words(QUESTION)
    assert "Есть новости?" in news.result["text"]
    # The topic's name was cut to 128 characters between two flags, not inside one.
    name = topic.params["name"]
    assert len(name) <= 128 and name.endswith("🇲🇪…")
    # Refused only where the bot learns that the topic is gone.
    assert {(c.params["message_thread_id"], c.description)
            for c in fake_telegram.calls_to("sendMessage", ok=False)} == {
        (thread, "Bad Request: message thread not found")}
