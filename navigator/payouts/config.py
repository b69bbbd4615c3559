"""payouts.yaml: how Navigator pays on Stellar (the format: the file's own comments and the
README's "Payouts"). Loaded with every problem as `file:line: message`.

Values the community's documents do not fix (how much a newcomer gets, the daily
limits, the monthly rewards pool) are shipped as named placeholders, `SET_...`: the file
loads, `navigator check` warns about each one, and nothing that would pay with it is
built until it is set (`PayoutsConfig.require`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from stellar_sdk import Network

from navigator.payouts.assets import (
    XLM,
    Asset,
    asset_problem,
    is_account_id,
    parse_amount,
)
from navigator.problems import ContentError, LineDict, LineList, Problem, load_yaml

NETWORKS = {
    "public": (Network.PUBLIC_NETWORK_PASSPHRASE, "https://horizon.stellar.org",
               "https://viewer.eurmtl.me/transaction/{hash}"),
    "testnet": (Network.TESTNET_NETWORK_PASSPHRASE, "https://horizon-testnet.stellar.org",
                "https://stellar.expert/explorer/testnet/tx/{hash}"),
}
PLACEHOLDER = re.compile(r"^SET_[A-Z0-9_]+$")
MEMO_BYTES = 28  # a Stellar text memo
MAX_OPERATIONS = 100  # per transaction (a protocol limit)
# Stellar's minimum balance is 2 base reserves (2 x 0.5 XLM) plus one per trustline:
# a starting balance below this leaves a new account unable to add one trustline.
BASE_RESERVE = Decimal("0.5")
SECTIONS = {"network", "explorer", "max_fee", "valid_hours", "airdrop", "rewards"}
AIRDROP_KEYS = {"account", "memo", "starting_balance", "tokens", "limits",
                "reclaim_after_days", "bot_signing_max_balance"}
REWARDS_KEYS = {"account", "memo", "pool", "weights"}
# Rewards' points per answered and per solved ticket, unless payouts.yaml says otherwise.
DEFAULT_WEIGHTS = {"answered": Decimal(1), "solved": Decimal(2)}


@dataclass(frozen=True)
class Grant:
    """An amount of one asset."""

    asset: Asset
    amount: Decimal


@dataclass(frozen=True)
class AirdropConfig:
    account: str
    memo: str
    starting_balance: Decimal | None  # XLM for a destination that does not exist yet
    tokens: tuple[Grant, ...]
    per_request: dict[Asset, Decimal]
    per_day: dict[Asset, Decimal]
    reclaim_after: timedelta | None  # unclaimed claimable balances return after this
    bot_signing_max_balance: dict[Asset, Decimal] | None


@dataclass(frozen=True)
class RewardsConfig:
    account: str
    memo: str
    pool: Grant | None  # the monthly pool split among agents
    weights: dict[str, Decimal]  # points per answered and per solved ticket


@dataclass(frozen=True)
class PayoutsConfig:
    path: Path
    network: str  # "public" or "testnet"
    passphrase: str
    horizon_url: str  # the network's public Horizon (NAVIGATOR_HORIZON_URL overrides it)
    explorer: str  # a transaction's page, with {hash}
    max_fee: int  # stroops per operation: the most a transaction may pay
    valid_for: timedelta  # a batch's time bound: signers have this long
    airdrop: AirdropConfig | None
    rewards: RewardsConfig | None
    placeholders: tuple[Problem, ...] = field(default=())

    def require(self, section: str) -> None:
        """ContentError unless `section` ("airdrop", "rewards") is there and set."""
        if getattr(self, section) is None:
            raise ContentError([Problem(self.path, 1, f"no '{section}' section")])
        unset = [p for p in self.placeholders if p.message.startswith(f"{section}.")]
        if unset:
            raise ContentError([Problem(p.path, p.line, p.message) for p in unset])

    def explorer_link(self, tx_hash: str) -> str:
        return self.explorer.replace("{hash}", tx_hash)


def load_payouts(path: Path) -> PayoutsConfig:
    """The configuration, or ContentError with every error (placeholders are no error)."""
    config, problems = check_payouts(path)
    errors = [p for p in problems if p.severity == "error"]
    if errors or config is None:
        raise ContentError(errors)
    return config


def check_payouts(path: Path) -> tuple[PayoutsConfig | None, list[Problem]]:
    """What `navigator check` reports: the configuration if it loads, and every problem
    (errors; placeholders still to set as warnings)."""
    try:
        document = load_yaml(path.read_text(encoding="utf-8"), path)
    except FileNotFoundError:
        return None, [Problem(path, 0, "payouts file not found")]
    except UnicodeDecodeError as exc:
        return None, [Problem(path, 1, f"not UTF-8 text: {exc.reason}")]
    except ContentError as exc:
        return None, exc.problems
    reader = _Reader(path)
    config = reader.config(document)
    problems = reader.problems + reader.placeholders
    if any(p.severity == "error" for p in problems):
        return None, problems
    return config, problems


class _Reader:
    def __init__(self, path: Path):
        self.path = path
        self.problems: list[Problem] = []
        self.placeholders: list[Problem] = []

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def mapping(self, value: Any, where: str, line: int, keys: set[str]) -> LineDict | None:
        if not isinstance(value, LineDict):
            self.error(line, f"{where} must be a mapping")
            return None
        for key in value:
            if key not in keys:
                self.error(value.line_of(key), f"unknown key {where}.{key} "
                                               f"(expected one of: {', '.join(sorted(keys))})")
        return value

    def placeholder(self, value: Any, where: str, line: int) -> bool:
        if isinstance(value, str) and PLACEHOLDER.match(value.strip()):
            self.placeholders.append(Problem(
                self.path, line, f"{where} is the placeholder {value.strip()}: set it "
                "before paying (README, \"Payouts\")", "warning"))
            return True
        return False

    def amount(self, value: Any, where: str, line: int) -> Decimal | None:
        if value is None:
            self.error(line, f"{where}: an amount is required")
            return None
        if self.placeholder(value, where, line):
            return None
        try:
            return parse_amount(value)
        except ValueError as exc:
            self.error(line, f"{where}: {exc}")
            return None

    def account(self, section: LineDict, where: str) -> str:
        value = section.get("account")
        if not is_account_id(value):
            self.error(section.line_of("account"), f"{where}.account must be a Stellar public "
                       f"key (G..., 56 characters), not {value!r}")
            return ""
        return str(value)

    def memo(self, section: LineDict, where: str) -> str:
        memo = section.get("memo", "")
        if not isinstance(memo, str):
            self.error(section.line_of("memo"), f"{where}.memo must be text")
            return ""
        if len(memo.encode("utf-8")) > MEMO_BYTES:
            self.error(section.line_of("memo"), f"{where}.memo is {len(memo.encode())} bytes: "
                       f"a Stellar text memo holds {MEMO_BYTES}")
        return memo

    def grant(self, value: Any, where: str, line: int) -> tuple[Asset | None, Decimal | None]:
        """An asset and its amount; either is None when it is wrong (or a placeholder)."""
        item = self.mapping(value, where, line, {"code", "issuer", "amount"})
        if item is None:
            return None, None
        code = str(item.get("code", "")).strip()
        issuer = item.get("issuer")
        issuer = str(issuer).strip() if issuer is not None else None
        problem = asset_problem(code, issuer)
        if problem:
            self.error(item.line_of("issuer" if "issuer" in item else "code"),
                       f"{where}: {problem}")
        amount = self.amount(item.get("amount"), f"{where}.amount", item.line_of("amount"))
        if problem:
            return None, amount
        return (XLM if code == "XLM" and issuer is None else Asset(code, issuer)), amount

    def by_asset(self, value: Any, where: str, line: int, assets: dict[str, Asset]
                 ) -> dict[Asset, Decimal]:
        """A mapping of asset code to amount, for assets the section pays."""
        if value is None:
            return {}
        mapping = self.mapping(value, where, line, set(assets))
        result: dict[Asset, Decimal] = {}
        for code, amount in (mapping or {}).items():
            parsed = self.amount(amount, f"{where}.{code}", mapping.line_of(code))
            if code in assets and parsed is not None:
                result[assets[code]] = parsed
        return result

    def config(self, document: Any) -> PayoutsConfig | None:
        root = self.mapping(document, "payouts.yaml", 1, SECTIONS)
        if root is None:
            return None
        network = root.get("network", "public")
        if network not in NETWORKS:
            self.error(root.line_of("network"), f"network must be one of "
                       f"{', '.join(NETWORKS)}, not {network!r}")
            network = "public"
        passphrase, horizon, explorer = NETWORKS[network]
        explorer = root.get("explorer", explorer)
        if not isinstance(explorer, str) or "{hash}" not in explorer:
            self.error(root.line_of("explorer"), "explorer must be a URL with {hash} in it")
        max_fee = root.get("max_fee", 10_000)
        if isinstance(max_fee, bool) or not isinstance(max_fee, int) or max_fee < 100:
            self.error(root.line_of("max_fee"), "max_fee is stroops per operation: a whole "
                       "number, at least 100 (the network's minimum)")
            max_fee = 10_000
        hours = root.get("valid_hours", 72)
        if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
            self.error(root.line_of("valid_hours"), "valid_hours must be a positive number")
            hours = 72
        airdrop = self.airdrop(root["airdrop"], root.line_of("airdrop")) \
            if "airdrop" in root else None
        rewards = self.rewards(root["rewards"], root.line_of("rewards")) \
            if "rewards" in root else None
        return PayoutsConfig(self.path, network, passphrase, horizon, str(explorer), max_fee,
                             timedelta(hours=hours), airdrop, rewards,
                             tuple(self.placeholders))

    def airdrop(self, value: Any, line: int) -> AirdropConfig | None:
        section = self.mapping(value, "airdrop", line, AIRDROP_KEYS)
        if section is None:
            return None
        account = self.account(section, "airdrop")
        memo = self.memo(section, "airdrop")
        starting = self.amount(section.get("starting_balance"), "airdrop.starting_balance",
                               section.line_of("starting_balance"))
        tokens: list[Grant] = []
        assets = {"XLM": XLM}
        listed = section.get("tokens", [])
        if not isinstance(listed, LineList):
            self.error(section.line_of("tokens"), "airdrop.tokens must be a list")
            listed = LineList()
        for index, item in enumerate(listed):
            asset, amount = self.grant(item, f"airdrop.tokens[{index}]", listed.line_of(index))
            if asset is None:
                continue
            if asset.native:
                self.error(listed.line_of(index), "airdrop.tokens: XLM goes as "
                           "starting_balance (to new accounts), not as a token")
            elif asset.code in assets:
                self.error(listed.line_of(index), f"airdrop.tokens: {asset.code} "
                           "is listed twice")
            else:
                assets[asset.code] = asset
                if amount is not None:
                    tokens.append(Grant(asset, amount))
        if starting is not None and starting < BASE_RESERVE * (2 + len(listed)):
            self.error(section.line_of("starting_balance"), f"airdrop.starting_balance "
                       f"{starting} XLM is below the {BASE_RESERVE * (2 + len(listed))} XLM "
                       f"a new account needs to hold its {len(listed)} trustlines")
        limits = self.mapping(section.get("limits", LineDict()), "airdrop.limits",
                              section.line_of("limits"), {"per_request", "per_day"}) or {}
        per_request = self.by_asset(limits.get("per_request"), "airdrop.limits.per_request",
                                    section.line_of("limits"), assets)
        per_day = self.by_asset(limits.get("per_day"), "airdrop.limits.per_day",
                                section.line_of("limits"), assets)
        package = {t.asset: t.amount for t in tokens}
        if starting is not None:
            package[XLM] = starting
        for asset, limit in per_request.items():
            if asset in package and package[asset] > limit:
                self.error(section.line_of("limits"), f"airdrop: one request gets "
                           f"{package[asset]} {asset}, more than limits.per_request {limit}")
        reclaim = section.get("reclaim_after_days", 90)
        if reclaim is not None and (isinstance(reclaim, bool) or not isinstance(reclaim, int)
                                    or reclaim <= 0):
            self.error(section.line_of("reclaim_after_days"), "airdrop.reclaim_after_days "
                       "must be a whole number of days, or null (never reclaim)")
            reclaim = None
        bot_max = section.get("bot_signing_max_balance")
        return AirdropConfig(
            account, memo, starting, tuple(tokens), per_request, per_day,
            timedelta(days=reclaim) if reclaim else None,
            self.by_asset(bot_max, "airdrop.bot_signing_max_balance",
                          section.line_of("bot_signing_max_balance"), assets)
            if bot_max is not None else None)

    def rewards(self, value: Any, line: int) -> RewardsConfig | None:
        section = self.mapping(value, "rewards", line, REWARDS_KEYS)
        if section is None:
            return None
        account = self.account(section, "rewards")
        memo = self.memo(section, "rewards")
        asset, amount = self.grant(section.get("pool"), "rewards.pool",
                                   section.line_of("pool"))
        pool = Grant(asset, amount) if asset is not None and amount is not None else None
        weights = dict(DEFAULT_WEIGHTS)
        given = self.mapping(section.get("weights", LineDict()), "rewards.weights",
                             section.line_of("weights"), set(weights)) or {}
        for name, weight in given.items():
            try:
                weights[name] = Decimal(str(weight))
                if weights[name] < 0:
                    raise ValueError
            except (ArithmeticError, ValueError):
                self.error(given.line_of(name), f"rewards.weights.{name} must be a number "
                           "of points, 0 or more")
        return RewardsConfig(account, memo, pool, weights)
