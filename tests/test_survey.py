"""The usefulness survey: the programme's first number (at least 4 of 5), asked of the
community once per survey, opted out of with `/survey off`, counted by `navigator survey
status` and shown in the report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from navigator.cli import app
from navigator.events import ButtonPressed, SendText, Tick, UserRef
from navigator.handling import Navigator
from navigator.outbox import BROADCAST, LIVE, Outbox, enqueue
from navigator.report import Period, make_report, survey
from navigator.store import Store
from navigator.store.models import OutboxMessage, SurveyAnswer
from navigator.texts import Texts
from tests import helpers
from tests.helpers import database_dump, say

ZONE = ZoneInfo("Europe/Podgorica")
ANNA = UserRef(id=1001, name="Анна", language_code="ru")
BORIS = UserRef(id=1002, name="Борис", language_code="ru")
JOHN = UserRef(id=1003, name="John", language_code="en")


@pytest.fixture
def clock():
    return [datetime(2026, 11, 10, 9, 0, tzinfo=UTC)]


@pytest.fixture
def bot(database_url, shipped_flows, shipped_knowledge, clock):
    navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge, None,
                          clock=lambda: clock[0])
    yield navigator
    navigator.store.close()


def start_survey(bot: Navigator, clock, question: str | None = None,
                 since: datetime = datetime(2026, 11, 1, tzinfo=UTC)) -> list[SendText]:
    with bot.store.transaction() as repo:
        _, replies = survey.start(repo, Texts(), question, since, clock[0])
        enqueue(repo, replies)
    return replies  # type: ignore[return-value]


def told(replies) -> str:
    return "\n".join(r.text for r in replies if isinstance(r, SendText))


def press(bot: Navigator, user: UserRef, data: str) -> str:
    return "\n".join(r.text for r in bot.handle(ButtonPressed(user, data))
                     if isinstance(r, SendText))


class TestStartingASurvey:
    def test_everyone_who_wrote_since_the_day_is_asked_once_in_their_language(self, bot,
                                                                               clock):
        say(bot, ANNA, "/start")
        say(bot, JOHN, "/start")
        asked = start_survey(bot, clock)
        assert sorted(r.user_id for r in asked) == [ANNA.id, JOHN.id]
        anna, john = sorted(asked, key=lambda r: r.user_id)
        assert "Насколько MTL Support полезен вам" in anna.text
        assert "How useful is MTL Support to you" in john.text
        assert [b.label for b in anna.buttons] == ["1", "2", "3", "4", "5"]
        assert all(r.broadcast for r in asked)
        with bot.store.transaction() as repo:
            priorities = repo.session.scalars(select(OutboxMessage.priority)
                                              .where(OutboxMessage.kind == "send_text")).all()
        assert priorities.count(BROADCAST) == 2, "questions wait for live replies"

    def test_people_who_wrote_before_the_day_or_opted_out_are_not_asked(self, bot, clock):
        say(bot, BORIS, "/start")  # 10 November
        clock[0] += timedelta(days=5)
        say(bot, ANNA, "/start")
        say(bot, JOHN, "/survey off")
        asked = start_survey(bot, clock, since=datetime(2026, 11, 12, tzinfo=UTC))
        assert [r.user_id for r in asked] == [ANNA.id]

    def test_one_survey_is_open_at_a_time_and_each_person_is_asked_once_per_survey(
            self, bot, clock):
        say(bot, ANNA, "/start")
        start_survey(bot, clock)
        with pytest.raises(survey.SurveyError, match="still open"):
            start_survey(bot, clock)
        with bot.store.transaction() as repo:
            survey.close(repo, clock[0])
        assert [r.user_id for r in start_survey(bot, clock)] == [ANNA.id], \
            "the next survey asks again"

    def test_a_custom_question_is_shown_as_text_never_as_markup(self, bot, clock):
        say(bot, ANNA, "/start")
        [asked] = start_survey(bot, clock, question="Помог ли вам <b>бот</b>?")
        assert asked.text.startswith("Помог ли вам &lt;b&gt;бот&lt;/b&gt;?")


class TestAnswering:
    def test_a_score_then_a_comment_are_kept_with_the_answer(self, bot, clock):
        say(bot, ANNA, "/start")
        [asked] = start_survey(bot, clock)
        assert "ваша оценка 4 учтена" in press(bot, ANNA, asked.buttons[3].data)
        assert "Передадим координатору" in told(say(bot, ANNA, "Быстрее отвечайте вечером"))
        with bot.store.transaction() as repo:
            answer = repo.session.scalars(select(SurveyAnswer)).one()
            assert (answer.score, answer.comment) == (4, "Быстрее отвечайте вечером")

    def test_pressing_again_changes_the_score_and_skip_leaves_no_comment(self, bot, clock):
        say(bot, ANNA, "/start")
        [asked] = start_survey(bot, clock)
        press(bot, ANNA, asked.buttons[0].data)
        press(bot, ANNA, asked.buttons[4].data)
        assert "спасибо за оценку" in press(bot, ANNA, "sv|skip")
        say(bot, ANNA, "Где купить зимние шины?")
        with bot.store.transaction() as repo:
            answer = repo.session.scalars(select(SurveyAnswer)).one()
            assert (answer.score, answer.comment) == (5, None)

    def test_a_closed_survey_or_one_the_user_was_not_asked_takes_no_answer(self, bot, clock):
        say(bot, ANNA, "/start")
        [asked] = start_survey(bot, clock)
        assert "опрос уже закрыт" in press(bot, BORIS, asked.buttons[4].data)
        with bot.store.transaction() as repo:
            survey.close(repo, clock[0])
        assert "опрос уже закрыт" in press(bot, ANNA, asked.buttons[4].data)
        assert "опрос уже закрыт" in press(bot, ANNA, "sv|99|5")
        with bot.store.transaction() as repo:
            assert repo.session.scalars(select(SurveyAnswer.score)).all() == [None]

    def test_survey_off_and_on(self, bot):
        assert "больше не буду присылать опросы" in told(say(bot, ANNA, "/survey off"))
        assert "Опросы отключены" in told(say(bot, ANNA, "/survey"))
        assert "иногда буду спрашивать" in told(say(bot, ANNA, "/survey on"))


class TestCounting:
    def answered(self, bot, clock, scores: dict[UserRef, int]) -> None:
        for user in scores:
            say(bot, user, "/start")
        asked = {r.user_id: r for r in start_survey(bot, clock)}
        for user, score in scores.items():
            press(bot, user, asked[user.id].buttons[score - 1].data)

    def test_status_counts_asked_waiting_answered_and_the_mean(self, bot, clock,
                                                               database_url):
        self.answered(bot, clock, {ANNA: 5, BORIS: 3})
        say(bot, JOHN, "/start")
        result = CliRunner().invoke(app, ["survey", "status"],
                                    env={"NAVIGATOR_DATABASE_URL": database_url})
        assert result.exit_code == 0, result.output
        assert "Survey 1 (open, started 2026-11-10): 2 people asked, 2 still to be sent, " \
            "0 unreachable; 2 answered, mean 4.00 of 5 (target 4); 0 comments" \
            in result.output.replace("\n", " ")

    def test_the_report_shows_the_mean_against_the_target_and_the_answers(self, bot, clock,
                                                                          tmp_path):
        self.answered(bot, clock, {ANNA: 5, BORIS: 3, JOHN: 2})
        say(bot, BORIS, "Больше статей про ВНЖ")  # Борис's comment
        html = tmp_path / "r.html"
        report = make_report(bot.store, Period(date(2026, 11, 1), date(2026, 11, 30), ZONE),
                             clock[0], html=html).report
        assert report.survey is not None
        assert (report.survey.now.answered, report.survey.now.at_least_4) == (3, 1)
        assert report.survey.now.mean == pytest.approx(10 / 3)
        assert report.survey.now.scores == [0, 1, 1, 0, 1] and report.survey.asked == 3
        text = html.read_text(encoding="utf-8")
        assert "3,3" in text and "3 ответа" in text
        assert "ответили 3, средняя оценка 3,3 из 5" in text
        assert "«Больше статей про ВНЖ»" in text
        assert 'class="target missed"' in text.split("Полезность")[1].split("</div>\n</div>")[0]

    def test_a_report_before_any_survey_says_none_was_run(self, bot, clock, tmp_path):
        html = tmp_path / "r.html"
        make_report(bot.store, Period(date(2026, 11, 1), date(2026, 11, 30), ZONE),
                    clock[0], html=html)
        assert "Опрос ещё не проводился" in html.read_text(encoding="utf-8")


def test_live_replies_are_claimed_before_a_broadcast(database_url):
    """Of the heads due, the sender takes live rows first, however old the broadcast."""
    store = Store(database_url)
    with store.transaction() as repo:
        for n in range(5):
            repo.user(UserRef(id=2000 + n, name=f"Гость {n}"), "ru")
        repo.user(ANNA, "ru")
        enqueue(repo, [SendText(2000 + n, "Насколько мы полезны?", broadcast=True)
                       for n in range(5)])
        enqueue(repo, [SendText(ANNA.id, "Ответ на вопрос")])
    heads = Outbox(store).heads(now=1.0, limit=2)
    with store.transaction() as repo:
        first = repo.session.get(OutboxMessage, heads[0][0])
        assert (first.user_id, first.priority) == (ANNA.id, LIVE)
    store.close()


class TestPersonalData:
    """What the report keeps in a person's words (the questions the bot searched, survey
    comments) goes with the rest of their data: on /forgetme and after the retention."""

    QUESTION = "Как мне Евграф Пантелеймонович советовал открыть кошелёк?"
    COMMENT = "Спасибо Ферапонту Гаврилычу из Тивата"

    def anna_asks_and_comments(self, navigator: Navigator, clock, database_url: str) -> None:
        say(navigator, ANNA, self.QUESTION)
        [asked] = start_survey(navigator, clock)
        press(navigator, ANNA, asked.buttons[4].data)
        say(navigator, ANNA, self.COMMENT)
        everything = database_dump(database_url)
        assert self.QUESTION in everything and self.COMMENT in everything

    def test_forgetme_erases_her_searched_question_and_survey_comment(
            self, database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock):
        navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge,
                              shipped_searcher, clock=lambda: clock[0])
        self.anna_asks_and_comments(navigator, clock, database_url)
        asked = say(navigator, ANNA, "/forgetme")
        helpers.press(navigator, ANNA, asked, "Да, удалить")
        everything = database_dump(database_url)
        assert self.QUESTION not in everything and self.COMMENT not in everything
        with navigator.store.transaction() as repo:
            answer = repo.session.scalars(select(SurveyAnswer)).one()
            assert answer.score == 5, "the score still counts"
        navigator.store.close()

    def test_retention_erases_searched_questions_and_comments_after_a_year(
            self, database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock):
        navigator = Navigator(Store(database_url), shipped_flows, shipped_knowledge,
                              shipped_searcher, clock=lambda: clock[0], keep_messages_days=365)
        self.anna_asks_and_comments(navigator, clock, database_url)
        clock[0] += timedelta(days=200)
        navigator.handle(Tick())
        assert self.COMMENT in database_dump(database_url), "200 days: kept"
        clock[0] += timedelta(days=170)
        navigator.handle(Tick())
        everything = database_dump(database_url)
        assert self.QUESTION not in everything and self.COMMENT not in everything
        navigator.store.close()
