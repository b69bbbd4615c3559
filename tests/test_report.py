"""`navigator report`: the programme's numbers for a period, as the coordinator shows them
to the association (HTML with charts), and the tickets as CSV."""

from __future__ import annotations

import csv
import io
import random
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from sqlalchemy import Column, Integer, MetaData, Table, create_engine
from typer.testing import CliRunner

from navigator.cli import app
from navigator.events import AgentRef, ButtonPressed, UserRef
from navigator.flows import FlowSet
from navigator.handling import Navigator
from navigator.knowledge import KnowledgeBase
from navigator.report import Period, PeriodError, make_report, period_for
from navigator.report.html import nice_max
from navigator.report.sql import percentiles
from navigator.store import Store
from navigator.transports.console import ConsoleChat
from tests.helpers import agent_says, press, say

ZONE = ZoneInfo("Europe/Podgorica")
NOVEMBER = Period(date(2026, 11, 1), date(2026, 11, 30), ZONE)
OLGA = AgentRef(id=501, name="Ольга Петрова", username="olga_p")
IVAN = AgentRef(id=502, name="Иван Сидоров", username="ivan_s")
# A valid Stellar account (checksum included) for the airdrop flow.
ACCOUNT = "GAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3QZ6Q"


def person(number: int, name: str = "Анна") -> UserRef:
    return UserRef(id=1000 + number, name=name, language_code="ru")


class VisibleText(HTMLParser):
    """The words a reader sees, in order, one space between them (no style, no SVG)."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._hidden += tag in ("style", "svg", "title")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "svg", "title")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.words.extend(data.split())


def visible(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(parser.words)


@pytest.fixture
def clock():
    return [datetime(2026, 11, 10, 9, 0, tzinfo=UTC)]


def _desk(url: str, flows, knowledge, searcher, clock) -> Navigator:
    navigator = Navigator(Store(url), flows, knowledge, searcher, clock=lambda: clock[0])
    agent_says(navigator, OLGA, "/myname Ольга")
    agent_says(navigator, IVAN, "/myname Иван")
    return navigator


@pytest.fixture
def desk(database_url, shipped_flows, shipped_knowledge, clock):
    """The bot on a fake clock (`clock[0]` is now), with Ольга and Иван signed in; no
    search (questions go to people)."""
    navigator = _desk(database_url, shipped_flows, shipped_knowledge, None, clock)
    yield navigator
    navigator.store.close()


@pytest.fixture
def searching_desk(database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock):
    """The same, with the shipped knowledge base's search."""
    navigator = _desk(database_url, shipped_flows, shipped_knowledge, shipped_searcher, clock)
    yield navigator
    navigator.store.close()


def later(clock, **delta: float) -> None:
    clock[0] += timedelta(**delta)


def hand_over(desk: Navigator, user: UserRef, question: str) -> None:
    say(desk, user, "/human")
    say(desk, user, question)


def rate(desk: Navigator, user: UserRef, ticket: int, stars: int) -> None:
    desk.handle(ButtonPressed(user, f"rate|{ticket}|{stars}"))


def report_of(desk: Navigator, clock, period: Period = NOVEMBER, **files):
    return make_report(desk.store, period, clock[0], html=files.get("html"),
                       csv=files.get("csv")).report


def a_week_of_the_desk(url: str, flows: FlowSet, knowledge: KnowledgeBase) -> Store:
    """A store with a few days of a desk in November: answered and rated requests (low
    ratings reopen them), a withdrawn one and an open one, on a fake clock."""
    clock = [datetime(2026, 11, 9, 22, 30, tzinfo=UTC)]
    store = Store(url)
    navigator = Navigator(store, flows, knowledge, None, clock=lambda: clock[0])
    olga, ivan = AgentRef(501, "Ольга Петрова"), AgentRef(502, "Иван Сидоров")
    agent_says(navigator, olga, "/myname Ольга")
    agent_says(navigator, ivan, "/myname Иван")
    for number in range(1, 9):
        user = UserRef(1000 + number, f"Участник {number}", language_code="ru")
        clock[0] += timedelta(hours=7)
        say(navigator, user, "/human")
        say(navigator, user, f"Вопрос номер {number}")
        agent = olga if number % 2 else ivan
        if number == 7:
            say(navigator, user, "/cancel")
        elif number < 7:
            clock[0] += timedelta(minutes=13 * number)
            agent_says(navigator, agent, "Ответ.", number)
            clock[0] += timedelta(hours=number)
            agent_says(navigator, agent, "/resolve", number)
            navigator.handle(ButtonPressed(user, f"rate|{number}|{1 + number % 5}"))
            say(navigator, user, "Спасибо!")
    return store


class TestTheFourTicketScenario:
    """The issue's acceptance scenario, as a user runs it: a console script, then the
    command."""

    SCRIPT = (
        "/human", "Где в Будве купить зимние шины?",
        ">> Здравствуйте! Шины есть в «Бемаксе».", ">> /resolve", "5",
        "Спасибо, очень быстро!",
        "/human", "Как оплатить членский взнос в MTLA?",
        ">> Через EURMTL, вот инструкция.", ">> /resolve", "3",
        "/start", "5", ACCOUNT, ">> /refuse этот аккаунт уже получал токены",
        "/human", "Не могу найти кнопку голосования",
    )

    def test_csv_has_the_four_tickets_and_html_the_shares_rating_and_charts(
            self, make_navigator, database_url, cli_env, tmp_path):
        chat = ConsoleChat(make_navigator(), UserRef(1, "Гость"),
                           Console(file=io.StringIO(), width=100), echo_input=True,
                           agent_pseudonym="Мария")
        chat.run(list(self.SCRIPT))
        result = subprocess.run(
            [sys.executable, "-m", "navigator", "report", "--out", "r.html", "--csv", "t.csv"],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
            env={**cli_env, "NAVIGATOR_DATABASE_URL": database_url})
        assert result.returncode == 0, result.stderr
        assert "4 tickets, processed 75%, solved 75%" in result.stdout

        rows = list(csv.DictReader((tmp_path / "t.csv").open(encoding="utf-8")))
        assert [(r["id"], r["type"], r["status"], r["outcome"], r["rating"], r["agent"])
                for r in rows] == [
            ("1", "question", "closed", "solved", "5", "Мария"),
            ("2", "question", "closed", "solved", "3", "Мария"),
            ("3", "airdrop", "resolved", "refused", "", "Мария"),
            ("4", "question", "open", "", "", ""),
        ]
        opened = datetime.fromisoformat(rows[0]["opened"])
        assert opened.utcoffset() in (timedelta(hours=1), timedelta(hours=2)), \
            "ISO times in the desk's zone, with the offset"
        assert rows[0]["first_response"] and rows[3]["first_response"] == ""
        # The question, "passed to people", the answer, the rating request.
        assert rows[0]["messages"] == "4"

        html = (tmp_path / "r.html").read_text(encoding="utf-8")
        text = visible(html)
        assert "Обработано 75% 3 из 4" in text
        assert "Решено 75% 3 из 4" in text
        assert "Средняя оценка 4,0 2 оценки" in text
        assert html.count("<svg") >= 5, "bars, daily charts and the heatmap"

    def test_the_same_report_in_english(self, desk, clock, tmp_path):
        anna = person(1)
        for number, stars in ((1, 5), (2, 3)):
            hand_over(desk, anna, "Где купить MTLAP?")
            agent_says(desk, OLGA, "Вот здесь.", number)
            agent_says(desk, OLGA, "/resolve", number)
            rate(desk, anna, number, stars)
        result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "en.html"),
                                          "--lang", "en"],
                                    env={"NAVIGATOR_DATABASE_URL": str(desk.store.engine.url)})
        assert result.exit_code == 0, result.output
        text = visible((tmp_path / "en.html").read_text(encoding="utf-8"))
        assert "Processed 100% 2 of 2" in text and "Mean rating 4.0 2 ratings" in text


class TestHeadline:
    def test_withdrawn_and_spam_tickets_are_left_out_of_the_shares(self, desk, clock):
        anna, boris, vera = person(1), person(2, "Борис"), person(3, "Вера")
        hand_over(desk, anna, "Как вступить в Ассоциацию?")
        say(desk, anna, "/cancel")
        hand_over(desk, boris, "Купите рекламу!!!")
        agent_says(desk, OLGA, "/ignore", 2)
        hand_over(desk, vera, "Где купить MTLAP?")
        later(clock, minutes=10)
        agent_says(desk, OLGA, "На DEX, вот ссылка.", 3)
        figures = report_of(desk, clock).now
        assert (figures.tickets, figures.withdrawn, figures.ignored) == (3, 1, 1)
        assert (figures.requests, figures.processed, figures.solved) == (1, 1, 0)

    def test_a_low_rating_counts_as_a_rating_but_its_reopened_request_is_not_solved(
            self, desk, clock):
        for number, stars in ((1, 2), (2, 5)):
            user = person(number)
            hand_over(desk, user, "Где купить MTLAP?")
            agent_says(desk, OLGA, "На DEX.", number)
            agent_says(desk, OLGA, "/resolve", number)
            rate(desk, user, number, stars)
        figures = report_of(desk, clock).now
        assert (figures.solved, figures.rated, figures.solved_rated) == (1, 2, 1)
        assert figures.mean_rating == 3.5 and figures.ratings == (0, 1, 0, 0, 1)

    def test_a_decided_request_is_processed_and_solved_without_an_answer(self, desk, clock):
        anna = person(1)  # applies to join the association: a request /done decides
        step = press(desk, anna, say(desk, anna, "/start"), "Ассоциация")
        press(desk, anna, step, "Вступить")
        for answer in ("да", "да", ACCOUNT, "да", "@petar_m", "да"):
            say(desk, anna, answer)
        later(clock, hours=3)
        agent_says(desk, IVAN, "/done", 1)
        figures = report_of(desk, clock).now
        assert (figures.processed, figures.solved, figures.typed) == (1, 1, 1)
        assert figures.first_response.median == 3 * 3600, "the decision was the response"

    def test_every_figure_has_its_value_for_the_previous_period(self, desk, clock):
        anna, boris = person(1), person(2, "Борис")
        clock[0] = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)  # October: the period before
        hand_over(desk, anna, "Где купить MTLAP?")
        agent_says(desk, OLGA, "На DEX.", 1)
        agent_says(desk, OLGA, "/resolve", 1)
        rate(desk, anna, 1, 5)
        clock[0] = datetime(2026, 11, 12, 12, 0, tzinfo=UTC)
        hand_over(desk, anna, "Как проголосовать?")
        hand_over(desk, boris, "Где устав?")
        agent_says(desk, IVAN, "Вот устав.", 3)
        agent_says(desk, IVAN, "/resolve", 3)
        rate(desk, boris, 3, 3)
        report = report_of(desk, clock)
        assert (report.now.tickets, report.now.solved, report.now.mean_rating) == (2, 1, 3.0)
        assert (report.before.tickets, report.before.solved, report.before.mean_rating) == \
            (1, 1, 5.0)
        assert report.now.ratings == (0, 0, 1, 0, 0) and report.before.ratings == (0, 0, 0, 0, 1)
        assert [(d.day, d.tickets, d.tickets_before) for d in report.days
                if d.tickets or d.tickets_before] == [(date(2026, 11, 12), 2, 0),
                                                     (date(2026, 11, 19), 0, 1)]


class TestSpeed:
    def test_medians_ninetieth_percentiles_and_buckets_come_from_the_ticket_log(self, desk,
                                                                                clock):
        # Answered after 10 min, 2 h and 30 h; resolved after 20 min, 5 h and 2 days.
        for number, (answer, resolve) in enumerate(
                [(600, 1200), (7200, 18000), (108000, 172800)], start=1):
            user = person(number)
            start = clock[0]
            hand_over(desk, user, f"Вопрос номер {number}")
            clock[0] = start + timedelta(seconds=answer)
            agent_says(desk, OLGA, "Ответ.", number)
            clock[0] = start + timedelta(seconds=resolve)
            agent_says(desk, OLGA, "/resolve", number)
            clock[0] = start + timedelta(days=3)
        figures = report_of(desk, clock).now
        first, resolution = figures.first_response, figures.resolution
        assert (first.count, first.median, first.p90) == (3, 7200, 108000)
        assert first.buckets == (1, 1, 0, 0, 1)
        assert (resolution.median, resolution.p90) == (18000, 172800)
        assert resolution.buckets == (1, 0, 1, 0, 1)

    def test_open_tickets_are_listed_oldest_first_with_how_long_they_wait(self, desk, clock):
        hand_over(desk, person(1), "Первый вопрос")
        later(clock, hours=5)
        hand_over(desk, person(2), "Второй вопрос")
        agent_says(desk, IVAN, "Смотрю.", 2)
        later(clock, hours=1)
        report = report_of(desk, clock)
        assert report.open_total == 2
        assert [(t.id, t.status, t.agent, t.waited) for t in report.open_tickets] == [
            (1, "open", "", timedelta(hours=6)), (2, "waiting_user", "Иван", timedelta(hours=1))]


class TestSelfService:
    def test_hand_overs_are_counted_by_why_and_the_bots_own_work_by_what_it_did(
            self, searching_desk):
        desk = searching_desk
        mars, trust, direct, airdrop = (person(n) for n in range(1, 5))
        # The bot found nothing: the user takes its offer of a person.
        press(desk, mars, say(desk, mars, "Какая погода будет на Марсе в четверг?"),
              "Передать человеку")
        # It answered; the answer did not help, nor did a suggested article.
        replies = press(desk, trust, say(desk, trust, "что такое линия доверия"), "Не помогло")
        replies = press(desk, trust, replies, "Безопасность")
        press(desk, trust, press(desk, trust, replies, "Не помогло"), "Передать человеку")
        hand_over(desk, direct, "Хочу поговорить с человеком")  # asked for a person
        press(desk, airdrop, say(desk, airdrop, "/start"), "Эйрдроп")  # a request from a menu
        say(desk, airdrop, ACCOUNT)
        report = report_of(desk, [datetime(2026, 11, 11, tzinfo=UTC)])
        assert report.now.reasons == {"no_answer": 1, "not_helped": 1, "asked": 1, "flow": 1}
        bot = report.now.bot
        assert (bot.searches, bot.answered, bot.escalated) == (2, 1, 1)
        assert (bot.helped, bot.not_helped, bot.chosen) == (0, 2, 1)
        assert report.recorded_since["self_service"] == datetime(2026, 11, 10, 9, 0,
                                                                 tzinfo=UTC)

    def test_questions_the_bot_could_not_answer_count_each_person_once(self, searching_desk,
                                                                       clock):
        for user in (person(1), person(1), person(2, "Борис")):
            say(searching_desk, user, "Какая погода будет на Марсе в четверг?")
            later(clock, minutes=5)
        hand_over(searching_desk, person(3, "Вера"), "Как сменить ник в чате?")
        report = report_of(searching_desk, clock)
        assert [(u.question, u.people) for u in report.unanswered] == [
            ("Какая погода будет на Марсе в четверг?", 2), ("Как сменить ник в чате?", 1)]


class TestWhenPeopleWrite:
    def test_days_and_hours_are_the_desks_local_time(self, desk, clock):
        clock[0] = datetime(2026, 11, 9, 23, 30, tzinfo=UTC)  # 00:30 on Tuesday the 10th there
        say(desk, person(1), "/start")
        report = report_of(desk, clock)
        assert [(d.day, d.messages) for d in report.days if d.messages] == \
            [(date(2026, 11, 10), 1)]
        assert report.heatmap[1][0] == 1 and sum(map(sum, report.heatmap)) == 1


class TestAgents:
    def test_agents_appear_by_pseudonym_never_by_their_accounts_name(self, desk, clock,
                                                                     tmp_path):
        for number in (1, 2):
            hand_over(desk, person(number), "Где купить MTLAP?")
            later(clock, minutes=30 * number)
            agent_says(desk, OLGA, "На DEX.", number)
            agent_says(desk, OLGA, "/resolve", number)
            rate(desk, person(number), number, 4 + number // 2)
        report = report_of(desk, clock, html=tmp_path / "r.html")
        [olga] = report.by_agent
        assert (olga.name, olga.now.tickets, olga.now.solved, olga.now.mean_rating) == \
            ("Ольга", 2, 2, 4.5)
        assert olga.now.median_first_response == 3600
        html = (tmp_path / "r.html").read_text(encoding="utf-8")
        assert "Ольга" in html and "Петрова" not in html and "olga_p" not in html


class TestTheFile:
    def test_an_empty_database_gives_a_report_that_says_so(self, database_url, tmp_path):
        store = Store(database_url)
        made = make_report(store, NOVEMBER, datetime(2026, 12, 1, tzinfo=UTC),
                           html=tmp_path / "r.html", csv=tmp_path / "t.csv")
        store.close()
        text = visible((tmp_path / "r.html").read_text(encoding="utf-8"))
        assert "Обработано — 0 из 0" in text and "Опрос ещё не проводился" in text
        assert "ещё не записывалось" in text
        assert (tmp_path / "t.csv").read_text(encoding="utf-8").splitlines() == [
            "id,desk,type,opened,first_response,resolved,closed,status,outcome,rating,agent,"
            "messages"]
        assert made.tickets_listed == 0

    def test_it_is_self_contained_and_escapes_what_users_wrote(self, desk, clock, tmp_path):
        hand_over(desk, person(1), '<script>alert("x")</script> <img src="http://evil/x">')
        report_of(desk, clock, html=tmp_path / "r.html")
        html = (tmp_path / "r.html").read_text(encoding="utf-8")
        assert "<script" not in html and not re.search(r'(src|href)="https?:', html)
        assert "&lt;script&gt;" in html
        assert "@media print" in html and "<style>" in html


class TestPeriods:
    def test_the_default_is_the_last_thirty_days_up_to_today(self):
        period = period_for(None, None, date(2026, 11, 25), ZONE)
        assert (period.first, period.last, period.days) == \
            (date(2026, 10, 27), date(2026, 11, 25), 30)
        previous = period.previous()
        assert (previous.first, previous.last) == (date(2026, 9, 27), date(2026, 10, 26))

    def test_one_end_given_counts_thirty_days_from_it_and_ends_must_be_in_order(self):
        assert period_for(None, date(2026, 3, 31), date(2026, 11, 25), ZONE).first == \
            date(2026, 3, 2)
        assert period_for(date(2026, 11, 1), None, date(2026, 11, 25), ZONE).last == \
            date(2026, 11, 25)
        with pytest.raises(PeriodError, match=r"starts \(2026-11-30\) after it ends"):
            period_for(date(2026, 11, 30), date(2026, 11, 1), date(2026, 11, 25), ZONE)

    def test_days_are_local_midnights_across_a_clock_change(self):
        october = Period(date(2026, 10, 25), date(2026, 10, 25), ZONE)  # summer time ends
        assert october.start == datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
        assert october.end - october.start == timedelta(hours=25)

    def test_the_command_says_what_is_wrong_with_a_date_or_language(self, tmp_path):
        runner = CliRunner()
        bad_date = runner.invoke(app, ["report", "--from", "01.11.2026"])
        assert bad_date.exit_code == 2 and "a day is written YYYY-MM-DD" in bad_date.output
        reversed_ends = runner.invoke(app, ["report", "--from", "2026-11-30",
                                            "--to", "2026-11-01"])
        assert reversed_ends.exit_code == 2 and "after it ends" in reversed_ends.output
        bad_language = runner.invoke(app, ["report", "--lang", "de"])
        assert bad_language.exit_code == 2 and "ru or en" in bad_language.output
        no_folder = runner.invoke(app, ["report", "--csv", str(tmp_path / "нет" / "t.csv")])
        assert no_folder.exit_code == 2 and "no such folder" in no_folder.output
        missing = tmp_path / "typo.db"
        no_database = runner.invoke(app, ["report", "--out", str(tmp_path / "r.html")],
                                    env={"NAVIGATOR_DATABASE_URL": f"sqlite:///{missing}"})
        assert no_database.exit_code == 1 and f"no database at {missing}" in no_database.output
        assert not missing.exists(), "a mistyped path is not created as an empty database"


def test_percentiles_are_the_values_at_the_same_ranks_as_in_python():
    """floor(n·p/100) + 1 of the sorted values, per group, by the database."""
    engine = create_engine("sqlite://")
    table = Table("durations", MetaData(), Column("kind", Integer), Column("seconds", Integer))
    table.metadata.create_all(engine)
    generator = random.Random(5)
    values = {kind: [generator.randrange(100_000) for _ in range(size)]
              for kind, size in ((1, 1), (2, 2), (3, 10), (4, 777))}
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"kind": k, "seconds": s}
                                            for k, v in values.items() for s in v])
        connection.execute(table.insert(), [{"kind": 4, "seconds": None}])
        found = percentiles(connection, table, "seconds", ["kind"], [50, 90])
    for kind, seconds in values.items():
        ordered = sorted(seconds)
        assert found[(kind,)] == {p: ordered[len(ordered) * p // 100] for p in (50, 90)}


def test_chart_scales_end_on_a_round_number_just_above_the_largest_value():
    assert [nice_max(v) for v in (0, 1, 7, 37, 201, 260, 4147)] == \
        [1, 1, 8, 40, 250, 300, 5000]
