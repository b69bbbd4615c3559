"""Horizon, the Stellar network's HTTP API, behind a small interface: what an account
holds, what the network charges, whether a transaction made it, and submitting one.

`Horizon` is the interface the payouts use; `HorizonClient` talks to a real Horizon over
aiohttp (the bot's HTTP client already; stellar-sdk's own Server blocks on `requests`,
and its async variant would hide the one distinction that matters here behind its
exception types). The distinction: an account or a transaction that does not exist (a
404) is an answer, None; anything else that is not a clean answer (no connection, a
timeout, 5xx, 429, a body that is not Horizon's JSON) raises `HorizonUnavailable`, so an
outage is never read as "this account is missing".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
from stellar_sdk import xdr as stellar_xdr

from navigator.payouts.assets import XLM, Asset
from navigator.payouts.config import BASE_RESERVE

log = logging.getLogger(__name__)


class HorizonUnavailable(Exception):
    """Horizon gave no usable answer: nothing may be concluded from this call."""


@dataclass(frozen=True)
class Balance:
    """One line of an account: XLM, or a trustline to a token."""

    asset: Asset
    amount: Decimal
    limit: Decimal | None = None  # a trustline's limit (XLM has none)
    authorized: bool = True  # the issuer lets this account hold the token
    buying_liabilities: Decimal = Decimal(0)  # promised to arrive by open offers
    selling_liabilities: Decimal = Decimal(0)  # promised away by open offers

    def spendable(self) -> Decimal:
        return self.amount - self.selling_liabilities

    def room(self) -> Decimal:
        """How much more this trustline can receive."""
        if self.limit is None:
            return Decimal("Infinity")
        return self.limit - self.amount - self.buying_liabilities


@dataclass(frozen=True)
class AccountState:
    """What Horizon says about an account that exists."""

    id: str
    sequence: int
    balances: dict[Asset, Balance]
    subentries: int = 0  # trustlines, offers, signers, data entries
    sponsoring: int = 0
    sponsored: int = 0
    signers: tuple[tuple[str, int], ...] = ()  # (public key, weight)
    medium_threshold: int = 0  # payments need signatures weighing this much

    def minimum_balance(self) -> Decimal:
        """The XLM the account must keep (the network's reserve for what it holds)."""
        return BASE_RESERVE * (2 + self.subentries + self.sponsoring - self.sponsored)

    def spendable(self, asset: Asset) -> Decimal:
        """How much of `asset` it can send now: 0 without a trustline; an issuer sends
        its own token without limit."""
        if asset.issuer == self.id:
            return Decimal("Infinity")
        balance = self.balances.get(asset)
        if balance is None:
            return Decimal(0)
        if asset.native:
            return balance.spendable() - self.minimum_balance()
        return balance.spendable() if balance.authorized else Decimal(0)

    def can_receive(self, asset: Asset, amount: Decimal) -> bool:
        """A plain payment of `amount` would arrive: XLM always, a token only through an
        authorized trustline with room for it (or to its issuer)."""
        if asset.native or asset.issuer == self.id:
            return True
        balance = self.balances.get(asset)
        return balance is not None and balance.authorized and balance.room() >= amount


@dataclass(frozen=True)
class TransactionOutcome:
    """A transaction's fate: in a ledger, successful or failed (with Horizon's result
    codes, e.g. ("tx_failed", ("op_success", "op_no_trust")))."""

    hash: str
    successful: bool
    ledger: int | None = None
    result_codes: tuple[str, tuple[str, ...]] = ("tx_success", ())

    def describe(self) -> str:
        """`tx_failed: op_success, op_no_trust` as agents are told it."""
        code, operations = self.result_codes
        failing = [f"#{i + 1} {c}" for i, c in enumerate(operations) if c != "op_success"]
        return code + (f" ({', '.join(failing)})" if failing else "")


class Horizon(Protocol):
    """What the payouts need from the network. Each call either answers or raises
    HorizonUnavailable."""

    async def account(self, account_id: str) -> AccountState | None:
        """The account, or None if it does not exist."""
        ...

    async def fee_charged(self) -> int:
        """What transactions paid per operation lately (stroops; the 95th percentile)."""
        ...

    async def transaction(self, tx_hash: str) -> TransactionOutcome | None:
        """The transaction's outcome, or None if no ledger holds it (yet)."""
        ...

    async def submit(self, envelope_xdr: str) -> TransactionOutcome:
        """Submit a signed transaction and wait for its outcome."""
        ...


async def fetch_accounts(horizon: Horizon, account_ids: Iterable[str], concurrency: int = 8
                         ) -> dict[str, AccountState | None]:
    """Many accounts at once, `concurrency` requests at a time (public Horizon allows
    3,600 requests an hour). The first HorizonUnavailable cancels the rest and is raised."""
    ids = list(dict.fromkeys(account_ids))
    results: dict[str, AccountState | None] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(account_id: str) -> None:
        async with gate:
            results[account_id] = await horizon.account(account_id)

    try:
        async with asyncio.TaskGroup() as group:
            for account_id in ids:
                group.create_task(one(account_id))
    except* HorizonUnavailable as errors:
        raise errors.exceptions[0] from None
    return results


class HorizonClient:
    """A real Horizon at `url`. Use as `async with HorizonClient(url) as horizon:`.
    Reads retry a transient failure `retries` times (0.5 s, then 1 s...); a submission
    never retries (Horizon's answer to a repeated one would mislead)."""

    def __init__(self, url: str, timeout: float = 20.0, retries: int = 2):
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.retries = retries
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HorizonClient:
        self._session = aiohttp.ClientSession(timeout=self.timeout,
                                              headers={"Accept": "application/json"})
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def account(self, account_id: str) -> AccountState | None:
        document = await self._get(f"/accounts/{account_id}")
        return None if document is None else account_state(document)

    async def fee_charged(self) -> int:
        document = await self._get("/fee_stats")
        try:
            return int(document["fee_charged"]["p95"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            raise HorizonUnavailable(f"{self.url}/fee_stats: not Horizon's fee stats") from None

    async def transaction(self, tx_hash: str) -> TransactionOutcome | None:
        document = await self._get(f"/transactions/{tx_hash}")
        return None if document is None else transaction_outcome(document)

    async def submit(self, envelope_xdr: str) -> TransactionOutcome:
        status, document = await self._request("POST", "/transactions",
                                               data={"tx": envelope_xdr})
        if status == 200 and isinstance(document, dict) and "hash" in document:
            return transaction_outcome(document)
        extras = document.get("extras") if isinstance(document, dict) else None
        if status == 400 and isinstance(extras, dict) and "result_codes" in extras:
            codes = extras["result_codes"]
            return TransactionOutcome(str(extras.get("hash", "")), False, None,
                                      (str(codes.get("transaction", "")),
                                       tuple(codes.get("operations", []))))
        raise HorizonUnavailable(f"{self.url}/transactions: HTTP {status} on submission; "
                                 "the outcome is unknown until `navigator airdrop status`")

    async def _get(self, path: str) -> dict[str, Any] | None:
        for attempt in range(self.retries + 1):
            try:
                status, document = await self._request("GET", path)
            except HorizonUnavailable:
                if attempt == self.retries:
                    raise
            else:
                if status == 404:
                    return None
                if status == 200 and isinstance(document, dict):
                    return document
                if status not in (429, 500, 502, 503, 504) or attempt == self.retries:
                    what = "an answer that is not Horizon's JSON" if status == 200 else \
                        f"HTTP {status}"
                    raise HorizonUnavailable(f"{self.url}{path}: {what}")
            await asyncio.sleep(0.5 * 2 ** attempt)
        raise AssertionError("unreachable")

    async def _request(self, method: str, path: str, data: dict[str, str] | None = None
                       ) -> tuple[int, Any]:
        if self._session is None:
            raise RuntimeError("use `async with HorizonClient(url)`")
        try:
            async with self._session.request(method, self.url + path, data=data) as response:
                try:
                    document = await response.json(content_type=None)
                except ValueError:
                    document = None
                return response.status, document
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HorizonUnavailable(f"{self.url}: {type(exc).__name__} {exc}".strip()) \
                from None


# Horizon's JSON -> the dataclasses above ---------------------------------------------


def account_state(document: dict[str, Any]) -> AccountState:
    """An account resource (GET /accounts/{id}) as AccountState."""
    try:
        balances = {}
        for line in document["balances"]:
            if line.get("asset_type") == "native":
                asset = XLM
            elif line.get("asset_type") in ("credit_alphanum4", "credit_alphanum12"):
                asset = Asset(line["asset_code"], line["asset_issuer"])
            else:  # liquidity pool shares: never paid or spent here
                continue
            balances[asset] = Balance(
                asset, Decimal(line["balance"]),
                Decimal(line["limit"]) if "limit" in line else None,
                bool(line.get("is_authorized", True)),
                Decimal(line.get("buying_liabilities", "0")),
                Decimal(line.get("selling_liabilities", "0")))
        thresholds = document.get("thresholds", {})
        return AccountState(
            document["account_id"], int(document["sequence"]), balances,
            int(document.get("subentry_count", 0)), int(document.get("num_sponsoring", 0)),
            int(document.get("num_sponsored", 0)),
            tuple((s["key"], int(s["weight"])) for s in document.get("signers", [])),
            int(thresholds.get("med_threshold", 0)))
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise HorizonUnavailable(f"not an account resource: {exc!r}") from None


def transaction_outcome(document: dict[str, Any]) -> TransactionOutcome:
    """A transaction resource (GET /transactions/{hash}, or a submission's answer)."""
    try:
        successful = bool(document["successful"])
        codes = ("tx_success", ()) if successful else result_codes(document["result_xdr"])
        return TransactionOutcome(document["hash"], successful,
                                  int(document["ledger"]) if "ledger" in document else None,
                                  codes)
    except (KeyError, TypeError, ValueError) as exc:
        raise HorizonUnavailable(f"not a transaction resource: {exc!r}") from None


def result_codes(result_xdr: str) -> tuple[str, tuple[str, ...]]:
    """Horizon's result codes from a TransactionResult XDR: Horizon gives them only in a
    submission's answer, so a failed transaction found later is decoded here."""
    result = stellar_xdr.TransactionResult.from_xdr(result_xdr).result
    transaction = _snake(result.code.name, "tx")
    operations = []
    for operation in result.results or []:
        if operation.code != stellar_xdr.OperationResultCode.opINNER or operation.tr is None:
            operations.append(_snake(operation.code.name, "op"))
            continue
        kind = operation.tr.type.name  # e.g. PAYMENT
        inner = getattr(operation.tr, f"{kind.lower()}_result", None)
        code = getattr(inner, "code", None)
        name = code.name.removeprefix(f"{kind}_") if code is not None else "UNKNOWN"
        operations.append("op_" + name.lower())
    return transaction, tuple(operations)


def _snake(name: str, prefix: str) -> str:
    """`txBAD_SEQ` -> `tx_bad_seq`, `opNO_ACCOUNT` -> `op_no_account`."""
    return f"{prefix}_{name.removeprefix(prefix).lower()}"
