"""The airdrop's batches: approved requests -> a batch (`build_airdrop`), and what
happens to it next: settled by the network (`navigator.payouts.confirmation`), handed to
the signing service, or signed and submitted by the bot itself for a dedicated
low-balance account (`submit_with_bot_key`)."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime, time, tzinfo
from decimal import Decimal
from pathlib import Path

from navigator.desk.tickets import AGENTS_LANGUAGE
from navigator.events import AgentsText
from navigator.outbox import enqueue
from navigator.payouts.assets import XLM, Asset, parse_amount
from navigator.payouts.batches import BuiltTransaction, Payout, Skip
from navigator.payouts.building import (
    BatchConflict,
    BatchSpec,
    BuildResult,
    build_batch,
)
from navigator.payouts.config import AirdropConfig, PayoutsConfig
from navigator.payouts.confirmation import Settlement, check_pending, settle
from navigator.payouts.horizon import Horizon, HorizonUnavailable
from navigator.payouts.ledger import (
    AIRDROP,
    APPROVED,
    CANCELLED,
    FAILED,
    PENDING,
    SUCCESS,
    Ledger,
    PayoutRequest,
    PayoutTransaction,
)
from navigator.payouts.signing import (
    BotKey,
    SigningService,
    SigningServiceError,
    bot_may_sign,
)
from navigator.store import Repository, Store
from navigator.store.repository import OPEN_TICKET_STATUSES
from navigator.texts import Texts

log = logging.getLogger(__name__)
TICKET_CLOSED = "ticket_closed"  # Skip.reason: refused, withdrawn or closed meanwhile


async def build_airdrop(store: Store, horizon: Horizon, config: PayoutsConfig, texts: Texts,
                        now: datetime, zone: tzinfo, out_dir: Path,
                        service: SigningService | None = None, bot_key: BotKey | None = None
                        ) -> tuple[list[Settlement], BuildResult]:
    """Settle what the network decided about pending batches (so an expired one's
    requests are approved again and this batch replaces it), then build one batch of
    every approved request. With `service` the transactions also go to the signing
    service; with `bot_key` the bot signs and submits them itself (if `bot_may_sign`).
    Raises ContentError (configuration not set), HorizonUnavailable or PayoutError,
    having marked nothing."""
    config.require("airdrop")
    airdrop = config.airdrop
    assert airdrop is not None
    if bot_key is not None:
        account = await horizon.account(airdrop.account)
        if account is not None:
            bot_may_sign(config, bot_key, account, _package_assets(airdrop))
    settlements = await check_pending(store, horizon, config, now, texts)
    with store.transaction() as repo:
        spec, closed = airdrop_spec(repo, airdrop, now, zone)

    def record(repo: Repository, batch, built: list[BuiltTransaction]) -> None:
        _claim(repo, batch.id, built, now)
        _cancel(repo, closed, now)

    result = await build_batch(store, horizon, config, texts, spec, now, zone, out_dir, record)
    if result.batch_id is None and closed and not result.plan.shortfalls:
        with store.transaction() as repo:
            _cancel(repo, closed, now)
    if service is not None:
        await _publish(store, service, texts, result)
    if bot_key is not None and result.transactions:
        await submit_with_bot_key(store, horizon, config, texts, bot_key, result, now)
    return settlements, result


def airdrop_spec(repo: Repository, airdrop: AirdropConfig, now: datetime, zone: tzinfo
                 ) -> tuple[BatchSpec, list[int]]:
    """Every approved request as a payout of the package, in approval order, and the
    requests whose ticket was closed meanwhile (refused, withdrawn: not to be paid)."""
    ledger = Ledger(repo.session)
    payouts, skipped, closed = [], [], []
    for request in ledger.requests_with_status(APPROVED):
        ticket = repo.ticket(request.ticket_id)
        payout = Payout(request.id, request.account, airdrop.tokens, airdrop.starting_balance,
                        f"№{request.ticket_id}")
        if ticket is None or ticket.status not in OPEN_TICKET_STATUSES:
            skipped.append(Skip(payout, TICKET_CLOSED, ticket.status if ticket else "—"))
            closed.append(request.id)
            continue
        payouts.append(payout)
    room = daily_room(ledger, airdrop, now, zone)
    return BatchSpec(AIRDROP, "", airdrop.account, airdrop.memo, payouts,
                     airdrop.reclaim_after, room, skipped), closed


def daily_room(ledger: Ledger, airdrop: AirdropConfig, now: datetime, zone: tzinfo
               ) -> dict[Asset, Decimal]:
    """How much of each limited asset may still go out today (the desk's local day):
    the daily limit less what today's pending and paid transactions pay."""
    midnight = datetime.combine(now.astimezone(zone).date(), time(), zone).astimezone(UTC)
    by_code = {asset.code: asset for asset in airdrop.per_day}
    spent: dict[Asset, Decimal] = defaultdict(Decimal)
    for tx in ledger.transactions_since(AIRDROP, midnight):
        if tx.status in (PENDING, SUCCESS):
            for code, amount in tx.totals.items():
                if code in by_code:
                    spent[by_code[code]] += parse_amount(amount)
    return {asset: limit - spent[asset] for asset, limit in airdrop.per_day.items()}


def _package_assets(airdrop: AirdropConfig) -> dict[Asset, Decimal]:
    package = {t.asset: t.amount for t in airdrop.tokens}
    if airdrop.starting_balance is not None:
        package[XLM] = airdrop.starting_balance
    return package


def _claim(repo: Repository, batch_id: int, built: list[BuiltTransaction],
           now: datetime) -> None:
    """The batch's requests leave `approved` for their transaction; a batch whose
    requests these were before (expired, failed) is replaced by this one."""
    ledger = Ledger(repo.session)
    for tx in built:
        requests = [repo.session.get_one(PayoutRequest, p.payout.ref) for p in tx.planned]
        earlier = {r.transaction_hash for r in requests if r.transaction_hash}
        if not ledger.claim_for_batch([r.id for r in requests], tx.hash):
            raise BatchConflict("approved requests changed while the batch was built "
                                "(another build?): nothing was marked; run it again")
        for earlier_hash in earlier:
            old = repo.session.get(PayoutTransaction, earlier_hash)
            if old is not None and old.status != PENDING:
                batch = ledger.batch(old.batch_id)
                if batch is not None and batch.replaced_by is None:
                    batch.replaced_by = batch_id
        for planned, request in zip(tx.planned, requests, strict=True):
            request.operations = [o.as_record() for o in planned.operations]
            ticket = repo.ticket(request.ticket_id)
            if ticket is not None:
                repo.log_ticket(ticket, "bot", now, kind="payout",
                                text=f"batch {batch_id} {tx.hash}")


def _cancel(repo: Repository, request_ids: list[int], now: datetime) -> None:
    for request_id in request_ids:
        request = repo.session.get_one(PayoutRequest, request_id)
        if request.status == APPROVED:
            request.status = CANCELLED
            ticket = repo.ticket(request.ticket_id)
            if ticket is not None:
                repo.log_ticket(ticket, "bot", now, kind="payout",
                                text=f"cancelled: ticket {ticket.status}")


async def _publish(store: Store, service: SigningService, texts: Texts,
                   result: BuildResult) -> None:
    """Each transaction to the signing service; a refusal is noted, the batch stands
    (its files and links still work)."""
    count = len(result.transactions)
    for tx in result.transactions:
        description = (f"MTL Support: {result.spec.kind} {result.spec.label} batch "
                       f"#{result.batch_id}, {tx.position}/{count}, "
                       f"{len(tx.planned)} payouts").replace("  ", " ")
        try:
            published = await service.publish(tx.xdr, description)
        except SigningServiceError as exc:
            result.notes.append(f"signing service: {exc}")
            continue
        if published.hash != tx.hash:
            result.notes.append(f"signing service computed hash {published.hash} for "
                                f"{tx.hash}: is it on the same network?")
        result.signing_urls[tx.hash] = published.url
        with store.transaction() as repo:
            repo.session.get_one(PayoutTransaction, tx.hash).signing_url = published.url
    if result.signing_urls:
        with store.transaction() as repo:
            enqueue(repo, [AgentsText(texts.say(
                AGENTS_LANGUAGE, "agents_payout_signing_service", batch=result.batch_id,
                urls=list(result.signing_urls.values())).strip())])


async def submit_with_bot_key(store: Store, horizon: Horizon, config: PayoutsConfig,
                              texts: Texts, key: BotKey, result: BuildResult,
                              now: datetime) -> list[Settlement]:
    """Sign the batch's transactions with the bot's key and submit them in order; each
    outcome settles its transaction at once. Submission stops at the first transaction
    whose outcome is unknown (Horizon did not answer): `navigator airdrop status` finds
    out later; the ones after it would fail on their sequence number anyway."""
    settlements = []
    for tx in result.transactions:
        try:
            outcome = await horizon.submit(key.sign(tx.xdr, config.passphrase))
        except HorizonUnavailable as exc:
            result.notes.append(f"submission of {tx.hash}: {exc}")
            break
        with store.transaction() as repo:
            settlement, replies = settle(repo, texts, config, tx.hash, outcome, now)
            enqueue(repo, replies)
        settlements.append(settlement)
        if settlement.status == FAILED:
            result.notes.append(f"{tx.hash}: {settlement.detail}")
    return settlements
