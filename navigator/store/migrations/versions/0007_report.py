"""The report: what the bot did on its own (searches, "helped?", suggestions chosen),
and indexes for counting tickets and messages over a period.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "self_service",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16)),
        sa.Column("question", sa.Text()),
        sa.Column("article_id", sa.String(256)),
        sa.Column("score", sa.Float()),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_self_service_at_kind", "self_service", ["at", "kind", "decision"])
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_index("ix_messages_direction_created_at", "messages",
                    ["direction", "created_at", "user_id"])
    op.create_index("ix_messages_user_id_created_at", "messages", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_user_id_created_at", "messages")
    op.drop_index("ix_messages_direction_created_at", "messages")
    op.drop_index("ix_tickets_created_at", "tickets")
    op.drop_index("ix_self_service_at_kind", "self_service")
    op.drop_table("self_service")
