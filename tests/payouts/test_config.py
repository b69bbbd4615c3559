"""payouts.yaml: the shipped configuration names what is still to be decided, and every
mistake an editor can make is reported at its line."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from stellar_sdk import Keypair, Network

from navigator.payouts.assets import XLM, Asset
from navigator.payouts.config import check_payouts, load_payouts
from navigator.problems import ContentError
from tests.conftest import ROOT

SHIPPED = ROOT / "payouts.yaml"
EURMTL = Asset("EURMTL", "GACKTN5DAZGWXRWB2WLM6OPBDHAMT6SJNGLJZPQMEZBUR4JUGBX2UK7V")
SOURCE = Keypair.random().public_key
ISSUER = Keypair.random().public_key


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "payouts.yaml"
    path.write_text(text, encoding="utf-8")
    return [str(p).removeprefix(f"{path}:") for p in check_payouts(path)[1]]


def airdrop(body: str = "", **keys: str) -> str:
    """A valid configuration with `body` lines added to (or `keys` replacing) the
    airdrop section's."""
    values = {"account": SOURCE, "memo": "MTL Support airdrop", "starting_balance": "5",
              **keys}
    lines = "".join(f"  {k}: {v}\n" for k, v in values.items())
    return (f"network: testnet\nairdrop:\n{lines}"
            f"  tokens:\n    - {{code: EURMTL, issuer: {ISSUER}, amount: 10}}\n{body}")


class TestTheShippedConfiguration:
    def test_it_loads_with_the_communitys_accounts_and_tokens(self):
        config = load_payouts(SHIPPED)
        assert config.network == "public"
        assert config.passphrase == Network.PUBLIC_NETWORK_PASSPHRASE
        assert config.horizon_url == "https://horizon.stellar.org"
        assert config.explorer_link("abc") == "https://viewer.eurmtl.me/transaction/abc"
        assert config.airdrop.account == \
            "GCUBKDGH4PG6LN43XNZT3FYQBHMAJ4DPPXJ46YDAKAQDUJY3QRPMDROP"
        assert config.rewards.account == \
            "GDXOPYVGCPSBI3DQ5TCSQHG2IZIJOWR5RBO5A75IJL5BH3UJ7AVMHELP"
        assert config.airdrop.reclaim_after == timedelta(days=90)
        assert config.valid_for == timedelta(hours=72)

    def test_what_the_documents_do_not_fix_is_a_named_placeholder_warning(self):
        _, problems = check_payouts(SHIPPED)
        assert problems and all(p.severity == "warning" for p in problems)
        messages = [p.message for p in problems]
        assert any("airdrop.tokens[0].amount is the placeholder SET_AIRDROP_EURMTL_AMOUNT"
                   in m for m in messages)
        assert any("rewards.pool.amount is the placeholder SET_REWARDS_MONTHLY_POOL_EURMTL"
                   in m for m in messages)

    def test_nothing_is_paid_until_the_placeholders_are_set(self):
        config = load_payouts(SHIPPED)
        with pytest.raises(ContentError) as raised:
            config.require("airdrop")
        assert all(p.message.startswith("airdrop.") for p in raised.value.problems)
        assert any("SET_AIRDROP_STARTING_XLM" in p.message for p in raised.value.problems)
        with pytest.raises(ContentError, match="SET_REWARDS_MONTHLY_POOL_EURMTL"):
            config.require("rewards")

    def test_set_values_make_it_ready(self, tmp_path):
        text = SHIPPED.read_text(encoding="utf-8")
        for name, value in (("SET_AIRDROP_STARTING_XLM", "5"), ("SET_AIRDROP_EURMTL_AMOUNT", "10"),
                            ("SET_AIRDROP_USDM_AMOUNT", "2.5"),
                            ("SET_AIRDROP_MAX_XLM_PER_REQUEST", "5"),
                            ("SET_AIRDROP_MAX_EURMTL_PER_REQUEST", "10"),
                            ("SET_AIRDROP_MAX_USDM_PER_REQUEST", "5"),
                            ("SET_AIRDROP_DAILY_XLM", "100"), ("SET_AIRDROP_DAILY_EURMTL", "200"),
                            ("SET_AIRDROP_DAILY_USDM", "100"),
                            ("SET_REWARDS_MONTHLY_POOL_EURMTL", "300")):
            text = text.replace(name, value)
        path = tmp_path / "payouts.yaml"
        path.write_text(text, encoding="utf-8")
        config, problems = check_payouts(path)
        assert problems == []
        config.require("airdrop")
        config.require("rewards")
        assert [(t.asset.code, t.amount) for t in config.airdrop.tokens] == [
            ("EURMTL", Decimal(10)), ("USDM", Decimal("2.5"))]
        assert config.airdrop.per_day[EURMTL] == Decimal(200)
        assert config.airdrop.per_day[XLM] == Decimal(100)
        assert config.rewards.pool.amount == Decimal(300)


class TestMistakesAreReportedAtTheirLine:
    def test_a_valid_file_has_no_problems(self, tmp_path):
        assert problems_of(tmp_path, airdrop()) == []

    def test_an_account_that_is_not_a_public_key(self, tmp_path):
        assert problems_of(tmp_path, airdrop(account="GABC")) == [
            "3: airdrop.account must be a Stellar public key (G..., 56 characters), "
            "not 'GABC'"]

    def test_a_secret_key_in_place_of_the_account(self, tmp_path):
        secret = Keypair.random().secret
        [problem] = problems_of(tmp_path, airdrop(account=secret))
        assert problem.startswith("3: airdrop.account must be a Stellar public key")

    def test_a_memo_longer_than_stellar_allows(self, tmp_path):
        assert problems_of(tmp_path, airdrop(memo="Эйрдроп MTL Support для новичков")) == [
            "4: airdrop.memo is 50 bytes: a Stellar text memo holds 28"]

    def test_an_amount_finer_than_a_stroop(self, tmp_path):
        text = airdrop().replace("amount: 10", "amount: 0.12345678")
        assert problems_of(tmp_path, text) == [
            "7: airdrop.tokens[0].amount: 0.12345678: Stellar amounts have at most 7 "
            "decimal places"]

    def test_a_starting_balance_too_small_to_hold_the_trustlines(self, tmp_path):
        assert problems_of(tmp_path, airdrop(starting_balance="1")) == [
            "5: airdrop.starting_balance 1 XLM is below the 1.5 XLM a new account needs to "
            "hold its 1 trustlines"]

    def test_an_issuer_that_is_not_an_account(self, tmp_path):
        text = airdrop().replace(ISSUER, "MONTELIBERO")
        assert problems_of(tmp_path, text) == [
            "7: airdrop.tokens[0]: issuer 'MONTELIBERO' of EURMTL is not a Stellar public "
            "key (G..., 56 characters)"]

    def test_a_package_over_the_per_request_limit(self, tmp_path):
        text = airdrop("  limits:\n    per_request: {EURMTL: 5}\n")
        assert problems_of(tmp_path, text) == [
            "8: airdrop: one request gets 10 EURMTL, more than limits.per_request 5"]

    def test_a_limit_on_an_asset_the_airdrop_does_not_pay(self, tmp_path):
        text = airdrop("  limits:\n    per_day: {MTL: 5}\n")
        assert problems_of(tmp_path, text) == [
            "9: unknown key airdrop.limits.per_day.MTL (expected one of: EURMTL, XLM)"]

    def test_a_misspelt_key(self, tmp_path):
        assert problems_of(tmp_path, airdrop("  token:\n    - x\n")) == [
            "8: unknown key airdrop.token (expected one of: account, bot_signing_max_balance, "
            "limits, memo, reclaim_after_days, starting_balance, tokens)"]

    def test_an_unknown_network(self, tmp_path):
        assert problems_of(tmp_path, airdrop().replace("testnet", "mainnet")) == [
            "1: network must be one of public, testnet, not 'mainnet'"]

    def test_a_yaml_syntax_error(self, tmp_path):
        assert problems_of(tmp_path, airdrop().replace("amount: 10}", "amount: 10")) == [
            "7: YAML syntax error: a { mapping opens here and never closes"]

    def test_a_placeholder_is_a_warning_not_an_error(self, tmp_path):
        [problem] = check_payouts(_write(tmp_path, airdrop(starting_balance="SET_XLM")))[1]
        assert (problem.line, problem.severity) == (5, "warning")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "payouts.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_navigator_check_reports_payouts_problems_and_fails(tmp_path, cli_env):
    path = _write(tmp_path, airdrop(account="GABC"))
    result = subprocess.run([sys.executable, "-m", "navigator", "check", "--payouts",
                             str(path)], capture_output=True, text=True, cwd=ROOT,
                            env=cli_env, timeout=120)
    assert result.returncode == 1
    assert f"{path}:3: airdrop.account must be a Stellar public key" in result.stdout
    assert f"articles, {path}: 1 errors" in result.stdout
