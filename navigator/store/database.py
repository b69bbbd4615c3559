"""The database: an engine, migrations to the newest schema, and transactions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from navigator.store.repository import Repository
from navigator.store.writer import Writer

MIGRATIONS = Path(__file__).with_name("migrations")
T = TypeVar("T")


class Store:
    """Opens the database named by an SQLAlchemy URL and brings its schema up to date."""

    def __init__(self, url: str, migrate: bool = True):
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url)
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # What the migrations run by this Store had to report (0007: secrets scrubbed).
        self.migration_notes: dict[str, Any] = {}
        # Where an asynchronous process runs its database calls (navigator.store.writer).
        self.writer = Writer()
        if migrate:
            self.migrate()

    def migrate(self) -> None:
        """Run Alembic migrations up to the newest revision."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        self.migration_notes.update(config.attributes.get("notes", {}))

    @contextmanager
    def transaction(self) -> Iterator[Repository]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        session: Session = self._sessions()
        try:
            with session.begin():
                yield Repository(session)
        finally:
            session.close()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(repository, *args)` in a transaction of its own; returns what it returns."""
        with self.transaction() as repo:
            return fn(repo, *args)

    def close(self) -> None:
        self.writer.shutdown()
        self.engine.dispose()


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL lets a reader (a report, a second console) work beside the bot; foreign keys
    # are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL still survives a killed process (a commit is in the WAL before
    # it returns); only a power loss can undo the last commits. FULL fsyncs every
    # commit, and the bot commits several times per update (state, outbox bookkeeping).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Erased texts (navigator.erasure) are overwritten with zeros in the file, not just
    # unlinked: a copy of the file must not hold what a user asked to forget.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
