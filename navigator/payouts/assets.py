"""Assets and amounts as Stellar counts them: a code and an issuer (XLM has none), and
amounts of at most 7 decimal places (1 stroop = 0.0000001), kept as Decimal or as whole
stroops so sums never drift."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from stellar_sdk import Asset as SdkAsset
from stellar_sdk import StrKey

STROOPS_PER_UNIT = 10_000_000
STROOP = Decimal("0.0000001")
# The largest amount a Stellar balance holds (int64 stroops).
MAX_AMOUNT = Decimal(2**63 - 1) / STROOPS_PER_UNIT
_ASSET_CODE = re.compile(r"^[A-Za-z0-9]{1,12}$")


@dataclass(frozen=True, order=True)
class Asset:
    """XLM (`issuer` None) or a token: its code and the issuing account."""

    code: str
    issuer: str | None = None

    @property
    def native(self) -> bool:
        return self.issuer is None

    def to_sdk(self) -> SdkAsset:
        return SdkAsset.native() if self.issuer is None else SdkAsset(self.code, self.issuer)

    def __str__(self) -> str:
        return self.code


XLM = Asset("XLM")


def asset_problem(code: str, issuer: str | None) -> str | None:
    """Why `code` + `issuer` is not a Stellar asset, or None if it is one."""
    if code == "XLM" and issuer is None:
        return None
    if not _ASSET_CODE.match(code):
        return f"asset code {code!r} must be 1-12 letters or digits"
    if issuer is None:
        return f"token {code} needs an issuer (only XLM has none)"
    if not is_account_id(issuer):
        return f"issuer {issuer!r} of {code} is not a Stellar public key (G..., 56 characters)"
    return None


def is_account_id(value: object) -> bool:
    """A Stellar public key: G + 55 characters of base32 with a valid checksum."""
    return isinstance(value, str) and StrKey.is_valid_ed25519_public_key(value)


def parse_amount(value: object) -> Decimal:
    """A positive amount with at most 7 decimal places; ValueError says what is wrong.
    YAML floats are read through their text, so 0.1 stays 0.1."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{value!r} is not an amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{value!r}: an amount must be more than 0")
    if amount != amount.quantize(STROOP):
        raise ValueError(f"{value!r}: Stellar amounts have at most 7 decimal places")
    if amount > MAX_AMOUNT:
        raise ValueError(f"{value!r} is more than a Stellar balance can hold")
    return amount


def to_stroops(amount: Decimal) -> int:
    return int(amount * STROOPS_PER_UNIT)


def from_stroops(stroops: int) -> Decimal:
    return (Decimal(stroops) / STROOPS_PER_UNIT).quantize(STROOP)


def format_amount(amount: Decimal) -> str:
    """`10`, `2.5`, `0.0000001`: as Stellar writes it, without trailing zeros."""
    text = f"{amount.quantize(STROOP):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def short_account(account: str) -> str:
    """`GABC…WXYZ`: an account id people can still compare by its ends."""
    return f"{account[:4]}…{account[-4:]}"
