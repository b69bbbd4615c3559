"""The report in the bot: `/report` in the agents' chat sends the HTML file there, and the
Monday digest is followed by the week's report. The engine decides the period; the
outbox keeps only the period; the transport renders the file when it sends it."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from sqlalchemy import select

from navigator.events import AgentRef, AgentsReport, AgentsText, Tick, UserRef
from navigator.handling import Navigator
from navigator.outbox import reply_of
from navigator.report import PeriodError, period_in_words
from navigator.settings import Settings
from navigator.store import Store
from navigator.store.models import OutboxMessage
from navigator.transports.console import ConsoleChat
from tests.helpers import agent_says, say

ZONE = ZoneInfo("Europe/Podgorica")
OLGA = AgentRef(id=501, name="Ольга Петрова", username="olga_p")
ANNA = UserRef(id=1001, name="Анна", language_code="ru")


@pytest.fixture
def clock():
    # Wednesday 25 November 2026, 00:30 in Podgorica: still the 24th in UTC.
    return [datetime(2026, 11, 24, 23, 30, tzinfo=UTC)]


@pytest.fixture
def make_desk(database_url, shipped_flows, shipped_knowledge, clock):
    stores: list[Store] = []

    def make(**options) -> Navigator:
        stores.append(Store(database_url))
        return Navigator(stores[-1], shipped_flows, shipped_knowledge, None,
                         clock=lambda: clock[0], **options)

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def desk(make_desk):
    return make_desk()


def reports(replies) -> list[AgentsReport]:
    return [r for r in replies if isinstance(r, AgentsReport)]


class TestReportCommand:
    def test_report_7_asks_for_the_last_seven_local_days_as_a_file(self, desk):
        replies = agent_says(desk, OLGA, "/report 7")
        assert replies == [AgentsReport(
            date(2026, 11, 19), date(2026, 11, 25), "Europe/Podgorica",
            "📊 Отчёт за 19.11.2026 – 25.11.2026 (7 дн.): откройте файл в браузере.", "ru")]

    def test_the_number_is_days_not_a_ticket_even_when_such_a_ticket_exists(self, desk):
        say(desk, ANNA, "/human")
        say(desk, ANNA, "Где купить зимние шины в Будве?")
        [report] = reports(agent_says(desk, OLGA, "/report 1"))
        assert (report.first, report.last) == (date(2026, 11, 25), date(2026, 11, 25))

    def test_a_month_is_cut_at_today_and_no_period_means_thirty_days(self, desk):
        [month] = reports(agent_says(desk, OLGA, "/report 2026-11"))
        assert (month.first, month.last) == (date(2026, 11, 1), date(2026, 11, 25))
        [october] = reports(agent_says(desk, OLGA, "/report 2026-10"))
        assert (october.first, october.last) == (date(2026, 10, 1), date(2026, 10, 31))
        [default] = reports(agent_says(desk, OLGA, "/report"))
        assert (default.first, default.last) == (date(2026, 10, 27), date(2026, 11, 25))

    @pytest.mark.parametrize("words", ["вчера", "2026-13", "0", "400", "2026-11-20 2026-11-01",
                                       "2027-01", "2026-11-01 2026-11-02 2026-11-03"])
    def test_a_period_it_cannot_read_gets_the_usage_and_no_file(self, desk, words):
        replies = agent_says(desk, OLGA, f"/report {words}")
        assert not reports(replies)
        [usage] = replies
        assert isinstance(usage, AgentsText)
        assert f"Не понял период «{words}»" in usage.text
        assert "/report 2026-11 — месяц" in usage.text

    def test_the_outbox_keeps_the_period_and_gives_the_same_reply_back(self, desk):
        [report] = agent_says(desk, OLGA, "/report 2026-11-01 2026-11-15")
        with desk.store.transaction() as repo:
            row = repo.session.scalars(select(OutboxMessage)
                                       .where(OutboxMessage.kind == "agents_report")).one()
            assert row.lane == "agents"
            assert row.payload["first"] == "2026-11-01"
            assert reply_of(row) == report

    def test_the_terminal_writes_the_file_and_prints_where(self, desk, tmp_path):
        out = io.StringIO()
        chat = ConsoleChat(desk, UserRef(1, "Гость"), Console(file=out, width=120),
                           agent_pseudonym="Мария", reports_dir=tmp_path)
        chat.run(["/human", "Где купить зимние шины?", ">> Шины есть в «Бемаксе».",
                  ">> /resolve", "5", ">> /report 7"])
        path = tmp_path / "navigator-report-2026-11-19--2026-11-25.html"
        assert f"агентам › 📎 {path}" in out.getvalue()
        html = path.read_text(encoding="utf-8")
        assert "<svg" in html and "<script" not in html
        assert "Средняя оценка" in html


class TestPeriodInWords:
    TODAY = date(2026, 11, 25)

    @pytest.mark.parametrize(("words", "first", "last"), [
        ("", date(2026, 10, 27), TODAY),
        ("90", date(2026, 8, 28), TODAY),
        ("2026-02", date(2026, 2, 1), date(2026, 2, 28)),
        ("2026-11-03", date(2026, 11, 3), date(2026, 11, 3)),
        ("2026-11-01  2026-12-31", date(2026, 11, 1), TODAY),
    ])
    def test_what_an_agent_may_write(self, words, first, last):
        period = period_in_words(words, self.TODAY, ZONE)
        assert (period.first, period.last) == (first, last)

    def test_more_than_a_year_is_refused(self):
        with pytest.raises(PeriodError):
            period_in_words("2024-01-01 2026-11-25", self.TODAY, ZONE)


class TestWeeklyReport:
    """The digest (9:00) on the chosen weekday is followed by the report of the seven
    days before it."""

    def test_monday_digest_brings_last_weeks_report_other_days_do_not(self, make_desk,
                                                                        clock):
        desk = make_desk(digest_hour=9, digest_report_day=0)
        clock[0] = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # Monday, 9:00 local
        monday = desk.handle(Tick())
        assert isinstance(monday[0], AgentsText) and "Сводка на 30.11.2026" in monday[0].text
        [week] = reports(monday)
        assert (week.first, week.last) == (date(2026, 11, 23), date(2026, 11, 29))
        assert week.caption.startswith("📊 Отчёт за неделю 23.11.2026 – 29.11.2026")
        assert not desk.handle(Tick()), "once: the digest's day is claimed"
        clock[0] += timedelta(days=1)
        tuesday = desk.handle(Tick())
        assert "Сводка на 01.12.2026" in tuesday[0].text and not reports(tuesday)

    def test_off_means_the_digest_alone(self, make_desk, clock):
        desk = make_desk(digest_hour=9, digest_report_day=None)
        clock[0] = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
        replies = desk.handle(Tick())
        assert len(replies) == 1 and not reports(replies)

    @pytest.mark.parametrize(("value", "day"), [
        ("mon", 0), ("Sunday", 6), ("4", 4), ("off", None)])
    def test_the_setting_takes_weekday_names(self, monkeypatch, value, day):
        monkeypatch.setenv("NAVIGATOR_DIGEST_REPORT_DAY", value)
        assert Settings(_env_file=None).digest_report_day == day

    def test_the_default_is_monday(self, monkeypatch):
        monkeypatch.delenv("NAVIGATOR_DIGEST_REPORT_DAY", raising=False)
        assert Settings(_env_file=None).digest_report_day == 0
