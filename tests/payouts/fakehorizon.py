"""A fake Horizon (the Stellar network's HTTP API) the payouts tests own.

It serves, on 127.0.0.1, the four resources Navigator uses, with Horizon's JSON shapes:
`GET /accounts/{id}` (balances, trustlines, sequence, signers; Horizon's 404 problem for
an account that does not exist), `GET /fee_stats`, `GET /transactions/{hash}` (found
successful or failed, with a real TransactionResult XDR to decode; 404 while no ledger
holds it) and `POST /transactions` (a submission: checked against the source account's
sequence and signatures, then applied as successful unless the test said otherwise).
`unavailable = "down"` answers 503 everywhere, `"rate_limited"` 429.

Run it in a test's event loop (`await fake.start()`) or, for a `navigator` subprocess,
on a thread of its own (`with fake.running():`).

Known differences from Horizon: a successful submission only bumps the source's sequence
(balances do not move); no paging, streaming, or other resources (they answer 404).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web
from stellar_sdk import Keypair, Network, TransactionEnvelope
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.exceptions import BadSignatureError

from navigator.payouts.assets import XLM, Asset

NOT_FOUND = {"type": "https://stellar.org/horizon-errors/not_found",
             "title": "Resource Missing", "status": 404,
             "detail": "The resource at the url requested was not found."}
MAX_LIMIT = "922337203685.4775807"


def _amount(value: Decimal | str | int) -> str:
    return f"{Decimal(str(value)):.7f}"


@dataclass
class FakeAccount:
    id: str
    sequence: int
    balances: dict[Asset, Decimal]
    limits: dict[Asset, Decimal] = field(default_factory=dict)
    unauthorized: set[Asset] = field(default_factory=set)
    signers: dict[str, int] = field(default_factory=dict)
    med_threshold: int = 0

    def resource(self) -> dict[str, Any]:
        balances = []
        for asset, amount in self.balances.items():
            line: dict[str, Any] = {"balance": _amount(amount), "buying_liabilities": "0.0000000",
                                    "selling_liabilities": "0.0000000"}
            if asset == XLM:
                line["asset_type"] = "native"
            else:
                line.update({
                    "limit": _amount(self.limits[asset]) if asset in self.limits else MAX_LIMIT,
                    "last_modified_ledger": 1000,
                    "is_authorized": asset not in self.unauthorized,
                    "is_authorized_to_maintain_liabilities": asset not in self.unauthorized,
                    "asset_type": "credit_alphanum4" if len(asset.code) <= 4
                    else "credit_alphanum12",
                    "asset_code": asset.code, "asset_issuer": asset.issuer})
            balances.append(line)
        balances.sort(key=lambda b: b["asset_type"] == "native")  # XLM last, as Horizon does
        signers = self.signers or {self.id: 1}
        return {
            "_links": {"self": {"href": f"/accounts/{self.id}"}},
            "id": self.id, "account_id": self.id, "sequence": str(self.sequence),
            "subentry_count": sum(1 for a in self.balances if a != XLM),
            "num_sponsoring": 0, "num_sponsored": 0, "last_modified_ledger": 1000,
            "thresholds": {"low_threshold": 0, "med_threshold": self.med_threshold,
                           "high_threshold": 0},
            "flags": {"auth_required": False, "auth_revocable": False,
                      "auth_immutable": False, "auth_clawback_enabled": False},
            "balances": balances,
            "signers": [{"weight": w, "key": k, "type": "ed25519_public_key"}
                        for k, w in signers.items()],
            "data": {}, "paging_token": self.id,
        }


class FakeHorizon:
    def __init__(self, passphrase: str = Network.TESTNET_NETWORK_PASSPHRASE):
        self.passphrase = passphrase
        self.accounts: dict[str, FakeAccount] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.fee_p95 = 100
        self.unavailable: str | None = None  # "down" (503) or "rate_limited" (429)
        self.requests: list[tuple[str, str]] = []
        self.submitted: list[str] = []  # envelope XDRs, as received
        self.ledger = 50_000_000
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # The network's state, as a test sets it ----------------------------------------

    def add_account(self, account_id: str | None = None, xlm: str = "100",
                    tokens: dict[Asset, str] | None = None, sequence: int = 1_000_000_000_000,
                    **extra: Any) -> str:
        """An account holding `xlm` XLM and a trustline (with that balance) to each
        token in `tokens`; returns its id (random unless given)."""
        account_id = account_id or Keypair.random().public_key
        balances = {XLM: Decimal(xlm), **{a: Decimal(v) for a, v in (tokens or {}).items()}}
        self.accounts[account_id] = FakeAccount(account_id, sequence, balances, **extra)
        return account_id

    def succeed(self, tx_hash: str, envelope_xdr: str = "") -> None:
        """The network applied `tx_hash` successfully (a ledger now holds it)."""
        self.ledger += 1
        self.transactions[tx_hash] = self._resource(tx_hash, envelope_xdr, True, _result(
            envelope_xdr, self.passphrase, "tx_success", {}))

    def fail(self, tx_hash: str, envelope_xdr: str, tx_code: str = "tx_failed",
             op_codes: dict[int, str] | None = None) -> None:
        """A ledger holds `tx_hash` as failed: `op_codes` maps an operation's index to
        its Horizon code (e.g. {1: "op_no_trust"}); the others succeeded."""
        self.ledger += 1
        self.transactions[tx_hash] = self._resource(tx_hash, envelope_xdr, False, _result(
            envelope_xdr, self.passphrase, tx_code, op_codes or {}))

    def _resource(self, tx_hash: str, envelope_xdr: str, successful: bool,
                  result_xdr: str) -> dict[str, Any]:
        return {"_links": {"self": {"href": f"/transactions/{tx_hash}"}}, "id": tx_hash,
                "hash": tx_hash, "ledger": self.ledger, "successful": successful,
                "created_at": "2026-11-23T10:00:00Z", "envelope_xdr": envelope_xdr,
                "result_xdr": result_xdr, "fee_charged": "100", "paging_token": tx_hash}

    # Serving -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/accounts/{account_id}", self._account)
        app.router.add_get("/fee_stats", self._fee_stats)
        app.router.add_get("/transactions/{tx_hash}", self._transaction)
        app.router.add_post("/transactions", self._submit)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeHorizon]:
        """Serve on a thread with its own event loop (for a `navigator` subprocess)."""
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="fake-horizon", daemon=True)
        thread.start()
        started.wait(10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    def _refused(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path))
        if self.unavailable == "down":
            return web.json_response({"type": "https://stellar.org/horizon-errors/"
                                      "service_unavailable", "title": "Service Unavailable",
                                      "status": 503}, status=503)
        if self.unavailable == "rate_limited":
            return web.json_response({"type": "https://stellar.org/horizon-errors/"
                                      "rate_limit_exceeded", "title": "Rate Limit Exceeded",
                                      "status": 429}, status=429)
        return None

    async def _account(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        account = self.accounts.get(request.match_info["account_id"])
        if account is None:
            return web.json_response(NOT_FOUND, status=404)
        return web.json_response(account.resource())

    async def _fee_stats(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        percentiles = {f"p{p}": str(self.fee_p95 if p >= 95 else 100)
                       for p in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)}
        return web.json_response({
            "last_ledger": str(self.ledger), "last_ledger_base_fee": "100",
            "ledger_capacity_usage": "0.5",
            "fee_charged": {"max": str(self.fee_p95), "min": "100", "mode": "100",
                            **percentiles},
            "max_fee": {"max": "100000", "min": "100", "mode": "100", **percentiles}})

    async def _transaction(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        resource = self.transactions.get(request.match_info["tx_hash"])
        if resource is None:
            return web.json_response(NOT_FOUND, status=404)
        return web.json_response(resource)

    async def _submit(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        envelope_xdr = (await request.post()).get("tx", "")
        self.submitted.append(str(envelope_xdr))
        try:
            envelope = TransactionEnvelope.from_xdr(str(envelope_xdr), self.passphrase)
        except Exception:
            return web.json_response({"type": "https://stellar.org/horizon-errors/"
                                      "transaction_malformed", "status": 400,
                                      "title": "Transaction Malformed"}, status=400)
        tx_hash = envelope.hash_hex()
        if tx_hash in self.transactions:  # decided by the test
            resource = self.transactions[tx_hash]
            if resource["successful"]:
                return web.json_response(resource)
            codes = _codes(resource["result_xdr"])
            return self._failure(tx_hash, str(envelope_xdr), codes)
        source = self.accounts.get(envelope.transaction.source.account_id)
        if source is None:
            return self._failure(tx_hash, str(envelope_xdr), ("tx_no_source_account", []))
        if envelope.transaction.sequence != source.sequence + 1:
            return self._failure(tx_hash, str(envelope_xdr), ("tx_bad_seq", []))
        signers = source.signers or {source.id: 1}
        weight = sum(w for key, w in signers.items() if _signed_by(envelope, key))
        if weight < max(source.med_threshold, 1):
            return self._failure(tx_hash, str(envelope_xdr), ("tx_bad_auth", []))
        source.sequence += 1
        self.succeed(tx_hash, str(envelope_xdr))
        return web.json_response(self.transactions[tx_hash])

    def _failure(self, tx_hash: str, envelope_xdr: str,
                 codes: tuple[str, list[str]]) -> web.Response:
        return web.json_response({
            "type": "https://stellar.org/horizon-errors/transaction_failed",
            "title": "Transaction Failed", "status": 400,
            "detail": "The transaction failed when submitted to the stellar network.",
            "extras": {"envelope_xdr": envelope_xdr, "hash": tx_hash,
                       "result_codes": {"transaction": codes[0],
                                        **({"operations": codes[1]} if codes[1] else {})}},
        }, status=400)


def _signed_by(envelope: TransactionEnvelope, public_key: str) -> bool:
    keypair = Keypair.from_public_key(public_key)
    for signature in envelope.signatures:
        try:
            keypair.verify(envelope.hash(), signature.signature)
            return True
        except BadSignatureError:
            continue
    return False


def _codes(result_xdr: str) -> tuple[str, list[str]]:
    from navigator.payouts.horizon import result_codes

    transaction, operations = result_codes(result_xdr)
    return transaction, list(operations)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _result(envelope_xdr: str, passphrase: str, tx_code: str,
            op_codes: dict[int, str]) -> str:
    """A TransactionResult XDR: `tx_code` (Horizon's name, e.g. "tx_failed") and, for
    each operation of the envelope, success or the code `op_codes` gives it."""
    code = stellar_xdr.TransactionResultCode["tx" + tx_code.removeprefix("tx_").upper()]
    results = None
    if envelope_xdr and code in (stellar_xdr.TransactionResultCode.txSUCCESS,
                                 stellar_xdr.TransactionResultCode.txFAILED):
        envelope = TransactionEnvelope.from_xdr(envelope_xdr, passphrase)
        results = [_operation_result(op.to_xdr_object().body.type, index,
                                     op_codes.get(index, "op_success"))
                   for index, op in enumerate(envelope.transaction.operations)]
    elif code in (stellar_xdr.TransactionResultCode.txSUCCESS,
                  stellar_xdr.TransactionResultCode.txFAILED):
        results = []
    result = stellar_xdr.TransactionResult(
        stellar_xdr.Int64(100), stellar_xdr.TransactionResultResult(code, results=results),
        stellar_xdr.TransactionResultExt(0))
    return result.to_xdr()


def _operation_result(kind: stellar_xdr.OperationType, index: int, horizon_code: str
                      ) -> stellar_xdr.OperationResult:
    name = kind.name  # e.g. CREATE_CLAIMABLE_BALANCE
    code_enum = getattr(stellar_xdr, f"{_camel(name)}ResultCode")
    inner_code = code_enum[f"{name}_{horizon_code.removeprefix('op_').upper()}"]
    extra: dict[str, Any] = {}
    if name == "CREATE_CLAIMABLE_BALANCE" and inner_code.name.endswith("SUCCESS"):
        extra["balance_id"] = stellar_xdr.ClaimableBalanceID(
            stellar_xdr.ClaimableBalanceIDType.CLAIMABLE_BALANCE_ID_TYPE_V0,
            v0=stellar_xdr.Hash(hashlib.sha256(f"balance {index}".encode()).digest()))
    inner = getattr(stellar_xdr, f"{_camel(name)}Result")(inner_code, **extra)
    tr = stellar_xdr.OperationResultTr(kind, **{f"{name.lower()}_result": inner})
    return stellar_xdr.OperationResult(stellar_xdr.OperationResultCode.opINNER, tr)
