"""Flood and personal data: a user's flood episode and pending /forgetme; messages of a
ticket folded during a flood; outbox rows that a newer copy supersedes (collapse key);
texts erased from tickets and outbox rows; which user an inbox update is about; daily
jobs run once per cluster (the retention of old texts).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("flood_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("forget_asked_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("folded", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("folded_from", sa.Integer()))
        batch.add_column(sa.Column("folded_to", sa.Integer()))
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True)))
    op.create_index("ix_tickets_folded", "tickets", ["folded"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("collapse_key", sa.String(64)))
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True)))
    op.create_index("ix_outbox_lane_id", "outbox", ["lane", "id"])
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("user_id", sa.BigInteger()))
    op.create_index("ix_inbox_user_id", "inbox", ["user_id"])
    _backfill_inbox_users()
    op.create_table(
        "daily_jobs",
        sa.Column("job", sa.String(32), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
    )


def _backfill_inbox_users() -> None:
    """An update from a user's private chat names them in its payload; the rows kept (a
    week) get it. (Agents' updates about a ticket are marked from now on.)"""
    connection = op.get_bind()
    inbox = sa.table("inbox", sa.column("seq", sa.Integer()), sa.column("payload", sa.JSON()),
                     sa.column("user_id", sa.BigInteger()))
    for seq, payload in connection.execute(sa.select(inbox.c.seq, inbox.c.payload)).all():
        if isinstance(payload, str):
            payload = json.loads(payload)
        user_id = _sender(payload or {})
        if user_id is not None:
            connection.execute(inbox.update().where(inbox.c.seq == seq)
                               .values(user_id=user_id))


def _sender(payload: dict) -> int | None:
    """A copy of navigator.inbox.private_sender as it was when this migration was written."""
    for key in ("message", "edited_message", "callback_query"):
        part = payload.get(key)
        if not isinstance(part, dict):
            continue
        message = part.get("message") if key == "callback_query" else part
        chat = (message or {}).get("chat") if isinstance(message, dict) else None
        sender = part.get("from") if isinstance(part.get("from"), dict) else {}
        if isinstance(chat, dict) and chat.get("type") == "private" and \
                isinstance(sender.get("id"), int):
            return sender["id"]
        return None
    return None


def downgrade() -> None:
    op.drop_table("daily_jobs")
    op.drop_index("ix_inbox_user_id", "inbox")
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("user_id")
    op.drop_index("ix_outbox_lane_id", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("collapse_key")
    op.drop_index("ix_tickets_folded", "tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("folded_to")
        batch.drop_column("folded_from")
        batch.drop_column("folded")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("forget_asked_at")
        batch.drop_column("flood_at")
