"""Building a batch end to end, for airdrops and rewards alike: Horizon's facts -> the plan
-> unsigned transactions -> the batch in the database -> the files people sign from.

The order is what makes it safe: everything is read from Horizon before anything is
written, so "Horizon unavailable" (or a paying account short of funds) leaves the
database as it was; the batch, its transactions and the claim on its requests are
written in one transaction; the files are written after it commits (the database is
the truth; a lost file can be written again from it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from navigator.desk.tickets import AGENTS_LANGUAGE
from navigator.events import AgentsDocument, AgentsText, Reply
from navigator.outbox import enqueue
from navigator.payouts.assets import XLM, Asset, format_amount, short_account
from navigator.payouts.batches import (
    BuiltTransaction,
    Payout,
    Plan,
    Skip,
    assemble,
    plan_payouts,
)
from navigator.payouts.config import PayoutsConfig
from navigator.payouts.horizon import AccountState, Horizon, fetch_accounts
from navigator.payouts.ledger import Ledger, PayoutBatch, PayoutTransaction
from navigator.payouts.signing import sep7_link
from navigator.render import html_to_plain
from navigator.store import Repository, Store
from navigator.texts import Texts

log = logging.getLogger(__name__)

# Records the batch's own rows (claims the requests, stores the items) in the batch's
# transaction; raises BatchConflict if they changed since they were read.
Recorder = Callable[[Repository, PayoutBatch, list[BuiltTransaction]], None]


class PayoutError(Exception):
    """Building cannot go on; the message says why, for people. Nothing was marked."""


class BatchConflict(PayoutError):
    """What was to be paid changed while the batch was being built."""


@dataclass(frozen=True)
class BatchSpec:
    """What to build: who gets what, from which account, for which purpose."""

    kind: str  # AIRDROP or REWARDS
    label: str  # the rewards' month; "" for airdrops
    account: str  # the paying account
    memo: str
    payouts: list[Payout]
    reclaim_after: timedelta | None  # claimable balances return after this (airdrop)
    daily_room: dict[Asset, Decimal] | None = None
    skipped: list[Skip] = field(default_factory=list)  # left out before planning


@dataclass
class BuildResult:
    spec: BatchSpec
    plan: Plan = field(default_factory=Plan)
    batch_id: int | None = None
    transactions: list[BuiltTransaction] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # hash -> its .xdr file
    summary_file: Path | None = None
    summary: str = ""  # for people, plain text
    links: dict[str, str] = field(default_factory=dict)  # hash -> SEP-7 link
    signing_urls: dict[str, str] = field(default_factory=dict)  # hash -> signing service
    notes: list[str] = field(default_factory=list)  # what went wrong after the batch was made

    @property
    def skipped(self) -> list[Skip]:
        return [*self.spec.skipped, *self.plan.skipped]


async def build_batch(store: Store, horizon: Horizon, config: PayoutsConfig, texts: Texts,
                      spec: BatchSpec, now: datetime, zone: tzinfo, out_dir: Path,
                      record: Recorder) -> BuildResult:
    """Build, store and write out one batch (see the module's docstring for the order).
    Raises HorizonUnavailable or PayoutError having marked nothing. A paying account
    short of funds gives a result with `plan.shortfalls`, no batch, and the agents told
    what is missing."""
    result = BuildResult(spec)
    if not spec.payouts:
        return result
    source = await horizon.account(spec.account)
    if source is None:
        raise PayoutError(f"the paying account {spec.account} does not exist on the "
                          f"{config.network} network")
    charged = await horizon.fee_charged()
    if charged > config.max_fee:
        raise PayoutError(f"the network charges {charged} stroops per operation now, more "
                          f"than max_fee {config.max_fee} in {config.path}: try later, or "
                          "raise max_fee")
    accounts = await fetch_accounts(horizon, [p.destination for p in spec.payouts])
    result.plan = plan_payouts(spec.payouts, accounts, source, config.max_fee,
                               spec.reclaim_after is not None, spec.daily_room)
    if result.plan.shortfalls:
        with store.transaction() as repo:
            enqueue(repo, [AgentsText(texts.say(
                AGENTS_LANGUAGE, "agents_payout_shortfall", kind=spec.kind,
                account=spec.account, shortfalls=_shortfalls(result.plan)).strip())])
        return result
    if not result.plan.groups:
        return result
    valid_until = now + config.valid_for
    with store.transaction() as repo:
        ledger = Ledger(repo.session)
        first = max(source.sequence, ledger.highest_pending_sequence(spec.account) or 0) + 1
        result.transactions = assemble(result.plan, spec.account, first, config.passphrase,
                                       config.max_fee, spec.memo, valid_until,
                                       spec.reclaim_after)
        batch = PayoutBatch(kind=spec.kind, label=spec.label, status="pending",
                            account=spec.account, network=config.passphrase, created_at=now,
                            valid_until=valid_until, summary="", items=[])
        repo.session.add(batch)
        repo.session.flush()
        for tx in result.transactions:
            repo.session.add(PayoutTransaction(
                hash=tx.hash, batch_id=batch.id, position=tx.position, sequence=tx.sequence,
                xdr=tx.xdr, operations=tx.operations, status="pending",
                totals={a.code: str(amount) for a, amount in tx.totals().items()}))
        repo.session.flush()
        record(repo, batch, result.transactions)
        result.batch_id = batch.id
        summary = texts.render("payout_batch.html", **_summary_values(
            config, texts, batch, result, source, zone))
        batch.summary = summary
        result.summary = html_to_plain(summary)
        result.links = {tx.hash: sep7_link(
            tx.xdr, config.passphrase, f"MTL Support: {spec.kind} #{batch.id}, "
            f"{tx.position}/{len(result.transactions)}") for tx in result.transactions}
        # The agents' chat gets the batch with it: a crash cannot post one and lose the
        # other, and the running bot delivers what a `navigator airdrop build` decided.
        enqueue(repo, batch_post(texts, result, valid_until.astimezone(zone)))
    _write_files(result, out_dir)
    return result


def _summary_values(config: PayoutsConfig, texts: Texts, batch: PayoutBatch,
                    result: BuildResult, source: AccountState, zone: tzinfo
                    ) -> dict[str, Any]:
    transactions = [{
        "position": tx.position, "hash": tx.hash, "sequence": tx.sequence,
        "operations": tx.operations, "file": f"{tx.hash}.xdr",
        "payouts": [{"label": p.payout.label, "account": short_account(p.payout.destination),
                     "operations": [{"kind": o.kind, "amount": format_amount(o.amount),
                                     "code": o.asset.code} for o in p.operations]}
                    for p in tx.planned]} for tx in result.transactions]
    needed = result.plan.needed
    return {"batch": batch.id, "kind": batch.kind, "label": batch.label,
            "network": config.network, "account": source.id,
            "valid_until": batch.valid_until.astimezone(zone).strftime("%d.%m.%Y %H:%M"),
            "zone": str(zone), "transactions": transactions,
            "totals": [f"{format_amount(amount)} {asset}" for asset, amount in needed.items()
                       if asset != XLM] +
                      ([f"{format_amount(needed[XLM])} XLM"] if XLM in needed else []),
            "skipped": [{"label": s.payout.label, "message": skip_message(texts, s)}
                        for s in result.skipped]}


def _shortfalls(plan: Plan) -> list[dict[str, str]]:
    return [{"asset": str(s.asset), "needed": format_amount(s.needed),
             "available": format_amount(s.available), "missing": format_amount(s.missing)}
            for s in plan.shortfalls]


def summary_text(result: BuildResult) -> str:
    """The summary file: the summary, then each transaction's SEP-7 link."""
    count = len(result.transactions)
    parts = [result.summary, ""]
    for tx in result.transactions:
        parts += [f"SEP-7 {tx.position}/{count}:", result.links[tx.hash], ""]
    return "\n".join(parts)


def _write_files(result: BuildResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for tx in result.transactions:
        path = out_dir / f"{tx.hash}.xdr"
        path.write_text(tx.xdr + "\n", encoding="ascii")
        result.files[tx.hash] = path
    result.summary_file = out_dir / f"batch-{result.batch_id}.txt"
    result.summary_file.write_text(summary_text(result), encoding="utf-8")


def batch_post(texts: Texts, result: BuildResult, valid_until: datetime) -> list[Reply]:
    """What the agents' chat gets for a new batch: a short message (the full summary
    lists every payout: too long for one), the summary with the SEP-7 links as a file
    (a link carries the whole transaction: too long for a message), and each unsigned
    transaction as `<hash>.xdr`, numbered in the order to submit them."""
    count = len(result.transactions)
    payouts = sum(len(tx.planned) for tx in result.transactions)
    say = texts.say
    post: list[Reply] = [AgentsText(say(
        AGENTS_LANGUAGE, "agents_payout_batch", batch=result.batch_id, kind=result.spec.kind,
        label=result.spec.label, transactions=count, payouts=payouts,
        totals=[f"{format_amount(amount)} {asset}" for asset, amount in
                sorted(result.plan.needed.items(), key=lambda item: item[0] == XLM)],
        valid_until=valid_until.strftime("%d.%m.%Y %H:%M"),
        skipped=len(result.skipped)).strip())]
    post.append(AgentsDocument(f"batch-{result.batch_id}.txt", summary_text(result),
                               say(AGENTS_LANGUAGE, "agents_payout_summary_file",
                                   batch=result.batch_id).strip()))
    post += [AgentsDocument(f"{tx.hash}.xdr", tx.xdr + "\n", say(
        AGENTS_LANGUAGE, "agents_payout_transaction_file", position=tx.position, count=count,
        operations=tx.operations, hash=tx.hash).strip()) for tx in result.transactions]
    return post


def result_json(result: BuildResult, texts: Texts) -> dict[str, Any]:
    """What `--json` prints: the batch, each transaction (hash, file, operations, SEP-7
    link, signing service page), the payouts left out and why, what the account lacks."""
    return {
        "batch": result.batch_id,
        "kind": result.spec.kind,
        "summary_file": str(result.summary_file) if result.summary_file else None,
        "transactions": [{
            "hash": tx.hash, "file": str(result.files.get(tx.hash, "")),
            "operations": tx.operations, "sequence": tx.sequence,
            "sep7": result.links.get(tx.hash), "signing_url": result.signing_urls.get(tx.hash),
        } for tx in result.transactions],
        "skipped": [{"ref": s.payout.ref, "label": s.payout.label,
                     "account": s.payout.destination, "reason": s.reason,
                     "message": skip_message(texts, s)} for s in result.skipped],
        "missing": _shortfalls(result.plan),
        "notes": result.notes,
    }


def skip_message(texts: Texts, skip: Skip) -> str:
    return texts.say(AGENTS_LANGUAGE, "payout_skip_reason", reason=skip.reason,
                     detail=skip.detail).strip()
