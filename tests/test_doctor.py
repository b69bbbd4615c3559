"""Secrets stored before the secret guard existed are scrubbed: once by the migration
0007, and on demand by `navigator doctor --secrets` (which reports what it found)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config

from navigator.store import Store
from navigator.store.database import MIGRATIONS
from tests.helpers import database_dump
from tests.test_cli import navigator

KEY = "SCZANGBA5YHTNYVVV3C7CAZMTQDBJHJG6C34CJDQ66EQ7DZTSBP3QQK2"
PHRASE = ("hamster diagram private dutch cause delay private meat slide toddler razor book "
          "happy fancy gospel tennis maple dilemma loan word shrug inflict delay length")


def database_at(path: Path, revision: str) -> sqlite3.Connection:
    """A database with the schema of an older `revision`, as an old bot left it."""
    store = Store(f"sqlite:///{path}", migrate=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    store.close()
    return sqlite3.connect(path)


def leak_everywhere(db: sqlite3.Connection) -> None:
    """What issue 10 found: the key in every table the bot writes."""
    at = "2026-11-01 10:00:00"
    db.execute("INSERT INTO users (id, name, language, ignored, created_at, updated_at) "
               "VALUES (1, 'Анна', 'ru', 0, ?, ?), (2, 'John', 'en', 0, ?, ?)", (at,) * 4)
    db.executemany("INSERT INTO messages (user_id, direction, text, created_at) "
                   "VALUES (?, 'in', ?, ?)", [(1, KEY, at), (2, f"my seed {PHRASE}", at),
                                              (1, "обычный вопрос", at)])
    db.execute("INSERT INTO tickets (user_id, status, type, question, context, created_at, "
               "updated_at) VALUES (1, 'open', 'question', 'вопрос', ?, ?, ?)",
               (json.dumps({"messages": [{"direction": "in", "text": KEY}]}), at, at))
    db.execute("INSERT INTO ticket_events (ticket_id, kind, who, text, at) "
               "VALUES (1, 'reply', 'agent:5', ?, ?)", (f"ваш ключ {KEY}", at))
    db.execute("INSERT INTO outbox (lane, kind, ticket_id, payload, status, attempts, due_at, "
               "uncertain, created_at) VALUES ('agents', 'notify_agents', 1, ?, 'sent', 1, 0, "
               "0, ?)", (json.dumps({"text": f"› {KEY}", "buttons": []}), at))
    db.execute("INSERT INTO conversations (user_id, variables, trail, last_search, stack, "
               "updated_at) VALUES (1, ?, '[]', ?, '[]', ?)",
               (json.dumps({"account": KEY}), json.dumps({"question": KEY}), at))
    db.execute("INSERT INTO inbox (update_id, payload, status, received_at) "
               "VALUES (9, ?, 'handled', ?)",
               (json.dumps({"update_id": 9, "message": {"from": {"id": 2}, "text": PHRASE}}), at))
    db.commit()


def test_the_migration_scrubs_every_table_in_the_users_language(tmp_path: Path):
    path = tmp_path / "old.db"
    db = database_at(path, "0006")
    leak_everywhere(db)
    db.close()
    store = Store(f"sqlite:///{path}")  # what the next start of the bot does
    store.close()
    text = database_dump(path)
    assert KEY not in text and "hamster" not in text
    assert "my [recovery phrase hidden]" in text  # John is English ("seed" is a list word)
    assert "ваш ключ [секретный ключ скрыт]" in text
    assert "обычный вопрос" in text
    assert '"navigator_redacted": ["recovery_phrase"]' in text, \
        "a replay of the scrubbed update still warns"
    report = {r.table: (r.found, r.scrubbed) for r in store.migration_notes["secrets_scrubbed"]}
    assert report == {"inbox": (1, 1), "messages": (2, 2), "tickets": (1, 1),
                      "ticket_events": (1, 1), "outbox": (1, 1), "conversations": (1, 1),
                      "users": (0, 0), "agents": (0, 0)}


def test_doctor_reports_per_table_scrubs_and_a_second_run_finds_nothing(tmp_path: Path,
                                                                        cli_env):
    path = tmp_path / "bot.db"
    Store(f"sqlite:///{path}").close()
    db = sqlite3.connect(path)
    leak_everywhere(db)  # written by an old process beside the new one
    db.close()
    env = {**cli_env, "NAVIGATOR_DATABASE_URL": f"sqlite:///{path}"}

    checked = navigator("doctor", "--secrets", "--dry-run", env=env)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert KEY in database_dump(path), "--dry-run changes nothing"

    first = navigator("doctor", "--secrets", env=env)
    assert first.returncode == 0, first.stderr
    lines = {line.split()[0]: line.split()[1:] for line in first.stdout.splitlines()[2:10]}
    assert lines["messages"] == ["2", "2"] and lines["inbox"] == ["1", "1"]
    assert "7 rows held a secret; 0 hold one now" in first.stdout
    assert KEY not in database_dump(path) and "hamster" not in database_dump(path)

    second = navigator("doctor", "--secrets", env=env)
    assert "0 rows held a secret" in second.stdout
