"""The desk: agents and their pseudonyms, the ticket log, who took a ticket, its rating,
users the agents ignore.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("username", sa.String(64)),
        sa.Column("pseudonym", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16)),
        sa.Column("who", sa.String(32), nullable=False),
        sa.Column("text", sa.Text()),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ticket_events_ticket_id", "ticket_events", ["ticket_id", "id"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("agent_id", sa.BigInteger()))
        batch.add_column(sa.Column("rating", sa.Integer()))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("ignored", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("ignored")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("rating")
        batch.drop_column("agent_id")
    op.drop_index("ix_ticket_events_ticket_id", "ticket_events")
    op.drop_table("ticket_events")
    op.drop_table("agents")
