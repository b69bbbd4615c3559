"""A throwaway PostgreSQL server for the tests, on loopback, from Debian's `postgresql`
binaries (`.ci/run` installs the package when it is missing).

Started once per test session, the first time a test asks for it. The schema is migrated
once into a template database; each test gets a fresh database copied from the template
(`CREATE DATABASE … TEMPLATE`, ~0.1 s), so a test on PostgreSQL starts from the same empty,
migrated state as one on SQLite, without running the migrations again.

Why not pytest-postgresql: it needs the same binaries, and it starts a server per
process with its own conventions for users and sockets; as root (CI runs as root) the
server must run as the `postgres` user, which is one `runuser` here.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = "navigator_template"
START_TIMEOUT_S = 60


class Unavailable(Exception):
    """PostgreSQL cannot be started here; the message says why and how to fix it."""


def binaries() -> Path | None:
    """The folder of `initdb` and `postgres`: on PATH, or Debian's versioned folder."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@dataclass
class Server:
    """A running server: `database()` makes a fresh migrated database and returns its URL."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes]
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres "
                             f"dbname={database}", autocommit=True) as connection:
            connection.execute(sql)

    def database(self, migrated: bool = True) -> str:
        """A new database: a copy of the migrated template, or empty (for tests of the
        migrations themselves)."""
        name = f"test_{os.getpid()}_{next(self._numbers)}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE if migrated else 'template0'}")
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Server:
    """Start a server in a temporary folder and migrate the template database."""
    try:
        import psycopg
    except ImportError as exc:
        raise Unavailable("the PostgreSQL driver is not installed: "
                          "pip install -e '.[postgres]'") from exc
    folder_of_binaries = binaries()
    if folder_of_binaries is None:
        raise Unavailable("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    # Not under pytest's tmp_path: its root is private to this user, and the server may
    # run as another.
    folder = Path(tempfile.mkdtemp(prefix="navigator-postgresql-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None or subprocess.run(
                ["id", "postgres"], capture_output=True).returncode != 0:
            raise Unavailable("running as root, and there is no postgres user to run "
                              "PostgreSQL as")
        shutil.chown(folder, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"
    subprocess.run([*run_as, str(folder_of_binaries / "initdb"), "-D", str(data), "-A",
                    "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
                   check=True, capture_output=True, timeout=300)
    # Durability off: a test database is thrown away, and fsync on 2 shared cores costs
    # seconds per test.
    process = subprocess.Popen(
        [*run_as, str(folder_of_binaries / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={folder}",
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server(port, folder, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                            connect_timeout=2).close()
            break
        except psycopg.OperationalError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise Unavailable(f"PostgreSQL did not start: {exc}") from exc
            time.sleep(0.2)
    server.execute(f"CREATE DATABASE {TEMPLATE}")
    from navigator.store import Store

    Store(server.url(TEMPLATE)).close()  # runs the migrations once
    return server
