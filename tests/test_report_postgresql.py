"""The report's SQL is portable: the same desk, kept in SQLite and in PostgreSQL, gives the
same figures. PostgreSQL is started here in a temporary folder on loopback (Debian's
postgresql package); the test is skipped, saying why, where it is not installed."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from navigator.report import make_report
from tests.test_report import NOVEMBER, a_week_of_the_desk

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver (psycopg) is not "
                              "installed: pip install 'psycopg[binary]'")


def _binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 with an empty database."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    # Not under pytest's tmp_path: its root is private to this user, and the server may
    # run as another.
    folder = Path(tempfile.mkdtemp(prefix="navigator-postgresql-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None or subprocess.run(
                ["id", "postgres"], capture_output=True).returncode != 0:
            pytest.skip("running as root, and there is no postgres user to run PostgreSQL")
        shutil.chown(folder, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"
    subprocess.run([*run_as, str(binaries / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "postgres", "--no-sync"], check=True, capture_output=True,
                   timeout=300)
    server = subprocess.Popen(
        [*run_as, str(binaries / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={folder}",
         "-c", "fsync=off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        for _ in range(300):
            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                                connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None:
                    pytest.fail("PostgreSQL stopped while starting")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


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
