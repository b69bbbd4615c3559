"""The payouts' records: airdrop requests, batches and their transactions, agents'
payout accounts (tables, and the queries over them).

A request's life: `approved` (an agent approved it) -> `in_batch` (a transaction of a
pending batch pays it) -> `paid` (the network confirmed that transaction), or back to
`approved` when the transaction failed or expired, to go into the next batch; `cancelled`
when its ticket was refused or withdrawn before it was paid. A request is in at most
one pending transaction: `transaction_hash` names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from navigator.store.models import Base, utcnow

APPROVED, IN_BATCH, PAID, CANCELLED = "approved", "in_batch", "paid", "cancelled"
# A transaction (and a batch) is pending until the network settles it.
PENDING, SUCCESS, FAILED, EXPIRED = "pending", "success", "failed", "expired"
AIRDROP, REWARDS = "airdrop", "rewards"


class PayoutRequest(Base):
    """An approved airdrop request: who gets it (the ticket's user, at `account`) and
    where its payment stands."""

    __tablename__ = "payout_requests"
    __table_args__ = (Index("ix_payout_requests_status", "status", "id"),
                      Index("ix_payout_requests_account", "account"),
                      Index("ix_payout_requests_transaction", "transaction_hash"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"),
                                           unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    account: Mapped[str] = mapped_column(String(56))
    status: Mapped[str] = mapped_column(String(16), default=APPROVED)
    approved_by: Mapped[int] = mapped_column(BigInteger)  # the agent's id
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    transaction_hash: Mapped[str | None] = mapped_column(String(64))
    # What its transaction gives it: [{"op": "create_account"|"payment"|"claimable",
    # "code", "issuer", "amount"}]
    operations: Mapped[list[Any]] = mapped_column(default=list)
    last_failure: Mapped[str | None] = mapped_column(Text)  # result codes, or "expired"
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PayoutBatch(Base):
    """One run of `navigator airdrop build` (or `rewards --build`): its transactions
    and the summary people read."""

    __tablename__ = "payout_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "airdrop" or "rewards"
    label: Mapped[str] = mapped_column(String(32), default="")  # rewards: the month
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    account: Mapped[str] = mapped_column(String(56))  # the paying account
    network: Mapped[str] = mapped_column(String(64))  # the passphrase it was built for
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    valid_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    summary: Mapped[str] = mapped_column(Text, default="")
    # Rewards: [{"agent_id", "name", "account", "amount"}] (airdrop: the requests say it)
    items: Mapped[list[Any]] = mapped_column(default=list)
    replaced_by: Mapped[int | None] = mapped_column(Integer)  # a later batch retried it


class PayoutTransaction(Base):
    """One unsigned transaction of a batch (at most 100 operations)."""

    __tablename__ = "payout_transactions"
    __table_args__ = (Index("ix_payout_transactions_batch", "batch_id", "position"),
                      Index("ix_payout_transactions_status", "status"))

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batches.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 1, 2... within the batch
    sequence: Mapped[int] = mapped_column(BigInteger)
    xdr: Mapped[str] = mapped_column(Text)  # base64, unsigned
    operations: Mapped[int] = mapped_column(Integer)
    totals: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"EURMTL": "30", ...}
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    result: Mapped[str | None] = mapped_column(Text)  # the result codes of a failure
    ledger: Mapped[int | None] = mapped_column(Integer)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signing_url: Mapped[str | None] = mapped_column(Text)  # where signers find it


class AgentPayoutAccount(Base):
    """The Stellar account an agent's rewards go to (set with /myaccount G...)."""

    __tablename__ = "agent_payout_accounts"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"),
                                          primary_key=True)
    account: Mapped[str] = mapped_column(String(56))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Ledger:
    """Queries over the payouts' tables, in the caller's transaction."""

    def __init__(self, session: Session):
        self.session = session

    def request_of_ticket(self, ticket_id: int) -> PayoutRequest | None:
        return self.session.scalars(
            select(PayoutRequest).where(PayoutRequest.ticket_id == ticket_id)).first()

    def requests_for_account(self, account: str) -> list[PayoutRequest]:
        return list(self.session.scalars(
            select(PayoutRequest).where(PayoutRequest.account == account)
            .order_by(PayoutRequest.id)))

    def requests_with_status(self, status: str) -> list[PayoutRequest]:
        return list(self.session.scalars(
            select(PayoutRequest).where(PayoutRequest.status == status)
            .order_by(PayoutRequest.id)))

    def requests_in(self, tx_hash: str) -> list[PayoutRequest]:
        return list(self.session.scalars(
            select(PayoutRequest).where(PayoutRequest.transaction_hash == tx_hash)
            .order_by(PayoutRequest.id)))

    def claim_for_batch(self, request_ids: list[int], tx_hash: str) -> bool:
        """Move these approved requests into transaction `tx_hash`. False (and nothing
        should be committed) if any of them is no longer `approved`: another build took
        it meanwhile."""
        if not request_ids:
            return True
        result = self.session.execute(
            update(PayoutRequest)
            .where(PayoutRequest.id.in_(request_ids), PayoutRequest.status == APPROVED)
            .values(status=IN_BATCH, transaction_hash=tx_hash)
            .execution_options(synchronize_session=False))
        return result.rowcount == len(request_ids)

    def batch(self, batch_id: int) -> PayoutBatch | None:
        return self.session.get(PayoutBatch, batch_id)

    def batches(self, kind: str, status: str | None = None,
                label: str | None = None) -> list[PayoutBatch]:
        query = select(PayoutBatch).where(PayoutBatch.kind == kind)
        if status is not None:
            query = query.where(PayoutBatch.status == status)
        if label is not None:
            query = query.where(PayoutBatch.label == label)
        return list(self.session.scalars(query.order_by(PayoutBatch.id)))

    def pending_batches(self) -> list[PayoutBatch]:
        return list(self.session.scalars(
            select(PayoutBatch).where(PayoutBatch.status == PENDING).order_by(PayoutBatch.id)))

    def transactions(self, batch_id: int) -> list[PayoutTransaction]:
        return list(self.session.scalars(
            select(PayoutTransaction).where(PayoutTransaction.batch_id == batch_id)
            .order_by(PayoutTransaction.position)))

    def transactions_since(self, kind: str, since: datetime) -> list[PayoutTransaction]:
        """Transactions of batches of `kind` built at or after `since`."""
        return list(self.session.scalars(
            select(PayoutTransaction).join(PayoutBatch)
            .where(PayoutBatch.kind == kind, PayoutBatch.created_at >= since)))

    def highest_pending_sequence(self, account: str) -> int | None:
        """The last sequence number a pending transaction from `account` uses."""
        sequences = self.session.scalars(
            select(PayoutTransaction.sequence).join(PayoutBatch)
            .where(PayoutBatch.account == account, PayoutTransaction.status == PENDING))
        return max(sequences, default=None)

    def payout_account(self, agent_id: int) -> str | None:
        row = self.session.get(AgentPayoutAccount, agent_id)
        return row.account if row else None

    def set_payout_account(self, agent_id: int, account: str, now: datetime) -> None:
        row = self.session.get(AgentPayoutAccount, agent_id)
        if row is None:
            self.session.add(AgentPayoutAccount(agent_id=agent_id, account=account,
                                                updated_at=now))
        else:
            row.account, row.updated_at = account, now
