"""Payouts on Stellar: approved airdrop requests, batches of unsigned transactions, and
the accounts agents' rewards go to (navigator/payouts/ledger.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("account", sa.String(56), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("replaced_by", sa.Integer()),
    )
    op.create_table(
        "payout_transactions",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("batch_id", sa.Integer(),
                  sa.ForeignKey("payout_batches.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("xdr", sa.Text(), nullable=False),
        sa.Column("operations", sa.Integer(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.Text()),
        sa.Column("ledger", sa.Integer()),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
        sa.Column("signing_url", sa.Text()),
    )
    op.create_index("ix_payout_transactions_batch", "payout_transactions",
                    ["batch_id", "position"])
    op.create_index("ix_payout_transactions_status", "payout_transactions", ["status"])
    op.create_table(
        "payout_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", ondelete="CASCADE"),
                  nullable=False, unique=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(56), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("approved_by", sa.BigInteger(), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transaction_hash", sa.String(64)),
        sa.Column("operations", sa.JSON(), nullable=False),
        sa.Column("last_failure", sa.Text()),
        sa.Column("paid_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_payout_requests_status", "payout_requests", ["status", "id"])
    op.create_index("ix_payout_requests_account", "payout_requests", ["account"])
    op.create_index("ix_payout_requests_transaction", "payout_requests", ["transaction_hash"])
    op.create_table(
        "agent_payout_accounts",
        sa.Column("agent_id", sa.BigInteger(), sa.ForeignKey("agents.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("account", sa.String(56), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agent_payout_accounts")
    op.drop_index("ix_payout_requests_transaction", "payout_requests")
    op.drop_index("ix_payout_requests_account", "payout_requests")
    op.drop_index("ix_payout_requests_status", "payout_requests")
    op.drop_table("payout_requests")
    op.drop_index("ix_payout_transactions_status", "payout_transactions")
    op.drop_index("ix_payout_transactions_batch", "payout_transactions")
    op.drop_table("payout_transactions")
    op.drop_table("payout_batches")
