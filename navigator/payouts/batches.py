"""The batch builder: who gets what -> as few unsigned Stellar transactions as possible.

`plan_payouts` decides, from what Horizon said about every account, which operations pay
each destination: `create_account` (with the starting XLM) for an account that does not
exist yet, a payment where a trustline can take the token, and otherwise a claimable
balance the user claims after adding the trustline (with the paying account as a second
claimant after `reclaim_after`, so unclaimed tokens come back). It checks the daily limit
and that the paying account holds enough of every asset (fees and reserves included);
if it does not, the plan has shortfalls and no transactions. `assemble` turns a plan into
transactions of at most 100 operations with consecutive sequence numbers, a time bound
and a memo (stellar-sdk). Both are plain functions: no network, no database.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from stellar_sdk import Account, Claimant, ClaimPredicate, TransactionBuilder

from navigator.payouts.assets import XLM, Asset, format_amount, from_stroops
from navigator.payouts.config import BASE_RESERVE, MAX_OPERATIONS, Grant
from navigator.payouts.horizon import AccountState

CREATE_ACCOUNT, PAYMENT, CLAIMABLE = "create_account", "payment", "claimable"
# Why a payout is left out (Skip.reason).
PAYING_ACCOUNT, SAME_ACCOUNT, NO_ACCOUNT = "paying_account", "same_account", "no_account"
TOO_MANY_OPERATIONS, DAILY_LIMIT = "too_many_operations", "daily_limit"


@dataclass(frozen=True)
class Payout:
    """What one destination should get. `ref` names it for the caller (a request id, an
    agent id); `label` for people ("№12 Анна")."""

    ref: int
    destination: str
    grants: tuple[Grant, ...]
    # XLM to create the account with if it does not exist; None: a missing account is
    # skipped (rewards go to accounts agents use).
    starting_balance: Decimal | None
    label: str


@dataclass(frozen=True)
class Operation:
    kind: str  # CREATE_ACCOUNT, PAYMENT or CLAIMABLE
    destination: str
    asset: Asset
    amount: Decimal

    def as_record(self) -> dict[str, str | None]:
        return {"op": self.kind, "code": self.asset.code, "issuer": self.asset.issuer,
                "amount": format_amount(self.amount)}


@dataclass(frozen=True)
class Planned:
    payout: Payout
    operations: tuple[Operation, ...]


@dataclass(frozen=True)
class Skip:
    """A payout left out of the batch: `reason` is a code (the template
    `payout_skip_reason` words it), `detail` what the wording needs."""

    payout: Payout
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Shortfall:
    """The paying account lacks `needed - available` of `asset`."""

    asset: Asset
    needed: Decimal
    available: Decimal

    @property
    def missing(self) -> Decimal:
        return self.needed - self.available


@dataclass
class Plan:
    groups: list[list[Planned]] = field(default_factory=list)  # one per transaction
    skipped: list[Skip] = field(default_factory=list)
    shortfalls: list[Shortfall] = field(default_factory=list)
    needed: dict[Asset, Decimal] = field(default_factory=dict)  # fees and reserves included

    @property
    def planned(self) -> list[Planned]:
        return [p for group in self.groups for p in group]


def plan_payouts(payouts: list[Payout], accounts: dict[str, AccountState | None],
                 source: AccountState, fee_per_operation: int, reclaim: bool,
                 daily_room: dict[Asset, Decimal] | None = None) -> Plan:
    """Decide every payout's operations and group them into transactions.

    `accounts`: Horizon's answer for every destination (None: does not exist).
    `daily_room`: how much of each limited asset may still go out today; a payout that
    would pass it is skipped (it stays approved for another day). Payouts keep their
    order; each one's operations stay in one transaction, so one hash settles it.
    """
    plan = Plan()
    room = dict(daily_room or {})
    seen: dict[str, Payout] = {}
    for payout in payouts:
        skip = _refusal(payout, accounts, source, seen)
        if skip:
            plan.skipped.append(skip)
            continue
        operations = _operations(payout, accounts[payout.destination])
        amounts: dict[Asset, Decimal] = defaultdict(Decimal)
        for operation in operations:
            amounts[operation.asset] += operation.amount
        over = [a for a, amount in amounts.items() if a in room and amount > room[a]]
        if over:
            plan.skipped.append(Skip(payout, DAILY_LIMIT, ", ".join(map(str, over))))
            continue
        for asset, amount in amounts.items():
            if asset in room:
                room[asset] -= amount
        seen[payout.destination] = payout
        _place(plan.groups, Planned(payout, operations))
    plan.needed = _needed(plan.planned, fee_per_operation, reclaim)
    plan.shortfalls = [Shortfall(asset, needed, max(source.spendable(asset), Decimal(0)))
                       for asset, needed in sorted(plan.needed.items())
                       if source.spendable(asset) < needed]
    if plan.shortfalls:
        plan.groups = []
    return plan


def _refusal(payout: Payout, accounts: dict[str, AccountState | None], source: AccountState,
             seen: dict[str, Payout]) -> Skip | None:
    if payout.destination == source.id:
        return Skip(payout, PAYING_ACCOUNT)
    if payout.destination in seen:
        return Skip(payout, SAME_ACCOUNT, seen[payout.destination].label)
    if accounts.get(payout.destination) is None and payout.starting_balance is None:
        return Skip(payout, NO_ACCOUNT)
    if len(payout.grants) + 1 > MAX_OPERATIONS:
        return Skip(payout, TOO_MANY_OPERATIONS, str(MAX_OPERATIONS))
    return None


def _operations(payout: Payout, account: AccountState | None) -> tuple[Operation, ...]:
    operations = []
    if account is None:
        # A new account holds no trustline yet: every token waits as a claimable balance.
        operations.append(Operation(CREATE_ACCOUNT, payout.destination, XLM,
                                    payout.starting_balance or Decimal(0)))
    for grant in payout.grants:
        paid = grant.asset.native or (account is not None and
                                      account.can_receive(grant.asset, grant.amount))
        operations.append(Operation(PAYMENT if paid else CLAIMABLE, payout.destination,
                                    grant.asset, grant.amount))
    return tuple(operations)


def _place(groups: list[list[Planned]], planned: Planned) -> None:
    """First fit: the first transaction with room for all of this payout's operations."""
    size = len(planned.operations)
    for group in groups:
        if sum(len(p.operations) for p in group) + size <= MAX_OPERATIONS:
            group.append(planned)
            return
    groups.append([planned])


def _needed(planned: list[Planned], fee_per_operation: int, reclaim: bool
            ) -> dict[Asset, Decimal]:
    """What the paying account spends: the amounts, the fees (the most each operation
    may cost), and the reserve each claimable balance locks until it is claimed
    (one base reserve per claimant)."""
    needed: dict[Asset, Decimal] = defaultdict(Decimal)
    operations = [o for p in planned for o in p.operations]
    for operation in operations:
        needed[operation.asset] += operation.amount
    claimants = 2 if reclaim else 1
    claimables = sum(o.kind == CLAIMABLE for o in operations)
    if operations:
        needed[XLM] += from_stroops(fee_per_operation * len(operations))
        needed[XLM] += BASE_RESERVE * claimants * claimables
    return dict(needed)


# Assembling transactions (stellar-sdk) --------------------------------------------------


@dataclass(frozen=True)
class BuiltTransaction:
    position: int  # 1, 2... in the batch: the order to submit them in
    hash: str
    xdr: str  # base64 TransactionEnvelope, unsigned
    sequence: int
    planned: tuple[Planned, ...]

    @property
    def operations(self) -> int:
        return sum(len(p.operations) for p in self.planned)

    def totals(self) -> dict[Asset, Decimal]:
        totals: dict[Asset, Decimal] = defaultdict(Decimal)
        for planned in self.planned:
            for operation in planned.operations:
                totals[operation.asset] += operation.amount
        return dict(sorted(totals.items()))


def assemble(plan: Plan, source: str, first_sequence: int, passphrase: str,
             fee_per_operation: int, memo: str, valid_until: datetime,
             reclaim_after: timedelta | None) -> list[BuiltTransaction]:
    """One transaction per group of the plan, with sequence numbers `first_sequence`,
    `first_sequence + 1`... (to be submitted in that order), valid until `valid_until`."""
    built = []
    for position, group in enumerate(plan.groups, start=1):
        sequence = first_sequence + position - 1
        # The builder uses the account's sequence + 1.
        builder = TransactionBuilder(Account(source, sequence - 1), passphrase,
                                     base_fee=fee_per_operation)
        builder.add_time_bounds(0, int(valid_until.timestamp()))
        if memo:
            builder.add_text_memo(memo)
        for planned in group:
            for operation in planned.operations:
                _append(builder, operation, source, reclaim_after)
        envelope = builder.build()
        built.append(BuiltTransaction(position, envelope.hash_hex(), envelope.to_xdr(),
                                      sequence, tuple(group)))
    return built


def _append(builder: TransactionBuilder, operation: Operation, source: str,
            reclaim_after: timedelta | None) -> None:
    amount = format_amount(operation.amount)
    if operation.kind == CREATE_ACCOUNT:
        builder.append_create_account_op(operation.destination, amount)
    elif operation.kind == PAYMENT:
        builder.append_payment_op(operation.destination, operation.asset.to_sdk(), amount)
    else:
        claimants = [Claimant(operation.destination)]  # unconditional
        if reclaim_after is not None:
            # The paying account may take it back once `reclaim_after` has passed since
            # the balance was created (if the user never claimed it).
            claimants.append(Claimant(source, ClaimPredicate.predicate_not(
                ClaimPredicate.predicate_before_relative_time(
                    int(reclaim_after.total_seconds())))))
        builder.append_create_claimable_balance_op(operation.asset.to_sdk(), amount,
                                                   claimants)
