"""The report: what the bot did on its own (searches, "helped?", suggestions chosen),
indexes for counting tickets and messages over a period; the usefulness survey (surveys,
who was asked and what they answered, who opted out) and the outbox's priority (a
survey's messages go after live replies).

Revision ID: 0010
Revises: 0009 (the payouts branch's migration; merged before this one)
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
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
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "survey_answers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("survey_id", sa.Integer(), sa.ForeignKey("surveys.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Integer()),
        sa.Column("comment", sa.Text()),
        sa.Column("answered_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("survey_id", "user_id"),
    )
    op.create_index("ix_survey_answers_answered_at", "survey_answers", ["answered_at"])
    op.add_column("users", sa.Column("no_surveys", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column("outbox", sa.Column("priority", sa.Integer(), nullable=False,
                                      server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as outbox:
        outbox.drop_column("priority")
    with op.batch_alter_table("users") as users:
        users.drop_column("no_surveys")
    op.drop_index("ix_survey_answers_answered_at", "survey_answers")
    op.drop_table("survey_answers")
    op.drop_table("surveys")
    op.drop_index("ix_messages_user_id_created_at", "messages")
    op.drop_index("ix_messages_direction_created_at", "messages")
    op.drop_index("ix_tickets_created_at", "tickets")
    op.drop_index("ix_self_service_at_kind", "self_service")
    op.drop_table("self_service")
