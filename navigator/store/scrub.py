"""Taking secrets out of what is already stored (navigator.secret_guard).

Since the secret guard runs at the transports, no secret reaches the database. Rows
written before it (or by an older process beside a newer one) may hold one: the
migration 0007 scrubs them once, and `navigator doctor --secrets` does it on demand.
Scrubbing is idempotent: a placeholder is not a secret, so a second run finds nothing.

Every column that holds what people wrote is read, in Python (SQL cannot recognise a
key or a phrase), and the rows that change are updated; JSON columns (an update from
Telegram, a ticket's context, an outbox row's payload) have every string walked. The
tables are described here with lightweight SQLAlchemy constructs, not the models, so
the migration keeps working when the models change later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from navigator.inbox import REDACTED
from navigator.secret_guard import Placeholders, redact, redact_json

AGENTS_LANGUAGE = "ru"  # what agents read (navigator.desk.tickets)


@dataclass(frozen=True)
class Scrubbed:
    """One table: rows that held a secret, and how many of them were rewritten."""

    table: str
    found: int
    scrubbed: int


@dataclass(frozen=True)
class _Table:
    name: str
    key: str
    texts: tuple[str, ...] = ()  # text columns
    documents: tuple[str, ...] = ()  # JSON columns
    user: str | None = None  # the column naming the user (their language)
    marked: bool = False  # a redacted document says so (REDACTED): an update replayed later


TABLES = (
    _Table("inbox", "seq", texts=("error",), documents=("payload",), marked=True),
    _Table("messages", "id", texts=("text",), user="user_id"),
    _Table("tickets", "id", texts=("question",), documents=("context",), user="user_id"),
    _Table("ticket_events", "id", texts=("text",)),
    _Table("outbox", "id", texts=("last_error",), documents=("payload",), user="user_id"),
    _Table("conversations", "user_id", documents=("variables", "last_search", "trail"),
           user="user_id"),
    _Table("users", "id", texts=("name",), user="id"),
    _Table("agents", "id", texts=("name", "pseudonym")),
)


def scrub_secrets(connection: Connection,
                  placeholders: Callable[[str], Placeholders],
                  dry_run: bool = False) -> list[Scrubbed]:
    """Find (and unless `dry_run`, replace) secrets in every stored text, per table.
    `placeholders(language)` gives the placeholders in a user's language."""
    languages = dict(connection.execute(sa.text("SELECT id, language FROM users")).all())
    report = []
    for table in TABLES:
        found, changes = _scan(connection, table, languages, placeholders)
        if changes and not dry_run:
            _write(connection, table, changes)
        report.append(Scrubbed(table.name, found, 0 if dry_run else len(changes)))
    return report


def _columns(table: _Table) -> sa.TableClause:
    return sa.table(table.name, sa.column(table.key),
                    *(sa.column(c, sa.Text) for c in table.texts),
                    *(sa.column(c, sa.JSON) for c in table.documents),
                    *((sa.column(table.user),) if table.user and table.user != table.key
                      else ()))


def _scan(connection: Connection, table: _Table, languages: dict[int, str],
          placeholders: Callable[[str], Placeholders]
          ) -> tuple[int, list[dict[str, Any]]]:
    rows = connection.execute(sa.select(_columns(table))).mappings()
    changes = []
    for row in rows:
        language = _language(table, row, languages)
        values: dict[str, Any] = {}
        for column in table.texts:
            if row[column] and (redaction := redact(row[column], placeholders(language))):
                values[column] = redaction.text
        for column in table.documents:
            cleaned, kinds = redact_json(row[column], placeholders(language))
            if kinds and table.marked and isinstance(cleaned, dict):
                cleaned[REDACTED] = list(dict.fromkeys([*cleaned.get(REDACTED, []), *kinds]))
            if kinds:
                values[column] = cleaned
        if values:
            changes.append({"_key": row[table.key], **values})
    return len(changes), changes


def _language(table: _Table, row: Any, languages: dict[int, str]) -> str:
    if table.user is not None and row[table.user] in languages:
        return languages[row[table.user]]
    if table.name == "inbox":  # the sender of the update, if they are a user
        body = next((v for k, v in (row["payload"] or {}).items()
                     if isinstance(v, dict) and "from" in v), {})
        return languages.get((body.get("from") or {}).get("id"), AGENTS_LANGUAGE)
    return AGENTS_LANGUAGE


def _write(connection: Connection, table: _Table, changes: list[dict[str, Any]]) -> None:
    columns = _columns(table)
    for change in changes:
        values = {k: v for k, v in change.items() if k != "_key"}
        connection.execute(sa.update(columns)
                           .where(columns.c[table.key] == change["_key"]).values(values))
