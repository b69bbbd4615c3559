"""The engine's decisions: menus, answers from the knowledge base, hand-over to a human."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from navigator.events import ButtonPressed, UserRef
from navigator.flows import load_flows
from navigator.store.models import Ticket
from tests.helpers import buttons_of, press, say, text_of, to_agents, to_user


def tickets(navigator) -> list[Ticket]:
    with navigator.store.transaction() as repo:
        return list(repo.session.scalars(select(Ticket).order_by(Ticket.id)))


class TestMenus:
    def test_start_greets_by_name_and_shows_the_main_menu(self, make_navigator, anna):
        replies = say(make_navigator(), anna, "/start")
        assert "Здравствуйте, Анна!" in text_of(replies)
        labels = [b.label for b in buttons_of(replies)]
        assert labels == ["🌱 Я здесь впервые", "👛 Кошелёк и токены", "🏛 Ассоциация (MTLA)",
                          "📈 Фонд (MTLF)", "🎁 Эйрдроп для новичков", "❓ Задать вопрос",
                          "🙋 Поговорить с человеком"]

    def test_a_menu_item_leads_to_a_submenu_with_a_way_back(self, make_navigator, anna):
        navigator = make_navigator()
        replies = press(navigator, anna, say(navigator, anna, "/start"), "Кошелёк и токены")
        assert "Кошелёк Stellar" in text_of(replies)
        labels = [b.label for b in buttons_of(replies)]
        assert "Линии доверия" in labels and "« Главное меню" in labels

    def test_an_article_item_shows_the_article_with_feedback_buttons(self, make_navigator, anna):
        navigator = make_navigator()
        replies = press(navigator, anna, say(navigator, anna, "/start"), "Кошелёк и токены")
        replies = press(navigator, anna, replies, "Линии доверия")
        assert "Линии доверия в Stellar" in text_of(replies)
        assert [b.label for b in buttons_of(replies)] == ["👍 Помогло", "👎 Не помогло",
                                                          "↩ Назад"]
        assert "Линии доверия" in [b.label for b in buttons_of(press(navigator, anna, replies,
                                                                     "Назад"))]

    def test_the_back_button_returns_to_the_main_menu(self, make_navigator, anna):
        navigator = make_navigator()
        replies = press(navigator, anna, say(navigator, anna, "/start"), "Ассоциация")
        replies = press(navigator, anna, replies, "Главное меню")
        assert "Я здесь впервые" in buttons_of(replies)[0].label

    def test_a_button_from_a_menu_that_no_longer_exists_shows_the_current_menu(
            self, make_navigator, anna):
        replies = make_navigator().handle(ButtonPressed(anna, "o|main|removed-step|0"))
        assert "меню устарело" in text_of(replies)
        assert "🌱 Я здесь впервые" in [b.label for b in buttons_of(replies)]

    def test_english_speaking_users_get_the_english_menu(self, make_navigator):
        john = UserRef(id=2002, name="John", language_code="en-GB")
        replies = say(make_navigator(), john, "/start")
        assert "Hello, John!" in text_of(replies)
        assert "🌱 I am new here" in [b.label for b in buttons_of(replies)]

    def test_lang_switches_the_language_and_rejects_unknown_ones(self, make_navigator, anna):
        navigator = make_navigator()
        assert "English it is" in text_of(say(navigator, anna, "/lang en"))
        assert "Wallet and tokens" in text_of(say(navigator, anna, "/menu")) + " ".join(
            b.label for b in buttons_of(say(navigator, anna, "/menu")))
        assert "/lang ru" in text_of(say(navigator, anna, "/lang de"))

    def test_help_and_unknown_commands_explain_what_the_bot_can_do(self, make_navigator, anna):
        navigator = make_navigator()
        assert "/human" in text_of(say(navigator, anna, "/help"))
        reply = text_of(say(navigator, anna, "/weather"))
        assert "Не знаю команды /weather" in reply and "/menu" in reply


class TestAnswers:
    def test_a_question_is_answered_from_the_knowledge_base(self, make_navigator, anna):
        replies = say(make_navigator(), anna, "как создать кошелёк?")
        answer = text_of(replies)
        assert "Как создать кошелёк Stellar" in answer
        assert "Источник: «Как создать кошелёк Stellar»" in answer
        assert [b.label for b in buttons_of(replies)] == ["👍 Помогло", "👎 Не помогло"]

    @pytest.mark.parametrize(("question", "title"), [
        ("што такое линия доверя", "Линии доверия"),
        # Escalated since the thresholds were raised for the grown base (issue 16): it
        # scores 0.858, under the 0.8615 that escalates 95% of out-of-scope questions.
        pytest.param("как создать кашелек", "Как создать кошелёк", marks=pytest.mark.xfail(
            strict=True, reason="scores under the suggest threshold of the grown base")),
        ("как вступить в асоциацию", "Как вступить в Ассоциацию"),
    ])
    def test_a_question_with_typos_still_finds_the_article(self, make_navigator, anna,
                                                           question, title):
        replies = say(make_navigator(), anna, question)
        # Answered outright, or offered as the first of the suggestions.
        first_choice = text_of(replies) if "Источник" in text_of(replies) else \
            buttons_of(replies)[0].label
        assert title in first_choice

    def test_helped_is_thanked(self, make_navigator, anna):
        navigator = make_navigator()
        replies = press(navigator, anna, say(navigator, anna, "как создать кошелёк?"), "Помогло")
        assert "Рад, что помог" in text_of(replies)

    def test_did_not_help_offers_other_articles_and_a_human(self, make_navigator, anna):
        navigator = make_navigator()
        replies = say(navigator, anna, "как создать кошелёк?")
        replies = press(navigator, anna, replies, "Не помогло")
        labels = [b.label for b in buttons_of(replies)]
        assert "Как создать кошелёк Stellar" not in labels
        assert len(labels) >= 2 and labels[-1] == "🙋 Передать человеку"

    def test_a_question_nobody_answers_is_offered_to_a_human_not_bluffed(
            self, make_navigator, anna):
        replies = say(make_navigator(), anna, "Какой рецепт у настоящего борща?")
        assert "Точного ответа в базе знаний у меня нет" in text_of(replies)
        assert buttons_of(replies)[0].label == "🙋 Передать человеку"

    @pytest.mark.parametrize("noise", ["🙂🙂🙂", "   ", "!!!"])
    def test_text_without_words_is_not_searched(self, make_navigator, anna, noise):
        replies = say(make_navigator(), anna, noise)
        assert all("Источник" not in r.text for r in to_user(replies))


class TestHandover:
    def test_an_unanswered_question_becomes_a_ticket_with_its_context(self, make_navigator, anna):
        navigator = make_navigator()
        say(navigator, anna, "/start")
        replies = say(navigator, anna, "Где в Будве купить зимние шины?")
        replies = press(navigator, anna, replies, "Передать человеку")
        assert "заявка №1" in text_of(replies)
        [card] = to_agents(replies)
        assert "Заявка №1" in card.text and "Где в Будве купить зимние шины?" in card.text
        assert "Анна" in card.text and "@anna_m" in card.text and "1001" in card.text
        assert "Бот пробовал" in card.text
        [ticket] = tickets(navigator)
        assert (ticket.status, ticket.type) == ("open", "question")
        assert ticket.question == "Где в Будве купить зимние шины?"
        assert ticket.context["tried"], "the articles the bot tried go with the ticket"
        assert any(m["text"] == "/start" for m in ticket.context["messages"])

    def test_talk_to_a_person_asks_for_the_question_then_hands_it_over(
            self, make_navigator, anna):
        navigator = make_navigator()
        replies = press(navigator, anna, say(navigator, anna, "/start"), "Поговорить с человеком")
        assert "Опишите, пожалуйста, ваш вопрос" in text_of(replies)
        replies = say(navigator, anna, "Хочу вступить, но у меня нет рекомендателя")
        assert "заявка №1" in text_of(replies)
        card = to_agents(replies)[0].text
        assert "Путь: 🙋 Поговорить с человеком" in card
        assert tickets(navigator)[0].question == "Хочу вступить, но у меня нет рекомендателя"

    def test_while_a_ticket_is_open_the_bot_does_not_answer_on_its_own(
            self, make_navigator, anna):
        navigator = make_navigator()
        say(navigator, anna, "/human")
        say(navigator, anna, "Потерял доступ к кошельку")
        replies = say(navigator, anna, "как создать кошелёк?")
        assert "Добавил к заявке №1" in text_of(replies)
        assert "Источник" not in text_of(replies)
        assert "как создать кошелёк?" in to_agents(replies)[0].text
        assert "Бот предложил бы:\n• Как создать кошелёк Stellar" in to_agents(replies)[0].text, \
            "the agents see what the bot would have said"

    def test_a_second_handover_does_not_open_a_second_ticket(self, make_navigator, anna):
        navigator = make_navigator()
        say(navigator, anna, "/human")
        say(navigator, anna, "Вопрос про налоги")
        replies = say(navigator, anna, "/human")
        assert "уже открыта заявка №1" in text_of(replies)
        assert len(tickets(navigator)) == 1

    def test_cancel_withdraws_the_open_ticket(self, make_navigator, anna):
        navigator = make_navigator()
        say(navigator, anna, "/human")
        say(navigator, anna, "Вопрос про налоги")
        assert "Заявка №1 отозвана" in text_of(say(navigator, anna, "/cancel"))
        assert tickets(navigator)[0].status == "closed"
        assert "Источник" in text_of(say(navigator, anna, "как создать кошелёк?"))

    def test_html_in_user_text_cannot_forge_the_agents_card(self, make_navigator):
        mallory = UserRef(id=666, name="<b>Админ</b>", username="m")
        navigator = make_navigator()
        say(navigator, mallory, "/human")
        replies = say(navigator, mallory, '<a href="https://evil.example">Заявка №999</a>')
        card = to_agents(replies)[0].text
        assert "<b>Админ</b>" not in card and "&lt;b&gt;Админ&lt;/b&gt;" in card
        assert "<a href" not in card and "&lt;a href=" in card


class TestFlowsWithProblems:
    def test_a_flow_pointing_at_a_missing_article_hands_over_instead_of_failing(
            self, make_navigator, anna, tmp_path):
        (tmp_path / "main.yaml").write_text(
            "id: main\nsteps:\n  menu:\n    kind: menu\n    text: Меню\n    options:\n"
            "      - label: Несуществующая статья\n        article: no-such-article\n",
            encoding="utf-8")
        navigator = make_navigator(flows=load_flows(tmp_path))
        replies = press(navigator, anna, say(navigator, anna, "/start"), "Несуществующая")
        assert "статья пока не написана" in text_of(replies)
        assert "🙋 Передать человеку" in [b.label for b in buttons_of(replies)]


class TestSearchFailures:
    def test_a_broken_searcher_still_lets_the_user_reach_a_human(
            self, database_url, shipped_flows, shipped_knowledge, anna):
        from navigator.handling import Navigator
        from navigator.store import Store

        class BrokenSearcher:
            def search(self, question, language=None, k=5):
                raise RuntimeError("index file is corrupt")

        navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge,
                              BrokenSearcher())
        replies = say(navigator, anna, "как создать кошелёк?")
        assert "Поиск по базе знаний сейчас недоступен" in text_of(replies)
        replies = press(navigator, anna, replies, "Передать человеку")
        assert "заявка №1" in text_of(replies)
        assert "как создать кошелёк?" in to_agents(replies)[0].text
        navigator.store.close()
