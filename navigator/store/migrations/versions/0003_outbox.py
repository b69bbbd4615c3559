"""Outbox of replies, and where each ticket lives in the agents' chat.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lane", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.BigInteger()),
        sa.Column("ticket_id", sa.Integer()),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("lease_until", sa.Float()),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("chat_id", sa.BigInteger()),
        sa.Column("thread_id", sa.BigInteger()),
        sa.Column("message_id", sa.BigInteger()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_outbox_status_lane_id", "outbox", ["status", "lane", "id"])
    op.create_index("ix_outbox_chat_message", "outbox", ["chat_id", "message_id"])
    op.create_index("ix_outbox_ticket_id", "outbox", ["ticket_id"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("agents_chat_id", sa.BigInteger()))
        batch.add_column(sa.Column("agents_thread_id", sa.BigInteger()))
        batch.add_column(sa.Column("agents_card_message_id", sa.BigInteger()))
    op.create_index("ix_tickets_agents_thread", "tickets", ["agents_chat_id", "agents_thread_id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_agents_thread", "tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("agents_card_message_id")
        batch.drop_column("agents_thread_id")
        batch.drop_column("agents_chat_id")
    op.drop_index("ix_outbox_ticket_id", "outbox")
    op.drop_index("ix_outbox_chat_message", "outbox")
    op.drop_index("ix_outbox_status_lane_id", "outbox")
    op.drop_table("outbox")
