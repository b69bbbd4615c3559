"""The desk: agents take, answer and resolve tickets; users rate; every change is logged."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from stellar_sdk import Keypair

from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentRef,
    AnonymousAgentMessage,
    Attachment,
    ButtonPressed,
    Tick,
    UserRef,
)
from navigator.handling import Navigator
from navigator.render import html_to_plain
from navigator.store import Store
from navigator.store.models import Digest, Message, Ticket, TicketEvent
from tests.helpers import (
    agent_attaches,
    agent_says,
    buttons_of,
    copies_to_user,
    press,
    say,
    text_of,
    to_agents,
    to_chat,
    to_user,
)

OLGA = AgentRef(id=501, name="Ольга Петрова", username="olga_p")
IVAN = AgentRef(id=502, name="Иван Сидоров", username="ivan_s")


def ticket(navigator: Navigator, number: int = 1) -> Ticket:
    with navigator.store.transaction() as repo:
        return repo.session.get_one(Ticket, number)


def log(navigator: Navigator, number: int = 1) -> list[tuple[str, str | None, str | None, str]]:
    with navigator.store.transaction() as repo:
        return [(e.kind, e.from_status, e.to_status, e.who) for e in repo.session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == number).order_by(TicketEvent.id))]


def hand_over(navigator: Navigator, user, question: str = "Где в Будве купить зимние шины?"):
    say(navigator, user, "/human")
    return say(navigator, user, question)


def status_reasons(navigator: Navigator, number: int = 1) -> list[tuple[str | None, str | None]]:
    """Each status change of the ticket with the reason logged with it (done, refused...)."""
    with navigator.store.transaction() as repo:
        return [(e.to_status, e.text) for e in repo.ticket_log(number) if e.kind == "status"]


def logged(navigator: Navigator, kind: str, number: int = 1) -> list[tuple[str, str | None]]:
    """The ticket's log entries of one kind: who, and the text."""
    with navigator.store.transaction() as repo:
        return [(e.who, e.text) for e in repo.ticket_log(number) if e.kind == kind]


@pytest.fixture
def clock():
    return [datetime(2026, 11, 21, 10, 0, tzinfo=UTC)]


@pytest.fixture
def timed(database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock):
    """A navigator on a fake clock (`clock[0]` is now; move it to let time pass)."""
    navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge,
                          shipped_searcher, clock=lambda: clock[0],
                          remind_untaken=timedelta(minutes=15),
                          remind_waiting=timedelta(minutes=60))
    yield navigator
    navigator.store.close()


def tick(navigator: Navigator, clock, minutes: float) -> str:
    """Let `minutes` pass, then the transport's Tick: what the agents' chat gets."""
    clock[0] += timedelta(minutes=minutes)
    return to_chat(navigator.handle(Tick()))


@pytest.fixture
def desk(make_navigator, anna):
    """A navigator with Anna's ticket №1 open, and Ольга signed as «Ольга»."""
    navigator = make_navigator()
    hand_over(navigator, anna)
    agent_says(navigator, OLGA, "/myname Ольга")
    return navigator


class TestAgentsAnswer:
    def test_with_no_answers_yet_the_user_is_promised_no_time(self, make_navigator, anna):
        assert "Обычно агенты" not in text_of(hand_over(make_navigator(), anna))

    def test_the_card_has_take_and_resolve_buttons(self, make_navigator, anna):
        [card] = to_agents(hand_over(make_navigator(), anna))
        assert [(b.label, b.data) for b in card.buttons] == [("✋ Взять", "take|1"),
                                                            ("✅ Решено", "resolve|1")]

    def test_the_user_gets_the_answer_signed_with_the_pseudonym_not_the_account(
            self, desk, anna):
        replies = agent_says(desk, OLGA, "Здравствуйте! Шины есть в «Бемаксе» у автовокзала.",
                             ticket=1)
        [message] = to_user(replies)
        assert message.user_id == anna.id
        assert "Ольга" in message.text and "«Бемаксе»" in message.text
        assert "Петрова" not in message.text and "olga_p" not in message.text
        assert (ticket(desk).status, ticket(desk).agent_id) == ("waiting_user", OLGA.id)

    def test_an_agent_without_a_pseudonym_is_told_and_nothing_is_sent(self, desk):
        replies = agent_says(desk, IVAN, "Добрый день, посмотрите в «Бемаксе»", ticket=1)
        assert to_user(replies) == []
        assert "сначала задайте псевдоним" in to_chat(replies)
        assert "НЕ отправлено" in to_chat(replies)
        assert ticket(desk).status == "open"

    def test_agent_html_reaches_the_user_as_text(self, desk):
        replies = agent_says(desk, OLGA, '<a href="https://evil.example">ваш кошелёк</a>',
                             ticket=1)
        assert "<a href" not in to_user(replies)[0].text

    def test_talk_in_the_agents_chat_outside_tickets_is_ignored(self, desk):
        assert agent_says(desk, OLGA, "Коллеги, кто сегодня дежурит?") == []

    def test_a_note_stays_with_the_agents(self, desk):
        replies = agent_says(desk, OLGA, "/note Пользователь уже писал в прошлом месяце",
                             ticket=1)
        assert to_user(replies) == []
        assert "Заметка к заявке №1 сохранена" in to_chat(replies)
        assert ("note", None, None, f"agent:{OLGA.id}") in log(desk)

    def test_find_searches_the_knowledge_base_for_an_answer(self, desk):
        found = to_chat(agent_says(desk, OLGA, "/find как создать кошелёк", ticket=1))
        assert "По запросу «как создать кошелёк»" in found
        assert "Как создать кошелёк Stellar" in found
        assert "Поиск по базе знаний: /find вопрос" in to_chat(agent_says(desk, OLGA, "/find"))

    def test_ignore_stops_relaying_a_spammer_but_the_bot_still_answers(self, desk, anna):
        replies = agent_says(desk, OLGA, "/ignore", ticket=1)
        assert "больше не передаётся агентам" in to_chat(replies)
        assert ticket(desk).status == "closed"
        assert "Источник" in text_of(say(desk, anna, "как создать кошелёк?"))
        replies = say(desk, anna, "/human")
        assert to_agents(replies) == [] and "Передать вопрос людям сейчас нельзя" in \
            text_of(replies)
        agent_says(desk, OLGA, "/unignore 1")
        assert "Опишите, пожалуйста, ваш вопрос" in text_of(say(desk, anna, "/human"))

    def test_a_command_can_name_the_ticket(self, desk):
        assert "Ольга взял(а) заявку №1" in to_chat(agent_says(desk, OLGA, "/take #1"))
        assert "ответьте на её карточку" in to_chat(agent_says(desk, OLGA, "/take"))
        assert "Заявки №7 нет" in to_chat(agent_says(desk, OLGA, "/take 7"))

    def test_the_user_writing_back_gives_the_turn_to_the_agent(self, desk, anna):
        agent_says(desk, OLGA, "Какой у вас размер шин?", ticket=1)
        replies = say(desk, anna, "205/55 R16")
        assert "205/55 R16" in to_agents(replies)[0].text
        assert "Источник" not in text_of(replies)
        assert ticket(desk).status == "claimed"


AGENTS_CHAT = -100777
PHOTO = Attachment("photo", AGENTS_CHAT, 41)
SCAN = Attachment("document", AGENTS_CHAT, 42, "справка_о_несудимости.pdf")


class TestAgentsAttachments:
    def test_a_photo_reaches_the_user_as_a_copy_signed_with_the_pseudonym(self, desk, anna):
        replies = agent_attaches(desk, OLGA, PHOTO, "Вот схема проезда к «Бемаксу».",
                                 ticket=1)
        [copy] = copies_to_user(replies)
        assert (copy.user_id, copy.attachment) == (anna.id, PHOTO)
        assert html_to_plain(copy.caption) == \
            "💬 Ольга, поддержка · заявка №1:\nВот схема проезда к «Бемаксу»."
        assert "Петрова" not in copy.caption and to_user(replies) == []

    def test_it_counts_as_an_answer_in_the_tickets_life_and_log(self, desk):
        agent_attaches(desk, OLGA, SCAN, "Образец заполнения", ticket=1)
        assert (ticket(desk).status, ticket(desk).agent_id) == ("waiting_user", OLGA.id)
        assert ("reply", None, None, f"agent:{OLGA.id}") in log(desk)
        assert "[документ справка_о_несудимости.pdf] Образец заполнения" in _replies(desk)

    def test_an_attachment_without_a_caption_is_signed_all_the_same(self, desk, anna):
        [copy] = copies_to_user(agent_attaches(desk, OLGA, SCAN, ticket=1))
        assert html_to_plain(copy.caption) == "💬 Ольга, поддержка · заявка №1"
        assert "[документ справка_о_несудимости.pdf] 💬 Ольга" in _history(desk, anna), \
            "the next ticket's card shows what the user was sent"

    def test_the_user_reads_the_signature_in_their_language(self, make_navigator):
        navigator = make_navigator()
        john = UserRef(1003, "John", None, "en")
        hand_over(navigator, john, "Where do I buy winter tyres in Budva?")
        agent_says(navigator, OLGA, "/myname Olga")
        [copy] = copies_to_user(agent_attaches(navigator, OLGA, PHOTO, "The map", ticket=1))
        assert html_to_plain(copy.caption) == "💬 Olga, support · request #1:\nThe map"

    def test_a_caption_too_long_for_telegram_follows_the_attachment(self, desk, anna):
        caption = "Подробная инструкция по шагам. " * 33  # 1023 characters
        replies = agent_attaches(desk, OLGA, PHOTO, caption, ticket=1)
        [copy] = copies_to_user(replies)
        [text] = to_user(replies)
        assert copy.caption == "", "the photo goes first, bare"
        assert html_to_plain(text.text).startswith("💬 Ольга, поддержка · заявка №1:\n")
        assert caption.strip() in html_to_plain(text.text)
        assert replies.index(copy) < replies.index(text)

    def test_an_agent_without_a_pseudonym_is_told_and_nothing_is_sent(self, desk):
        replies = agent_attaches(desk, IVAN, PHOTO, "Вот схема", ticket=1)
        assert copies_to_user(replies) == [] and to_user(replies) == []
        assert "сначала задайте псевдоним" in to_chat(replies)
        assert ticket(desk).status == "open"

    def test_a_closed_ticket_gets_no_attachment(self, desk, anna):
        press(desk, anna, agent_says(desk, OLGA, "/resolve", ticket=1), "5")
        replies = agent_attaches(desk, OLGA, PHOTO, "Забыла схему", ticket=1)
        assert copies_to_user(replies) == [] and "закрыта" in to_chat(replies)

    def test_a_sticker_cannot_be_signed_so_it_is_not_relayed(self, desk):
        replies = agent_attaches(desk, OLGA, Attachment("sticker", AGENTS_CHAT, 43),
                                 ticket=1)
        assert copies_to_user(replies) == []
        assert "[стикер] не передаётся пользователю" in to_chat(replies)
        assert ticket(desk).status == "open"

    def test_attachments_outside_tickets_are_not_ours(self, desk):
        assert agent_attaches(desk, OLGA, PHOTO, "Мем для коллег") == []


class TestAnonymousSenders:
    """Messages no person signed (an anonymous admin, a channel) are never acted on."""

    def test_an_anonymous_admins_answer_is_not_relayed_and_the_ticket_is_told_why(
            self, desk):
        replies = desk.handle(AnonymousAgentMessage(ticket_id=1))
        assert to_user(replies) == [] and copies_to_user(replies) == []
        [notice] = to_agents(replies)
        assert notice.ticket_id == 1
        assert "Анонимный администратор не может отвечать" in notice.text
        assert "Сообщение НЕ отправлено" in notice.text
        assert ticket(desk).status == "open" and ("reply", None, None) not in \
            [e[:3] for e in log(desk)]

    def test_a_post_on_behalf_of_a_channel_is_not_relayed(self, desk):
        replies = desk.handle(AnonymousAgentMessage(ticket_id=1, channel="MTL Новости"))
        assert to_user(replies) == []
        assert "от имени канала «MTL Новости» не передаются" in to_chat(replies)

    def test_an_anonymous_command_is_not_run(self, desk):
        replies = desk.handle(AnonymousAgentMessage(ticket_id=None, command="take"))
        assert "Команда /take НЕ выполнена" in to_chat(replies)
        assert ticket(desk).status == "open"

    def test_anonymous_talk_outside_tickets_is_left_alone(self, desk):
        assert desk.handle(AnonymousAgentMessage(ticket_id=None)) == []


def _replies(navigator: Navigator, number: int = 1) -> list[str]:
    with navigator.store.transaction() as repo:
        return [e.text or "" for e in repo.ticket_log(number) if e.kind == "reply"]


def _history(navigator: Navigator, user) -> str:
    with navigator.store.transaction() as repo:
        return "\n".join(m.text for m in repo.session.scalars(
            select(Message).where(Message.user_id == user.id)))


class TestTaking:
    def test_the_take_button_claims_the_ticket(self, desk):
        replies = desk.handle(AgentButtonPressed(OLGA, "take|1"))
        assert "Ольга взял(а) заявку №1" in to_chat(replies)
        assert (ticket(desk).status, ticket(desk).agent_id) == ("claimed", OLGA.id)

    def test_the_second_agent_is_told_who_has_it(self, desk):
        agent_says(desk, OLGA, "/take", ticket=1)
        replies = agent_says(desk, IVAN, "/take", ticket=1)
        assert "уже взял(а) Ольга" in to_chat(replies)
        assert ticket(desk).agent_id == OLGA.id
        assert "уже ваша" in to_chat(agent_says(desk, OLGA, "/take", ticket=1))

    def test_two_agents_taking_at_once_in_two_processes_one_wins(
            self, make_navigator, anna, database_url):
        for round_ in range(3):
            first, second = make_navigator(), make_navigator()
            user = anna if round_ == 0 else type(anna)(id=2000 + round_, name="Борис")
            hand_over(first, user)
            number = round_ + 1
            start = threading.Barrier(2)
            results: dict[int, str] = {}
            threads = [threading.Thread(target=_take_at_once,
                                        args=(navigator, agent, number, start, results))
                       for navigator, agent in ((first, OLGA), (second, IVAN))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            winners = [a for a, text in results.items() if "взял(а) заявку" in text]
            losers = [a for a, text in results.items() if "уже взял(а)" in text]
            assert len(winners) == 1 and len(losers) == 1, results
            assert ticket(first, number).agent_id == winners[0]
            claims = [e for e in log(first, number) if e[2] == "claimed"]
            assert len(claims) == 1, "one claim in the ticket's log"


def _take_at_once(navigator: Navigator, agent: AgentRef, number: int,
                  start: threading.Barrier, results: dict[int, str]) -> None:
    start.wait()
    results[agent.id] = to_chat(navigator.handle(AgentCommand(agent, "take", "", number)))


class TestLifecycle:
    def test_the_whole_life_of_a_ticket_is_logged(self, desk, anna):
        agent_says(desk, OLGA, "/take", ticket=1)
        agent_says(desk, OLGA, "Какой у вас размер шин?", ticket=1)
        say(desk, anna, "205/55 R16")
        agent_says(desk, OLGA, "Тогда в «Бемаксе», 60 € за штуку.", ticket=1)
        replies = agent_says(desk, OLGA, "/resolve", ticket=1)
        [request] = to_user(replies)
        assert "Мы решили ваш вопрос?" in request.text
        assert [b.label for b in request.buttons] == ["1", "2", "3", "4", "5", "🔁 Не решено"]
        assert "Ждём оценку" in to_chat(replies)
        replies = press(desk, anna, replies, "5")
        assert "Спасибо за оценку 5" in text_of(replies)
        assert "оценил заявку №1: 5 из 5" in to_chat(replies)
        assert (ticket(desk).status, ticket(desk).rating) == ("closed", 5)
        user, olga = f"user:{anna.id}", f"agent:{OLGA.id}"
        assert [e for e in log(desk) if e[0] == "status"] == [
            ("status", None, "open", user),
            ("status", "open", "claimed", olga),
            ("status", "claimed", "waiting_user", olga),
            ("status", "waiting_user", "claimed", user),
            ("status", "claimed", "waiting_user", olga),
            ("status", "waiting_user", "resolved", olga),
            ("status", "resolved", "closed", user),
        ]
        assert [e[0] for e in log(desk)].count("reply") == 2
        press(desk, anna, replies, "Пропустить")  # no comment on the rating
        assert "Источник" in text_of(say(desk, anna, "как создать кошелёк?")), \
            "after the rating the bot answers again"

    def test_a_low_rating_sends_the_ticket_back_to_the_agents(self, desk, anna):
        agent_says(desk, OLGA, "Посмотрите на сайте магазина.", ticket=1)
        replies = press(desk, anna, agent_says(desk, OLGA, "/resolve", ticket=1), "2")
        assert "Вернул заявку №1 агентам" in text_of(replies)
        [alert] = to_agents(replies)
        assert "на 2 из 5" in alert.text and alert.buttons[0].data == "take|1"
        assert (ticket(desk).status, ticket(desk).rating, ticket(desk).agent_id) == \
            ("open", 2, None)
        assert "Иван Сидоров взял(а) заявку №1" in to_chat(
            agent_says(desk, IVAN, "/take", ticket=1))
        assert ticket(desk).agent_id == IVAN.id

    def test_a_message_after_resolution_reopens_the_same_ticket(self, desk, anna):
        """Before the rating the user is continuing the same matter (see navigator.desk)."""
        agent_says(desk, OLGA, "Шины есть в «Бемаксе».", ticket=1)
        agent_says(desk, OLGA, "/resolve", ticket=1)
        replies = say(desk, anna, "Там закрыто, есть ещё варианты?")
        assert "Добавил к заявке №1" in text_of(replies)
        assert "Пользователь написал после решения" in to_chat(replies)
        assert "Там закрыто" in to_chat(replies)
        assert (ticket(desk).status, ticket(desk).agent_id) == ("claimed", OLGA.id)
        assert len(_tickets(desk)) == 1
        late = desk.handle(ButtonPressed(anna, "rate|1|5"))
        assert "снова в работе" in text_of(late), "an old rating button cannot close it"

    def test_a_rating_counts_once(self, desk, anna):
        replies = agent_says(desk, OLGA, "/resolve", ticket=1)
        press(desk, anna, replies, "4")
        assert "уже учтена" in text_of(press(desk, anna, replies, "1"))
        assert ticket(desk).rating == 4

    def test_a_rating_a_day_later_counts_even_mid_dialogue(self, timed, clock, anna):
        """Rating buttons are about the ticket, not the menus: no "welcome back" first."""
        hand_over(timed, anna)
        request = agent_says(timed, OLGA, "/resolve", ticket=1)
        press(timed, anna, say(timed, anna, "/start"), "Эйрдроп")  # asks for an account
        clock[0] += timedelta(hours=25)
        assert "Спасибо за оценку 4" in text_of(press(timed, anna, request, "4"))
        assert ticket(timed).rating == 4

    def test_reopen_brings_a_closed_ticket_back(self, desk, anna):
        press(desk, anna, agent_says(desk, OLGA, "/resolve", ticket=1), "5")
        replies = agent_says(desk, OLGA, "/reopen", ticket=1)
        assert "Ольга вернул(а) заявку №1 в работу" in to_chat(replies)
        assert "Заявка №1 снова открыта" in text_of(replies)
        assert ticket(desk).status == "claimed"
        assert "и так в работе" in to_chat(agent_says(desk, OLGA, "/reopen", ticket=1))

    def test_a_closed_ticket_is_not_answered_by_accident(self, desk, anna):
        press(desk, anna, agent_says(desk, OLGA, "/resolve", ticket=1), "5")
        replies = agent_says(desk, OLGA, "И ещё одно...", ticket=1)
        assert to_user(replies) == [] and "закрыта" in to_chat(replies)


class TestNotSolved:
    def test_not_solved_sends_the_ticket_back_to_the_agent_who_had_it(self, desk, anna):
        agent_says(desk, OLGA, "Шины есть в «Бемаксе» у автовокзала.", ticket=1)
        replies = press(desk, anna, agent_says(desk, OLGA, "/resolve", ticket=1), "Не решено")
        assert "Вернул заявку №1 агентам — человек продолжит здесь" in text_of(replies)
        [alert] = to_agents(replies)
        assert alert.ticket_id == 1, "told in the ticket's own thread"
        assert "нажал «Не решено» — заявка №1 снова в работе. Ольга, продолжите" in \
            to_chat(replies)
        assert (ticket(desk).status, ticket(desk).agent_id, ticket(desk).rating) == \
            ("claimed", OLGA.id, None)
        assert status_reasons(desk)[-1] == ("claimed", "not_solved")
        assert "Там закрыто" in to_chat(say(desk, anna, "Там закрыто, есть ещё варианты?")), \
            "what the user writes next goes to the agent"

    def test_not_solved_after_the_rating_changes_nothing(self, desk, anna):
        request = agent_says(desk, OLGA, "/resolve", ticket=1)
        press(desk, anna, request, "5")
        assert "уже учтена" in text_of(press(desk, anna, request, "Не решено"))
        assert ticket(desk).status == "closed"


class TestRatingComment:
    """After a rating the user may add a few words; the bot does not take them for a
    question (see navigator.desk)."""

    def test_the_message_after_a_rating_is_its_comment_shown_to_the_agents(self, desk, anna):
        agent_says(desk, OLGA, "Шины есть в «Бемаксе».", ticket=1)
        rated = press(desk, anna, agent_says(desk, OLGA, "/resolve", ticket=1), "5")
        assert "напишите пару слов о том, как мы помогли" in text_of(rated)
        assert [b.label for b in buttons_of(rated)] == ["Пропустить"]
        replies = say(desk, anna, "Спасибо, Ольга, шины купила!")
        assert "Передал ваши слова агентам" in text_of(replies)
        assert "Источник" not in text_of(replies), "not searched as a question"
        [comment] = to_agents(replies)
        assert comment.ticket_id == 1
        assert "Отзыв пользователя к заявке №1 (оценка 5): «Спасибо, Ольга, шины купила!»" in \
            to_chat(replies)
        assert logged(desk, "comment") == [(f"user:{anna.id}", "Спасибо, Ольга, шины купила!")]
        assert logged(desk, "rating") == [(f"user:{anna.id}", "5")]
        assert "Источник" in text_of(say(desk, anna, "как создать кошелёк?")), \
            "one comment; then the bot answers questions again"

    def test_skip_ends_the_wait(self, desk, anna):
        rated = press(desk, anna, agent_says(desk, OLGA, "/resolve", ticket=1), "4")
        assert "Хорошо" in text_of(press(desk, anna, rated, "Пропустить"))
        assert "Источник" in text_of(say(desk, anna, "как создать кошелёк?"))
        assert logged(desk, "comment") == []

    def test_a_command_ends_the_wait(self, desk, anna):
        press(desk, anna, agent_says(desk, OLGA, "/resolve", ticket=1), "4")
        say(desk, anna, "/status")
        assert "Источник" in text_of(say(desk, anna, "как создать кошелёк?"))
        assert logged(desk, "comment") == []

    def test_half_an_hour_later_a_message_is_a_new_question(self, timed, clock, anna):
        hand_over(timed, anna)
        press(timed, anna, agent_says(timed, OLGA, "/resolve", ticket=1), "5")
        clock[0] += timedelta(minutes=31)
        assert "Источник" in text_of(say(timed, anna, "как создать кошелёк?"))
        assert logged(timed, "comment") == []

    def test_after_a_low_rating_the_comment_joins_the_reopened_ticket(self, desk, anna):
        agent_says(desk, OLGA, "Посмотрите на сайте магазина.", ticket=1)
        rated = press(desk, anna, agent_says(desk, OLGA, "/resolve", ticket=1), "1")
        assert "напишите, что пошло не так: агент увидит это в заявке" in text_of(rated)
        replies = say(desk, anna, "На сайте ничего нет про зимние шины")
        assert "Добавил к заявке №1" in text_of(replies)
        assert "На сайте ничего нет про зимние шины" in to_chat(replies)
        assert logged(desk, "comment") == [(f"user:{anna.id}",
                                            "На сайте ничего нет про зимние шины")]
        say(desk, anna, "Может, есть другой магазин?")
        assert len(logged(desk, "comment")) == 1, "only the first message is the comment"
        assert ticket(desk).status == "open"


def airdrop_request(navigator: Navigator, user) -> list:
    """`user` asks for the newcomer airdrop through its flow: a typed request."""
    menu = say(navigator, user, "/start")
    press(navigator, user, menu, "Эйрдроп" if user.language_code == "ru" else "airdrop")
    return say(navigator, user, ACCOUNT)


ACCOUNT = Keypair.random().public_key


@pytest.fixture
def airdrop(make_navigator, anna):
    """Anna's airdrop request №1; Ольга signed as «Ольга»."""
    navigator = make_navigator()
    airdrop_request(navigator, anna)
    agent_says(navigator, OLGA, "/myname Ольга")
    return navigator


class TestTypedRequests:
    def test_a_request_card_can_be_done_or_refused(self, make_navigator, anna):
        [card] = to_agents(airdrop_request(make_navigator(), anna))
        assert [(b.label, b.data) for b in card.buttons] == [
            ("✋ Взять", "take|1"), ("✅ Решено", "resolve|1"),
            ("✔️ Выполнено", "done|1"), ("⛔ Отказать", "refuse|1")]

    def test_done_tells_the_user_which_request_was_fulfilled_and_asks_for_a_rating(
            self, airdrop, anna):
        replies = airdrop.handle(AgentButtonPressed(OLGA, "done|1"))
        [message] = to_user(replies)
        assert "Ваша заявка №1 «Эйрдроп для новичков» выполнена" in message.text
        assert [b.data for b in message.buttons] == [
            *(f"rate|1|{n}" for n in range(1, 6)), "unsolved|1"]
        assert "Ольга: заявка №1 выполнена, пользователю сообщили" in to_chat(replies)
        assert (ticket(airdrop).status, ticket(airdrop).agent_id) == ("resolved", OLGA.id)
        assert status_reasons(airdrop)[-1] == ("resolved", "done")
        assert "Заявка №1: выполнена" in text_of(say(airdrop, anna, "/status"))
        assert "Спасибо за оценку 5" in text_of(press(airdrop, anna, replies, "5"))

    def test_the_user_hears_it_in_their_language(self, make_navigator):
        john = UserRef(id=1003, name="John", language_code="en")
        navigator = make_navigator()
        airdrop_request(navigator, john)
        replies = agent_says(navigator, OLGA, "/done", ticket=1)
        assert "Your request #1 “Newcomer airdrop” has been fulfilled" in text_of(replies)
        assert [b.label for b in to_user(replies)[0].buttons][-1] == "🔁 Not solved"

    def test_the_refuse_button_asks_the_agent_for_the_reason(self, airdrop):
        replies = airdrop.handle(AgentButtonPressed(OLGA, "refuse|1"))
        assert to_user(replies) == []
        assert "напишите причину" in to_chat(replies) and "/refuse причина" in to_chat(replies)
        assert ticket(airdrop).status == "open"

    def test_a_refusal_reaches_the_user_signed_and_is_logged(self, airdrop, anna):
        reason = "Этот аккаунт уже получал эйрдроп в прошлом году."
        replies = agent_says(airdrop, OLGA, f"/refuse {reason}", ticket=1)
        signed, outcome = to_user(replies)
        assert "Ольга" in signed.text and reason in signed.text
        assert "Петрова" not in signed.text
        assert "Заявка №1 «Эйрдроп для новичков» отклонена" in outcome.text
        assert [b.data for b in outcome.buttons][-1] == "unsolved|1"
        assert "Ольга отказал(а) по заявке №1" in to_chat(replies)
        assert f"«{reason}»" in to_chat(replies)
        assert status_reasons(airdrop)[-1] == ("resolved", "refused")
        assert logged(airdrop, "reply") == [(f"agent:{OLGA.id}", reason)]
        assert "Заявка №1: отклонена, ждёт вашей оценки" in text_of(say(airdrop, anna, "/status"))

    def test_refuse_can_name_the_ticket(self, airdrop):
        replies = agent_says(airdrop, OLGA, "/refuse #1 Аккаунт не найден в сети Stellar")
        assert "Аккаунт не найден в сети Stellar" in to_user(replies)[0].text
        assert ticket(airdrop).status == "resolved"

    def test_a_refusal_needs_a_pseudonym(self, airdrop):
        replies = agent_says(airdrop, IVAN, "/refuse Нет оснований", ticket=1)
        assert to_user(replies) == [] and "НЕ отправлено" in to_chat(replies)
        assert ticket(airdrop).status == "open"

    def test_a_question_is_answered_not_done_or_refused(self, desk):
        replies = agent_says(desk, OLGA, "/done", ticket=1)
        assert "вопрос, а не запрос" in to_chat(replies) and to_user(replies) == []
        assert "вопрос, а не запрос" in to_chat(agent_says(desk, OLGA, "/refuse Нет", ticket=1))
        assert ticket(desk).status == "open"

    def test_a_decided_request_is_not_decided_twice(self, airdrop):
        agent_says(airdrop, OLGA, "/done", ticket=1)
        replies = agent_says(airdrop, IVAN, "/refuse Передумали", ticket=1)
        assert "уже resolved" in to_chat(replies) and to_user(replies) == []


class TestStatusAndQueue:
    def test_status_shows_the_users_ticket(self, desk, anna):
        assert "Заявка №1: ждёт агента" in text_of(say(desk, anna, "/status"))
        agent_says(desk, OLGA, "Уточните район, пожалуйста.", ticket=1)
        assert "агент Ольга ответил" in text_of(say(desk, anna, "/status"))

    def test_status_without_tickets(self, make_navigator, anna):
        assert "У вас нет заявок" in text_of(say(make_navigator(), anna, "/status"))

    def test_the_queue_lists_open_tickets_oldest_first_with_waiting_times(
            self, database_url, shipped_flows, shipped_knowledge, shipped_searcher, anna):
        now = [datetime(2026, 11, 21, 10, 0, tzinfo=UTC)]
        navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge,
                              shipped_searcher, clock=lambda: now[0])
        hand_over(navigator, anna, "Где в Будве купить зимние шины?")
        now[0] += timedelta(minutes=25)
        hand_over(navigator, type(anna)(id=1002, name="Борис"), "Как получить ВНЖ?")
        now[0] += timedelta(minutes=10)
        agent_says(navigator, OLGA, "/myname Ольга")
        agent_says(navigator, OLGA, "/take", ticket=2)
        queue = to_chat(agent_says(navigator, OLGA, "/queue"))
        assert queue.index("№1") < queue.index("№2")
        assert "№1 · open · Анна · ждёт 35 мин · Где в Будве купить зимние шины?" in queue
        assert "№2 · claimed · Ольга · Борис · ждёт 10 мин · Как получить ВНЖ?" in queue
        navigator.store.close()

    def test_an_empty_queue(self, make_navigator):
        assert "Очередь пуста" in to_chat(agent_says(make_navigator(), OLGA, "/queue"))


def _tickets(navigator: Navigator) -> list[Ticket]:
    with navigator.store.transaction() as repo:
        return list(repo.session.scalars(select(Ticket)))


def test_only_the_user_the_ticket_belongs_to_can_rate_it(desk, anna):
    agent_says(desk, OLGA, "/resolve", ticket=1)
    mallory = type(anna)(id=666, name="Мэллори")
    assert to_user(desk.handle(ButtonPressed(mallory, "rate|1|1"))) == []
    assert ticket(desk).status == "resolved"


class TestReminders:
    def test_an_untaken_ticket_is_raised_once_per_interval(self, timed, clock, anna):
        hand_over(timed, anna)
        assert tick(timed, clock, 14) == ""
        assert "Заявку №1 никто не взял уже 15 мин" in tick(timed, clock, 1)
        assert tick(timed, clock, 1) == "", "not a flood: once per interval"
        assert tick(timed, clock, 13) == ""
        assert "никто не взял уже 30 мин" in tick(timed, clock, 1)
        agent_says(timed, OLGA, "/take", ticket=1)
        assert tick(timed, clock, 20) == "", "taken: the user waits less than an hour"

    def test_a_user_waiting_for_an_answer_is_raised(self, timed, clock, anna):
        hand_over(timed, anna)
        agent_says(timed, OLGA, "/myname Ольга")
        agent_says(timed, OLGA, "Какой у вас размер шин?", ticket=1)
        assert tick(timed, clock, 120) == "", "the agent answered: the user's turn"
        say(timed, anna, "205/55 R16")
        assert tick(timed, clock, 59) == ""
        assert "Ольга, пользователь ждёт ответа по заявке №1 уже 1 ч 0 мин" in \
            tick(timed, clock, 1)
        assert tick(timed, clock, 30) == ""
        assert ("reminder", None, None, "bot") in log(timed)

    def test_an_unrated_resolution_closes_after_three_days(self, timed, clock, anna):
        hand_over(timed, anna)
        agent_says(timed, OLGA, "/resolve", ticket=1)
        tick(timed, clock, 3 * 24 * 60 - 1)
        assert ticket(timed).status == "resolved"
        tick(timed, clock, 1)
        assert (ticket(timed).status, ticket(timed).rating) == ("closed", None)
        assert ("status", "resolved", "closed", "bot") in log(timed)
        assert "Источник" in text_of(say(timed, anna, "как создать кошелёк?")), \
            "closed: a new message is a new question for the bot"

    def test_reminders_survive_a_restart_without_repeating(self, timed, clock, anna):
        hand_over(timed, anna)
        assert "никто не взял" in tick(timed, clock, 15)
        restarted = Navigator(Store(timed.store.engine.url.render_as_string(False)),
                              timed.flows, timed.knowledge, None, clock=lambda: clock[0])
        assert to_chat(restarted.handle(Tick())) == ""
        restarted.store.close()


def test_stats_count_tickets_response_and_resolution_times_and_ratings(
        database_url, shipped_flows, shipped_knowledge, shipped_searcher, anna):
    clock = [datetime(2026, 11, 21, 10, 0, tzinfo=UTC)]
    navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge,
                          shipped_searcher, clock=lambda: clock[0])
    boris = type(anna)(id=1002, name="Борис")
    hand_over(navigator, anna)
    agent_says(navigator, OLGA, "/myname Ольга")
    clock[0] += timedelta(minutes=12)
    agent_says(navigator, OLGA, "Шины есть в «Бемаксе».", ticket=1)
    clock[0] += timedelta(minutes=30)
    press(navigator, anna, agent_says(navigator, OLGA, "/resolve", ticket=1), "4")
    clock[0] += timedelta(days=3)
    handed = text_of(hand_over(navigator, boris, "Как получить ВНЖ?"))
    assert "Обычно агенты отвечают примерно за 12 мин" in handed, "roughly when, from the log"
    stats = to_chat(agent_says(navigator, OLGA, "/stats"))
    assert "сейчас в работе: 1" in stats
    assert "сегодня: открыто 1, решено 0; первый ответ (медиана) —" in stats
    assert "7 дней: открыто 2, решено 1; первый ответ (медиана) 12 мин, решение 42 мин; " \
        "оценка 4.0 (1)" in stats
    navigator.store.close()


def test_an_english_speaker_is_told_the_usual_answer_time_in_english(
        database_url, shipped_flows, shipped_knowledge, anna):
    clock = [datetime(2026, 11, 21, 10, 0, tzinfo=UTC)]
    navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge, None,
                          clock=lambda: clock[0])
    hand_over(navigator, anna)
    agent_says(navigator, OLGA, "/myname Ольга")
    clock[0] += timedelta(hours=1, minutes=5)
    agent_says(navigator, OLGA, "Шины есть в «Бемаксе».", ticket=1)
    james = type(anna)(id=1003, name="James", language_code="en")
    handed = text_of(hand_over(navigator, james, "Where do I buy winter tyres in Budva?"))
    assert "Agents usually answer in about 1 h 5 min" in handed
    navigator.store.close()


class TestDailyDigest:
    """Once a day, at 9 in Podgorica (UTC+1 in November), the agents' chat gets a digest."""

    @pytest.fixture
    def clock(self):
        return [datetime(2026, 11, 20, 12, 0, tzinfo=UTC)]  # 13:00 in Podgorica

    @pytest.fixture
    def daily(self, make_daily):
        return make_daily()

    @pytest.fixture
    def make_daily(self, database_url, shipped_flows, shipped_knowledge, clock):
        """A navigator with the digest at 9; each call is another process on one database."""
        stores: list[Store] = []

        def make() -> Navigator:
            stores.append(Store(database_url))
            return Navigator(stores[-1], shipped_flows, shipped_knowledge, None,
                             clock=lambda: clock[0], digest_hour=9)

        yield make
        for store in stores:
            store.close()

    def at(self, clock, moment: datetime) -> None:
        clock[0] = moment

    def test_it_says_what_is_open_who_waits_and_how_yesterday_went(
            self, daily, clock, anna):
        assert "Сводка на 20.11.2026" in tick(daily, clock, 0), \
            "started after nine: today's digest comes at once"
        hand_over(daily, anna)
        agent_says(daily, OLGA, "/myname Ольга")
        agent_says(daily, OLGA, "Шины есть в «Бемаксе».", ticket=1)
        press(daily, anna, agent_says(daily, OLGA, "/resolve", ticket=1), "4")
        self.at(clock, datetime(2026, 11, 20, 20, 0, tzinfo=UTC))
        hand_over(daily, UserRef(id=1002, name="Борис"), "Как получить ВНЖ?")
        self.at(clock, datetime(2026, 11, 20, 21, 0, tzinfo=UTC))
        hand_over(daily, UserRef(id=1003, name="Вера"), "Можно ли оплатить взнос в евро?")
        agent_says(daily, OLGA, "/take", ticket=3)

        self.at(clock, datetime(2026, 11, 21, 7, 59, tzinfo=UTC))
        assert "Сводка" not in tick(daily, clock, 0), "8:59 in Podgorica"
        digest = tick(daily, clock, 1)
        assert "Сводка на 21.11.2026" in digest
        assert "В работе 2: не взяты — 1, ход агента — 1, ход пользователя — 0." in digest
        assert "Никто не взял:\n№2 · Борис · ждёт 12 ч 0 мин · Как получить ВНЖ?" in digest
        assert "Пользователь ждёт ответа:\n" \
            "№3 · Ольга · Вера · ждёт 11 ч 0 мин · Можно ли оплатить взнос в евро?" in digest
        assert "Вчера: открыто 3, решено 1, оценок 1 (средняя 4.0)." in digest
        assert "Сводка" not in tick(daily, clock, 1)
        assert "Сводка" not in tick(daily, clock, 14 * 60), "23:00: still the same day"
        next_day = tick(daily, clock, 10 * 60)
        assert "Сводка на 22.11.2026" in next_day
        assert "Вчера: открыто 0, решено 0, оценок 0." in next_day

    def test_a_restarted_process_does_not_post_it_again(self, make_daily, clock):
        assert "Сводка на 20.11.2026" in tick(make_daily(), clock, 0)
        assert "Сводка" not in tick(make_daily(), clock, 1)

    def test_two_processes_ticking_at_once_post_it_once(self, make_daily, clock):
        first, second = make_daily(), make_daily()
        for day in range(3):
            start = threading.Barrier(2)
            posted: list[str] = []
            threads = [threading.Thread(target=_tick_at_once, args=(n, start, posted))
                       for n in (first, second)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len([p for p in posted if "Сводка" in p]) == 1, (day, posted)
            clock[0] += timedelta(days=1)
        with first.store.transaction() as repo:
            assert repo.session.scalar(select(func.count()).select_from(Digest)) == 3

    def test_a_long_queue_is_cut_short(self, daily, clock):
        for n in range(12):
            hand_over(daily, UserRef(id=2000 + n, name=f"Гость {n}"), "Как получить ВНЖ?")
        digest = tick(daily, clock, 0)
        assert digest.count("· ждёт 0 мин ·") == 10
        assert "…и ещё 2 — /queue" in digest

    def test_without_an_hour_there_is_no_digest(self, timed, clock):
        assert "Сводка" not in tick(timed, clock, 0)
        assert "Сводка" not in tick(timed, clock, 24 * 60)


def _tick_at_once(navigator: Navigator, start: threading.Barrier, posted: list[str]) -> None:
    start.wait()
    posted.append(to_chat(navigator.handle(Tick())))
