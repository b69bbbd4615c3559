"""Secret keys and recovery phrases stored before the secret guard existed are replaced
by placeholders (navigator.store.scrub; `navigator doctor --secrets` runs the same).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

import logging

from alembic import context, op

from navigator.secret_guard import placeholders_in
from navigator.store.scrub import scrub_secrets
from navigator.texts import Texts

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

log = logging.getLogger("navigator.store.migrations")


def upgrade() -> None:
    texts = Texts()
    report = scrub_secrets(op.get_bind(), lambda language: placeholders_in(texts.say, language))
    scrubbed = {r.table: r.scrubbed for r in report if r.scrubbed}
    # Store.migrate hands this on (`navigator doctor` shows it).
    context.config.attributes.setdefault("notes", {})["secrets_scrubbed"] = report
    if scrubbed:
        log.warning("secrets found in stored data were replaced by placeholders: %s",
                    ", ".join(f"{table} {count}" for table, count in scrubbed.items()))


def downgrade() -> None:
    """A scrubbed secret cannot come back (that is the point): nothing to undo."""
