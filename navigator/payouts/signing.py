"""Who signs: people, always, unless a dedicated small account is configured otherwise.

An unsigned transaction leaves the bot as a base64 XDR file, as a SEP-7 link any
SEP-7 wallet opens (`sep7_link`), or, when configured, posted to the community's
signing service (`EurmtlSigningService`: eurmtl.me collects the signers' signatures).
Only for a dedicated low-balance airdrop account may the bot hold a secret (`BotKey`, a
file named by NAVIGATOR_PAYOUTS_SECRET_FILE) and sign and submit itself; `bot_may_sign`
says when it may. The secret lives in one private attribute of BotKey: no repr, log,
error message, database row or chat message ever carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlencode

import aiohttp
from stellar_sdk import Keypair, Network, TransactionEnvelope

from navigator.payouts.assets import Asset, format_amount
from navigator.payouts.config import PayoutsConfig
from navigator.payouts.horizon import AccountState

SEP7_MESSAGE_LIMIT = 300  # characters, SEP-7's `msg`


def sep7_link(xdr: str, passphrase: str, message: str = "") -> str:
    """`web+stellar:tx?xdr=...`: a wallet that speaks SEP-7 opens the transaction to sign.
    The network is named only when it is not the public one (SEP-7's default)."""
    parameters = {"xdr": xdr}
    if passphrase != Network.PUBLIC_NETWORK_PASSPHRASE:
        parameters["network_passphrase"] = passphrase
    if message:
        parameters["msg"] = message[:SEP7_MESSAGE_LIMIT]
    return "web+stellar:tx?" + urlencode(parameters, quote_via=quote)


class SigningServiceError(Exception):
    """The signing service did not take the transaction (the message says why)."""


@dataclass(frozen=True)
class Published:
    hash: str  # the hash the service computed (should be ours)
    url: str  # where the signers open it


class SigningService(Protocol):
    async def publish(self, xdr: str, description: str) -> Published:
        """Hand an unsigned transaction to the signers; raises SigningServiceError."""
        ...


class EurmtlSigningService:
    """The community's signing service (github.com/attid/eurmtl.me, routers/remote.py):
    `POST {url}/remote/add_transaction` with `Authorization: Bearer {token}` and JSON
    `{"tx_body": xdr, "tx_description": text}` (5 characters at least) answers 201
    `{"hash": ...}`; signers then sign at `{url}/sign_tools/{hash}`. It reads every
    transaction as a public-network one."""

    def __init__(self, url: str, token: str, timeout: float = 20.0):
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        return f"EurmtlSigningService({self.url!r})"

    async def publish(self, xdr: str, description: str) -> Published:
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session, session.post(
                    f"{self.url}/remote/add_transaction",
                    json={"tx_body": xdr, "tx_description": description},
                    headers={"Authorization": f"Bearer {self._token}"}) as response:
                try:
                    document = await response.json(content_type=None)
                except ValueError:
                    document = None
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SigningServiceError(f"{self.url}: {type(exc).__name__}") from None
        message = document.get("message") if isinstance(document, dict) else None
        if status == 201 and isinstance(document, dict) and document.get("hash"):
            tx_hash = str(document["hash"])
            return Published(tx_hash, f"{self.url}/sign_tools/{tx_hash}")
        raise SigningServiceError(f"{self.url}: HTTP {status}" + (f": {message}" if message
                                                                  else ""))


class SigningRefused(Exception):
    """The bot will not sign (the message says why; it never contains the secret)."""


class BotKey:
    """The secret key of a dedicated airdrop account, read from a file (one line, S...)."""

    def __init__(self, keypair: Keypair):
        self.__keypair = keypair

    @classmethod
    def from_file(cls, path: Path) -> BotKey:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SigningRefused(f"secret file {path}: cannot read it ({type(exc).__name__})"
                                 ) from None
        try:
            return cls(Keypair.from_secret(text))
        except Exception:  # whatever the SDK says would quote the text
            raise SigningRefused(f"secret file {path}: not a Stellar secret key") from None

    @property
    def public_key(self) -> str:
        return self.__keypair.public_key

    def sign(self, xdr: str, passphrase: str) -> str:
        """The transaction with this key's signature added."""
        envelope = TransactionEnvelope.from_xdr(xdr, passphrase)
        envelope.sign(self.__keypair)
        return envelope.to_xdr()

    def __repr__(self) -> str:
        return f"BotKey(public_key={self.public_key!r})"

    __str__ = __repr__


def bot_may_sign(config: PayoutsConfig, key: BotKey, account: AccountState,
                 totals: dict[Asset, Decimal]) -> None:
    """Raise SigningRefused unless the bot may sign a batch paying `totals` from
    `account`: the key is the airdrop account's own and weighs enough to pay from it,
    `airdrop.bot_signing_max_balance` is set and the account holds no more than it (a
    dedicated low-balance account), and every asset paid has a daily limit."""
    airdrop = config.airdrop
    if airdrop is None or key.public_key != airdrop.account:
        raise SigningRefused("the secret key is not the airdrop account's "
                             f"({key.public_key} is not {airdrop.account if airdrop else '—'})")
    if airdrop.bot_signing_max_balance is None:
        raise SigningRefused("airdrop.bot_signing_max_balance is not set in "
                             f"{config.path}: the bot signs only for a low-balance account")
    weight = dict(account.signers).get(key.public_key, 0)
    if weight < max(account.medium_threshold, 1):
        raise SigningRefused(f"the key weighs {weight}, payments from this account need "
                             f"{account.medium_threshold}: people must sign")
    for asset, balance in account.balances.items():
        cap = airdrop.bot_signing_max_balance.get(asset)
        if cap is not None and balance.amount > cap:
            raise SigningRefused(
                f"the account holds {format_amount(balance.amount)} {asset}, more than "
                f"bot_signing_max_balance {format_amount(cap)}: not a low-balance account")
    unlimited = [str(a) for a in totals if a not in airdrop.per_day]
    if unlimited:
        raise SigningRefused("no daily limit (airdrop.limits.per_day) for "
                             + ", ".join(unlimited))
