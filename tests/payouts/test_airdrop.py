"""The newcomers' airdrop, from the request to the confirmation: approved requests become
unsigned transactions checked against the network, people sign them, and the bot sees
them land and tells everyone."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
from stellar_sdk import Keypair, Network, TransactionEnvelope

from navigator.events import UserRef
from navigator.payouts.airdrop import build_airdrop
from navigator.payouts.config import load_payouts
from navigator.payouts.confirmation import check_pending
from navigator.payouts.horizon import HorizonClient, HorizonUnavailable
from navigator.payouts.ledger import Ledger, PayoutBatch
from navigator.texts import Texts
from tests.conftest import ROOT
from tests.helpers import say
from tests.payouts.fakehorizon import FakeHorizon
from tests.payouts.helpers import (
    EURMTL,
    NOW,
    USDM,
    airdrop_tickets,
    approve_all,
    outbox_texts,
    paying_account,
    pending_hashes,
    request_airdrop,
    requests,
    statuses,
    ticket_statuses,
    write_config,
)

ANNA = UserRef(1001, "Анна", "anna_m", "ru")  # her account does not exist yet
BORIS = UserRef(1002, "Борис", None, "ru")  # trusts both tokens
VERA = UserRef(1003, "Vera", None, "en")  # trusts EURMTL, not USDM
ZONE = ZoneInfo("Europe/Podgorica")
EXPLORER = "https://stellar.expert/explorer/testnet/tx/"


def navigator_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "navigator", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


@pytest.fixture
def three_requests(desk, tmp_path):
    """Anna, Boris and Vera asked for the airdrop and Ольга approved all three; the fake
    network knows the paying account, Boris's and Vera's accounts, not Anna's."""
    network = FakeHorizon()
    accounts = {"anna": Keypair.random().public_key,
                "boris": network.add_account(xlm="3", tokens={EURMTL: "0", USDM: "0"}),
                "vera": network.add_account(xlm="2", tokens={EURMTL: "4.5"})}
    source = paying_account(network)
    config = write_config(tmp_path / "payouts.yaml", source)
    for user, name in ((ANNA, "anna"), (BORIS, "boris"), (VERA, "vera")):
        request_airdrop(desk, user, accounts[name])
    approve_all(desk.store)
    return network, accounts, source, config


def cli_environment(cli_env, database_url, config: Path, network: FakeHorizon) -> dict[str, str]:
    return {**cli_env, "NAVIGATOR_DATABASE_URL": database_url,
            "NAVIGATOR_PAYOUTS_FILE": str(config), "NAVIGATOR_HORIZON_URL": network.url}


def operations_of(envelope: TransactionEnvelope) -> list[tuple[str, str, str, str]]:
    """(operation, destination, asset code, amount) of each operation, as decoded."""
    result = []
    for op in envelope.transaction.operations:
        kind = type(op).__name__
        if kind == "CreateAccount":
            result.append((kind, op.destination, "XLM", op.starting_balance))
        elif kind == "Payment":
            result.append((kind, op.destination.account_id, op.asset.code, op.amount))
        else:
            result.append((kind, op.claimants[0].destination, op.asset.code, op.amount))
    return result


class TestTheConsoleScript:
    def test_three_requests_one_transaction_paid_confirmed_and_told(
            self, desk, three_requests, cli_env, database_url, tmp_path):
        network, accounts, source, config = three_requests
        out = tmp_path / "batch"
        with network.running():
            env = cli_environment(cli_env, database_url, config, network)
            built = navigator_cli("airdrop", "build", "--out", str(out), "--json", env=env)
            assert built.returncode == 0, built.stderr
            document = json.loads(built.stdout)
            [tx] = document["transactions"]
            assert document["batch"] == 1 and document["skipped"] == []
            assert tx["file"] == str(out / f"{tx['hash']}.xdr") and tx["operations"] == 7

            xdr = Path(tx["file"]).read_text(encoding="ascii").strip()
            # Decoded with the testnet passphrase, it hashes to its name: built for testnet.
            envelope = TransactionEnvelope.from_xdr(xdr, Network.TESTNET_NETWORK_PASSPHRASE)
            assert envelope.hash_hex() == tx["hash"]
            assert envelope.transaction.source.account_id == source
            assert envelope.signatures == [], "the bot holds no key: people sign"
            assert envelope.transaction.memo.memo_text == b"MTL Support airdrop"
            anna, boris, vera = accounts["anna"], accounts["boris"], accounts["vera"]
            assert operations_of(envelope) == [
                ("CreateAccount", anna, "XLM", "5"),
                ("CreateClaimableBalance", anna, "EURMTL", "10"),
                ("CreateClaimableBalance", anna, "USDM", "2.5"),
                ("Payment", boris, "EURMTL", "10"),
                ("Payment", boris, "USDM", "2.5"),
                ("Payment", vera, "EURMTL", "10"),
                ("CreateClaimableBalance", vera, "USDM", "2.5"),
            ]
            link = urlparse(tx["sep7"])
            assert (link.scheme, link.path) == ("web+stellar", "tx")
            query = parse_qs(link.query)
            assert query["xdr"] == [xdr]
            assert query["network_passphrase"] == [Network.TESTNET_NETWORK_PASSPHRASE]
            summary = (out / "batch-1.txt").read_text(encoding="utf-8")
            assert "создать счёт с 5 XLM; 10 EURMTL (claimable" in summary
            assert tx["hash"] in summary and tx["sep7"] in summary
            assert statuses(desk.store) == ["in_batch"] * 3

            network.succeed(tx["hash"], xdr)  # the signers signed and submitted it
            status = navigator_cli("airdrop", "status", env=env)
        assert status.returncode == 0, status.stderr
        assert "paid (3 requests)" in status.stdout
        assert statuses(desk.store) == ["paid"] * 3
        assert ticket_statuses(desk.store) == ["resolved"] * 3
        [to_anna] = outbox_texts(desk.store, ANNA.id, "send_text")[-1:]
        assert "создан ваш аккаунт, на нём 5 XLM" in to_anna
        assert "10 EURMTL — ждёт вас как «claimable balance»" in to_anna
        assert EXPLORER + tx["hash"] in to_anna and "от 1 до 5" in to_anna
        to_boris = outbox_texts(desk.store, BORIS.id, "send_text")[-1]
        assert "• 10 EURMTL\n• 2.5 USDM" in to_boris and "claimable" not in to_boris
        to_vera = outbox_texts(desk.store, VERA.id, "send_text")[-1]
        assert "• 10 EURMTL" in to_vera and "2.5 USDM: waiting for you as a claimable" in to_vera
        assert f"USDM: <code>{USDM.issuer}</code>" in to_vera
        agents = outbox_texts(desk.store, kind="agents_text")[-1]
        assert "пакета №1 прошла, оплачены и закрыты заявки №1, №2, №3" in agents

    def test_horizon_unavailable_stops_the_build_and_marks_nothing(
            self, desk, three_requests, cli_env, database_url, tmp_path):
        network, _, _, config = three_requests
        network.unavailable = "down"
        with network.running():
            env = cli_environment(cli_env, database_url, config, network)
            built = navigator_cli("airdrop", "build", "--out", str(tmp_path / "b"), env=env)
        assert built.returncode == 1
        assert "Horizon is unavailable" in built.stderr and "HTTP 503" in built.stderr
        assert "Nothing was changed" in built.stderr
        assert statuses(desk.store) == ["approved"] * 3
        assert not (tmp_path / "b").exists()
        with desk.store.transaction() as repo:
            assert repo.session.query(PayoutBatch).count() == 0

async def build(store, client, config_path, out: Path, now=NOW, **options):
    return await build_airdrop(store, client, load_payouts(config_path), Texts(), now, ZONE,
                               out, **options)


async def approved_requests(desk, network, tmp_path, users_accounts, **config):
    for user, account in users_accounts:
        request_airdrop(desk, user, account)
    approve_all(desk.store)
    return write_config(tmp_path / "payouts.yaml", paying_account(network), **config)


class TestBatches:
    async def test_250_approved_requests_become_3_transactions_of_at_most_100(
            self, desk, horizon, tmp_path):
        network, client = horizon
        one_token = f"    - {{code: EURMTL, issuer: {EURMTL.issuer}, amount: 10}}\n"
        airdrop_tickets(desk.store, [(UserRef(2000 + n, f"Новичок {n}", None, "ru"),
                                      network.add_account(tokens={EURMTL: "0"}))
                                     for n in range(250)])
        approve_all(desk.store)
        config = write_config(tmp_path / "payouts.yaml", paying_account(network),
                              tokens=one_token, per_day="{XLM: 10000, EURMTL: 10000}")
        _, result = await build(desk.store, client, config, tmp_path / "out")
        assert [tx.operations for tx in result.transactions] == [100, 100, 50]
        sequences = [tx.sequence for tx in result.transactions]
        assert sequences == [sequences[0], sequences[0] + 1, sequences[0] + 2]
        assert sequences[0] == network.accounts[result.spec.account].sequence + 1
        assert statuses(desk.store) == ["in_batch"] * 250
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
            [f"{tx.hash}.xdr" for tx in result.transactions] + ["batch-1.txt"])

    async def test_a_request_is_in_at_most_one_pending_batch(self, desk, horizon, tmp_path):
        network, client = horizon
        config = await approved_requests(desk, network, tmp_path, [
            (ANNA, network.add_account(tokens={EURMTL: "0", USDM: "0"}))])
        _, first = await build(desk.store, client, config, tmp_path / "1")
        _, second = await build(desk.store, client, config, tmp_path / "2")
        assert first.batch_id == 1 and second.batch_id is None and second.transactions == []
        assert len(pending_hashes(desk.store)) == 1

    async def test_an_expired_batch_is_replaced_by_the_next_build(self, desk, horizon,
                                                                   tmp_path):
        network, client = horizon
        account = network.add_account(tokens={EURMTL: "0", USDM: "0"})
        config = await approved_requests(desk, network, tmp_path, [(ANNA, account)])
        _, first = await build(desk.store, client, config, tmp_path / "1")
        later = NOW + timedelta(hours=25)  # the batch was valid 24 hours; nobody signed it
        settled, second = await build(desk.store, client, config, tmp_path / "2", now=later)
        assert [(s.hash, s.status) for s in settled] == [(first.transactions[0].hash,
                                                          "expired")]
        assert second.batch_id == 2
        with desk.store.transaction() as repo:
            old = Ledger(repo.session).batch(1)
            assert (old.status, old.replaced_by) == ("expired", 2)
        [request] = requests(desk.store)
        assert (request.status, request.transaction_hash) == ("in_batch",
                                                              second.transactions[0].hash)
        expired, posted = outbox_texts(desk.store, kind="agents_text")[-2:]
        assert "не была отправлена до конца срока" in expired
        assert "Пакет №2</b> · эйрдроп: выплат 1" in posted

    async def test_a_batch_within_its_time_bound_is_still_waiting(self, desk, horizon,
                                                                   tmp_path):
        network, client = horizon
        config = await approved_requests(desk, network, tmp_path, [
            (ANNA, network.add_account(tokens={EURMTL: "0", USDM: "0"}))])
        await build(desk.store, client, config, tmp_path / "1")
        [settlement] = await check_pending(desk.store, client, load_payouts(config),
                                           NOW + timedelta(hours=23), Texts())
        assert settlement.status == "pending" and statuses(desk.store) == ["in_batch"]

    async def test_a_failed_transaction_puts_its_requests_back_with_the_result_codes(
            self, desk, horizon, tmp_path):
        network, client = horizon
        boris = network.add_account(tokens={EURMTL: "0", USDM: "0"})
        config = await approved_requests(desk, network, tmp_path, [(BORIS, boris)])
        _, result = await build(desk.store, client, config, tmp_path / "1")
        [tx] = result.transactions
        # Boris removed his USDM trustline before the signers submitted it.
        network.fail(tx.hash, tx.xdr, op_codes={1: "op_no_trust"})
        [settlement] = await check_pending(desk.store, client, load_payouts(config),
                                           NOW + timedelta(hours=1), Texts())
        assert (settlement.status, settlement.detail) == ("failed",
                                                          "tx_failed (#2 op_no_trust)")
        [request] = requests(desk.store)
        assert (request.status, request.last_failure) == ("approved",
                                                          "tx_failed (#2 op_no_trust)")
        told = outbox_texts(desk.store, kind="agents_text")[-1]
        assert "не прошла: <code>tx_failed (#2 op_no_trust)</code>" in told
        assert "№1 снова одобрены" in told
        assert ticket_statuses(desk.store) == ["waiting_user"]
        del network.accounts[boris].balances[USDM]
        _, again = await build(desk.store, client, config, tmp_path / "2",
                               now=NOW + timedelta(hours=2))
        assert [o.kind for p in again.plan.planned for o in p.operations] == [
            "payment", "claimable"], "the next batch sends USDM as a claimable balance"

    async def test_a_paying_account_short_of_funds_builds_nothing_and_tells_the_agents(
            self, desk, horizon, tmp_path):
        network, client = horizon
        for user in (ANNA, BORIS):
            request_airdrop(desk, user, network.add_account(tokens={EURMTL: "0", USDM: "0"}))
        approve_all(desk.store)
        source = paying_account(network, eurmtl="15")
        config = write_config(tmp_path / "payouts.yaml", source)
        _, result = await build(desk.store, client, config, tmp_path / "out")
        assert result.batch_id is None and not (tmp_path / "out").exists()
        assert [(str(s.asset), s.needed, s.available) for s in result.plan.shortfalls] == [
            ("EURMTL", Decimal(20), Decimal(15))]
        assert statuses(desk.store) == ["approved"] * 2
        told = outbox_texts(desk.store, kind="agents_text")[-1]
        assert "EURMTL: нужно 20, доступно 15, не хватает 5" in told

    async def test_the_daily_limit_leaves_the_rest_for_tomorrow(self, desk, horizon,
                                                                tmp_path):
        network, client = horizon
        users = [(UserRef(3000 + n, f"Гость {n}", None, "ru"),
                  network.add_account(tokens={EURMTL: "0", USDM: "0"})) for n in range(3)]
        config = await approved_requests(desk, network, tmp_path, users,
                                         per_day="{XLM: 10000, EURMTL: 25, USDM: 10000}")
        _, result = await build(desk.store, client, config, tmp_path / "out")
        assert [s.reason for s in result.skipped] == ["daily_limit"]
        assert statuses(desk.store) == ["in_batch", "in_batch", "approved"]
        _, same_day = await build(desk.store, client, config, tmp_path / "again",
                                  now=NOW + timedelta(hours=1))
        assert [s.reason for s in same_day.skipped] == ["daily_limit"]
        _, next_day = await build(desk.store, client, config, tmp_path / "tomorrow",
                                  now=NOW + timedelta(days=1))
        assert next_day.batch_id is not None and next_day.skipped == []

    async def test_a_refused_or_withdrawn_request_is_not_paid(self, desk, horizon, tmp_path):
        network, client = horizon
        config = await approved_requests(desk, network, tmp_path, [
            (ANNA, network.add_account(tokens={EURMTL: "0", USDM: "0"})),
            (BORIS, network.add_account(tokens={EURMTL: "0", USDM: "0"}))])
        say(desk, BORIS, "/cancel")  # Boris withdraws his request
        _, result = await build(desk.store, client, config, tmp_path / "out")
        assert [(s.payout.label, s.reason) for s in result.skipped] == [("№2", "ticket_closed")]
        assert statuses(desk.store) == ["in_batch", "cancelled"]

    async def test_no_horizon_at_all_is_unavailable_not_missing_accounts(
            self, desk, horizon, tmp_path):
        network, _ = horizon
        config = await approved_requests(desk, network, tmp_path, [(ANNA, Keypair.random()
                                                                    .public_key)])
        async with HorizonClient("http://127.0.0.1:9", retries=0) as nowhere:
            with pytest.raises(HorizonUnavailable, match="Cannot connect"):
                await build(desk.store, nowhere, config, tmp_path / "out")
        assert statuses(desk.store) == ["approved"]

    async def test_rate_limited_horizon_is_unavailable_too(self, desk, horizon, tmp_path):
        network, client = horizon
        config = await approved_requests(desk, network, tmp_path, [
            (ANNA, network.add_account(tokens={EURMTL: "0", USDM: "0"}))])
        network.unavailable = "rate_limited"
        with pytest.raises(HorizonUnavailable, match="429"):
            await build(desk.store, client, config, tmp_path / "out")
        assert statuses(desk.store) == ["approved"]

