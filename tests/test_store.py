"""The database schema comes from migrations, so later schemas upgrade existing data."""

from __future__ import annotations

import json

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from navigator.events import UserRef
from navigator.store import Store
from navigator.store.database import MIGRATIONS
from navigator.store.models import User


def test_migrations_create_the_schema_and_record_the_revision(database_url):
    store = Store(database_url)
    tables = set(inspect(store.engine).get_table_names())
    assert {"users", "conversations", "messages", "tickets", "outbox", "agents",
            "ticket_events", "inbox", "alembic_version"} <= tables
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    newest = ScriptDirectory.from_config(config).get_current_head()
    with store.engine.connect() as connection:
        assert connection.execute(text("select version_num from alembic_version")).scalar() \
            == newest
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


@pytest.mark.empty_database
def test_updates_stored_before_0008_learn_which_user_sent_them(database_url):
    from alembic import command

    store = Store(database_url, migrate=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    message = {"chat": {"id": 42, "type": "private"}, "from": {"id": 42}, "text": "Привет"}
    in_group = {"chat": {"id": -100, "type": "supergroup"}, "from": {"id": 501}, "text": "?"}
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
        for seq, payload in ((1, {"message": message}), (2, {"message": in_group}),
                             (3, {"callback_query": {"from": {"id": 42}, "data": "menu",
                                                     "message": message}})):
            connection.execute(text(
                "insert into inbox (seq, update_id, payload, status, received_at) "
                "values (:seq, :seq, :payload, 'handled', '2026-11-20 10:00:00')"),
                {"seq": seq, "payload": json.dumps(payload)})
    store.migrate()
    with store.engine.connect() as connection:
        assert connection.execute(text("select seq, user_id from inbox order by seq")).all() \
            == [(1, 42), (2, None), (3, 42)]
    store.close()


async def test_the_writer_runs_database_calls_one_at_a_time_in_the_order_given(database_url):
    """The asynchronous bot's database calls queue up on the store's one thread."""
    import asyncio
    import threading

    store = Store(database_url)
    seen: list[tuple[str, int]] = []

    def write(name: str) -> str:
        seen.append((name, threading.get_ident()))
        with store.transaction() as repo:
            repo.user(UserRef(len(seen), name), "ru")
        return name

    queued = [store.writer.submit(write, name) for name in ("Анна", "Борис", "Вера")]
    assert await asyncio.gather(*queued) == ["Анна", "Борис", "Вера"]
    assert [name for name, _ in seen] == ["Анна", "Борис", "Вера"]
    assert len({thread for _, thread in seen}) == 1
    assert threading.get_ident() not in {thread for _, thread in seen}, "off the event loop"
    store.writer.shutdown()
    assert await store.writer.run(write, "Галина") == "Галина", "a new thread after a stop"
    store.close()
