"""The programme's numbers for any period: an HTML report and a CSV of the tickets.

`make_report` reads the store in one transaction: the database computes what happened
to each ticket (`tickets`) and every figure (`figures`) by SQL aggregates, so a year of
a busy desk renders in seconds; `html` renders the figures with Jinja2 templates and
inline SVG charts (navigator/templates/report/), `csv_export` lists the tickets. Periods
are whole local days in the desk's time zone (`period`); every figure is shown beside
the same figure for the period of equal length before.

`report_document` is the same report as a file for the agents' chat (`/report`, the
weekly digest); `survey` runs the usefulness survey whose answers the report counts.
Desks plug in here when they exist: today there is one desk (the agents' chat).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from navigator.report.csv_export import write_csv
from navigator.report.figures import Report, count_figures
from navigator.report.html import render_html
from navigator.report.period import Period, PeriodError, period_for, period_in_words
from navigator.report.tickets import ticket_facts
from navigator.store import Store

__all__ = ["Made", "Period", "PeriodError", "Report", "make_report", "period_for",
           "period_in_words", "report_document"]


@dataclass(frozen=True)
class Made:
    report: Report
    tickets_listed: int  # rows written to the CSV (0 without one)


def make_report(store: Store, period: Period, made: datetime, *, html: Path | None,
                csv: Path | None = None, language: str = "ru") -> Made:
    """Count the figures of `period` as of `made`, write the HTML report to `html` and
    the tickets to `csv` (either may be None)."""
    with store.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # One snapshot for every query: the bot keeps writing while the report reads
            # (SQLite's read transaction is a snapshot already, in WAL mode).
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin(), ticket_facts(connection, period) as facts:
            report = count_figures(connection, facts, period, made)
            listed = write_csv(connection, facts, period, made, csv) if csv else 0
    if html is not None:
        html.write_text(render_html(report, language), encoding="utf-8")
    return Made(report, listed)


def report_document(store: Store, period: Period, made: datetime,
                    language: str = "ru") -> tuple[str, bytes]:
    """The HTML report as a file to send (`/report` in the agents' chat, the weekly
    digest): its name and its UTF-8 bytes."""
    report = make_report(store, period, made, html=None).report
    name = f"navigator-report-{period.first.isoformat()}--{period.last.isoformat()}.html"
    return name, render_html(report, language).encode("utf-8")
