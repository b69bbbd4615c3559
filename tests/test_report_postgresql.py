"""The report's SQL is portable: the same desk, kept in SQLite and in PostgreSQL, gives the
same figures. PostgreSQL is the tests' throwaway server on loopback (tests/postgresql.py:
skipped, saying why, where Debian's postgresql package is not installed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from navigator.report import make_report
from tests import postgresql
from tests.test_report import NOVEMBER, a_week_of_the_desk


@pytest.fixture
def postgresql_url(postgresql_server: postgresql.Server) -> Iterator[str]:
    """A fresh database on the session's throwaway PostgreSQL (tests/postgresql.py)."""
    url = postgresql_server.database()
    yield url
    postgresql_server.drop(url)


def test_sqlite_and_postgresql_give_the_same_figures(postgresql_url, database_url, tmp_path,
                                                     shipped_flows, shipped_knowledge):
    reports, tables = [], []
    for url in (database_url, postgresql_url):
        store = a_week_of_the_desk(url, shipped_flows, shipped_knowledge)
        made = make_report(store, NOVEMBER, datetime(2026, 12, 1, tzinfo=UTC), html=None,
                           csv=tmp_path / "tickets.csv")
        store.close()
        reports.append(dataclasses.replace(made.report, made=None))
        tables.append((tmp_path / "tickets.csv").read_text(encoding="utf-8"))
    sqlite_report, postgresql_report = reports
    assert sqlite_report.now.tickets == 8 and sqlite_report.now.withdrawn == 1
    assert sqlite_report.now.first_response.count == 6
    assert next(d.day for d in sqlite_report.days if d.messages) == date(2026, 11, 10)
    assert postgresql_report == sqlite_report
    assert tables[0] == tables[1]
