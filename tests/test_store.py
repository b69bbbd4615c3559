"""The database schema comes from migrations, so later schemas upgrade existing data."""

from __future__ import annotations

from sqlalchemy import inspect, text

from navigator.events import UserRef
from navigator.store import Store
from navigator.store.models import User


def test_migrations_create_the_schema_and_record_the_revision(database_url):
    store = Store(database_url)
    tables = set(inspect(store.engine).get_table_names())
    assert {"users", "conversations", "messages", "tickets", "outbox", "agents",
            "ticket_events", "digests", "alembic_version"} <= tables
    with store.engine.connect() as connection:
        assert connection.execute(text("select version_num from alembic_version")).scalar() \
            == "0005"
    store.close()


def test_opening_an_existing_database_keeps_its_data(database_url):
    first = Store(database_url)
    with first.transaction() as repo:
        repo.user(UserRef(5, "Марко"), "ru")
    first.close()
    second = Store(database_url)
    with second.transaction() as repo:
        assert repo.user(UserRef(5), "en").name == "Марко"
    second.close()


def test_a_failed_unit_of_work_leaves_nothing_behind(database_url):
    store = Store(database_url)
    try:
        with store.transaction() as repo:
            repo.user(UserRef(9, "Йована"), "ru")
            raise RuntimeError("crash mid-event")
    except RuntimeError:
        pass
    with store.transaction() as repo:
        assert repo.session.get(User, 9) is None
    store.close()
