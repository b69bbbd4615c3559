"""Confirmation from the network: each pending transaction's hash is looked up on
Horizon, and what the network says settles it.

- In a ledger and successful: its requests are `paid`, their tickets resolved (by the
  bot, outcome "done"), and each user gets the amounts, the transaction's link in the
  explorer, how to claim what waits as a claimable balance, and the rating request.
- In a ledger and failed: its requests go back to `approved` (the next batch takes
  them) and the agents get the result codes.
- In no ledger and past its time bound (with a margin for Horizon's ingestion): it can
  never be applied; expired, handled like a failure.
- In no ledger yet, within its time bound: still waiting for its signatures.
Horizon unavailable: HorizonUnavailable, and nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from navigator.desk.states import DONE, RESOLVED, record
from navigator.desk.tickets import AGENTS_LANGUAGE, rating_buttons
from navigator.events import AgentsText, Reply, SendText
from navigator.outbox import enqueue
from navigator.payouts.batches import CLAIMABLE, CREATE_ACCOUNT
from navigator.payouts.config import PayoutsConfig
from navigator.payouts.horizon import Horizon, TransactionOutcome
from navigator.payouts.ledger import (
    APPROVED,
    EXPIRED,
    FAILED,
    PAID,
    PENDING,
    REWARDS,
    SUCCESS,
    Ledger,
    PayoutBatch,
    PayoutRequest,
    PayoutTransaction,
)
from navigator.render import html_to_plain
from navigator.store import Repository, Store
from navigator.store.models import User, as_utc
from navigator.store.repository import OPEN_TICKET_STATUSES
from navigator.texts import Texts

# Horizon shows a ledger a few seconds after it closes: a transaction in the last ledger
# before its time bound must not be declared expired before Horizon could show it.
EXPIRY_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Settlement:
    """What one pending transaction turned out to be."""

    batch_id: int
    position: int
    hash: str
    status: str  # PENDING (still waiting), SUCCESS, FAILED or EXPIRED
    requests: int  # airdrop requests it pays
    detail: str = ""  # the result codes of a failure


async def check_pending(store: Store, horizon: Horizon, config: PayoutsConfig,
                        now: datetime, texts: Texts) -> list[Settlement]:
    """Look up every pending transaction and settle what the network decided; the
    messages to users and agents go to the outbox in the same transaction."""
    with store.transaction() as repo:
        ledger = Ledger(repo.session)
        hashes = [tx.hash for batch in ledger.pending_batches()
                  for tx in ledger.transactions(batch.id) if tx.status == PENDING]
    outcomes = {tx_hash: await horizon.transaction(tx_hash) for tx_hash in hashes}
    settlements = []
    with store.transaction() as repo:
        for tx_hash, outcome in outcomes.items():
            settlement, replies = settle(repo, texts, config, tx_hash, outcome, now)
            settlements.append(settlement)
            enqueue(repo, replies)
    return settlements


def settle(repo: Repository, texts: Texts, config: PayoutsConfig, tx_hash: str,
           outcome: TransactionOutcome | None, now: datetime
           ) -> tuple[Settlement, list[Reply]]:
    """Apply what the network said about transaction `tx_hash` (None: no ledger holds
    it). A transaction settled already (by a concurrent check) is left as it is."""
    ledger = Ledger(repo.session)
    # Locked (PostgreSQL) so two bot processes checking at once settle it once.
    tx = repo.session.get_one(PayoutTransaction, tx_hash, with_for_update=True)
    batch = repo.session.get_one(PayoutBatch, tx.batch_id)
    requests = ledger.requests_in(tx_hash)
    if tx.status != PENDING:
        return Settlement(batch.id, tx.position, tx_hash, tx.status, len(requests),
                          tx.result or ""), []
    if outcome is None and now <= as_utc(batch.valid_until) + EXPIRY_MARGIN:
        return Settlement(batch.id, tx.position, tx_hash, PENDING, len(requests)), []
    tx.settled_at = now
    replies: list[Reply] = []
    if outcome is not None and outcome.successful:
        tx.status, tx.ledger = SUCCESS, outcome.ledger
        for request in requests:
            replies += _paid(repo, texts, config, request, now)
    else:
        tx.status = FAILED if outcome is not None else EXPIRED
        tx.result = outcome.describe() if outcome is not None else ""
        for request in requests:
            request.status, request.last_failure = APPROVED, tx.result or EXPIRED
            _log(repo, request, now, f"{tx.status} {tx_hash} {tx.result or ''}".strip())
    replies.append(_tell_agents(texts, config, batch, tx, requests,
                                len(ledger.transactions(batch.id))))
    _close_batch(ledger, batch)
    return Settlement(batch.id, tx.position, tx_hash, tx.status, len(requests),
                      tx.result or ""), replies


def _paid(repo: Repository, texts: Texts, config: PayoutsConfig, request: PayoutRequest,
          now: datetime) -> list[Reply]:
    """The request is paid: its ticket resolved, its user told how much and where."""
    request.status, request.paid_at = PAID, now
    ticket = repo.ticket(request.ticket_id)
    _log(repo, request, now, f"paid {request.transaction_hash}")
    if ticket is None:
        return []
    resolved_now = ticket.status in OPEN_TICKET_STATUSES
    if resolved_now:
        record(repo, ticket, ticket.status, RESOLVED, "bot", now, why=DONE)
    user = repo.session.get_one(User, ticket.user_id)
    operations = request.operations
    airdrop = config.airdrop
    text = texts.say(
        user.language, "payout_paid", ticket=ticket.id,
        created=next((o for o in operations if o["op"] == CREATE_ACCOUNT), None),
        paid=[o for o in operations if o["op"] not in (CREATE_ACCOUNT, CLAIMABLE)],
        claimable=[o for o in operations if o["op"] == CLAIMABLE],
        reclaim_days=airdrop.reclaim_after.days if airdrop and airdrop.reclaim_after else None,
        link=config.explorer_link(request.transaction_hash or ""),
        ask_rating=resolved_now).strip()
    repo.add_message(user.id, "out", html_to_plain(text), now)
    buttons = rating_buttons(texts, user.language, ticket.id) if resolved_now else ()
    return [SendText(user.id, text, buttons, ticket_id=ticket.id)]


def _tell_agents(texts: Texts, config: PayoutsConfig, batch: PayoutBatch,
                 tx: PayoutTransaction, requests: list[PayoutRequest], count: int) -> Reply:
    return AgentsText(texts.say(
        AGENTS_LANGUAGE, "agents_payout_settled", batch=batch.id, kind=batch.kind,
        label=batch.label, position=tx.position, count=count, status=tx.status,
        result=tx.result, tickets=[r.ticket_id for r in requests],
        link=config.explorer_link(tx.hash), hash=tx.hash,
        rewards=batch.kind == REWARDS).strip())


def _close_batch(ledger: Ledger, batch: PayoutBatch) -> None:
    """A batch is settled once every transaction is: paid, failed, expired or partial."""
    statuses = {tx.status for tx in ledger.transactions(batch.id)}
    if PENDING in statuses:
        return
    batch.status = {frozenset({SUCCESS}): PAID, frozenset({FAILED}): FAILED,
                    frozenset({EXPIRED}): EXPIRED}.get(frozenset(statuses), "partial")


def _log(repo: Repository, request: PayoutRequest, now: datetime, text: str) -> None:
    ticket = repo.ticket(request.ticket_id)
    if ticket is not None:
        repo.log_ticket(ticket, "bot", now, kind="payout", text=text)
