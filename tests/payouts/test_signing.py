"""Signing stays with people: SEP-7 links, the community's signing service, and, for a
dedicated low-balance account only, the bot's own key, which never shows anywhere."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from stellar_sdk import Keypair, Network, TransactionEnvelope

from navigator.events import UserRef
from navigator.payouts.airdrop import build_airdrop
from navigator.payouts.building import result_json
from navigator.payouts.config import load_payouts
from navigator.payouts.horizon import HorizonClient
from navigator.payouts.ledger import PayoutTransaction
from navigator.payouts.signing import (
    BotKey,
    EurmtlSigningService,
    SigningRefused,
    SigningServiceError,
    sep7_link,
)
from navigator.store.models import OutboxMessage
from navigator.texts import Texts
from tests.conftest import ROOT
from tests.payouts.fakehorizon import FakeHorizon
from tests.payouts.helpers import (
    EURMTL,
    NOW,
    USDM,
    approve_all,
    outbox_texts,
    paying_account,
    request_airdrop,
    statuses,
    ticket_statuses,
    write_config,
)

ANNA = UserRef(1001, "Анна", "anna_m", "ru")
BORIS = UserRef(1002, "Борис", None, "ru")
ZONE = ZoneInfo("Europe/Podgorica")
TOKEN = "eurmtl-api-token-for-tests"


class TestSep7:
    def test_a_public_network_link_carries_just_the_transaction(self):
        link = sep7_link("AAAA+/==", Network.PUBLIC_NETWORK_PASSPHRASE)
        assert link == "web+stellar:tx?xdr=AAAA%2B%2F%3D%3D"

    def test_another_network_is_named_and_the_message_kept_short(self):
        link = sep7_link("AAAA", Network.TESTNET_NETWORK_PASSPHRASE, "эйрдроп " * 100)
        query = parse_qs(urlparse(link).query)
        assert query["network_passphrase"] == [Network.TESTNET_NETWORK_PASSPHRASE]
        assert len(query["msg"][0]) == 300


class FakeSigningService:
    """eurmtl.me's /remote/add_transaction as routers/remote.py implements it: a Bearer
    token, JSON tx_body and tx_description (5 characters at least), the XDR read as a
    public-network transaction, 201 with its hash."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/remote/add_transaction", self.add_transaction)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def add_transaction(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"message": "Unauthorized"}, status=401)
        data = await request.json()
        if not data.get("tx_body") or not data.get("tx_description"):
            return web.json_response({"message": "Missing tx_body or tx_description"},
                                     status=400)
        if len(data["tx_description"]) < 5:
            return web.json_response({"message": "Description too short"}, status=400)
        try:
            envelope = TransactionEnvelope.from_xdr(data["tx_body"],
                                                    Network.PUBLIC_NETWORK_PASSPHRASE)
        except Exception:
            return web.json_response({"message": "BAD xdr. Can`t load"}, status=400)
        self.received.append(data)
        return web.json_response({"message": "Transaction added successfully",
                                  "hash": envelope.hash_hex()}, status=201)


@pytest.fixture
async def service():
    fake = FakeSigningService()
    await fake.start()
    yield fake
    await fake.runner.cleanup()


class TestTheSigningService:
    async def test_each_transaction_goes_to_the_signers_page(self, desk, network, service,
                                                             tmp_path):
        request_airdrop(desk, ANNA, network.add_account(tokens={EURMTL: "0", USDM: "0"}))
        approve_all(desk.store)
        config = write_config(tmp_path / "payouts.yaml", paying_account(network),
                              network="public")
        async with HorizonClient(network.url, retries=0) as client:
            _, result = await build_airdrop(
                desk.store, client, load_payouts(config), Texts(), NOW, ZONE, tmp_path / "o",
                service=EurmtlSigningService(service.url, TOKEN))
        [tx] = result.transactions
        [sent] = service.received
        assert sent["tx_body"] == tx.xdr and "batch #1, 1/1" in sent["tx_description"]
        assert result.signing_urls == {tx.hash: f"{service.url}/sign_tools/{tx.hash}"}
        assert result.notes == []
        with desk.store.transaction() as repo:
            stored = repo.session.get(PayoutTransaction, tx.hash)
            assert stored.signing_url == f"{service.url}/sign_tools/{tx.hash}"

    async def test_a_testnet_batch_gets_another_hash_there_and_it_is_said(
            self, desk, network, service, tmp_path):
        request_airdrop(desk, ANNA, network.add_account(tokens={EURMTL: "0", USDM: "0"}))
        approve_all(desk.store)
        config = write_config(tmp_path / "payouts.yaml", paying_account(network))
        async with HorizonClient(network.url, retries=0) as client:
            _, result = await build_airdrop(
                desk.store, client, load_payouts(config), Texts(), NOW, ZONE, tmp_path / "o",
                service=EurmtlSigningService(service.url, TOKEN))
        assert "is it on the same network?" in result.notes[0]

    async def test_a_wrong_token_is_reported_and_the_batch_stands(self, service):
        with pytest.raises(SigningServiceError, match="HTTP 401: Unauthorized"):
            await EurmtlSigningService(service.url, "wrong").publish("AAAA", "эйрдроп")

    async def test_its_errors_are_passed_on(self, service):
        with pytest.raises(SigningServiceError, match="Description too short"):
            await EurmtlSigningService(service.url, TOKEN).publish("AAAA", "abc")


class TestTheBotsOwnKey:
    def secret_file(self, tmp_path: Path, key: Keypair) -> Path:
        path = tmp_path / "airdrop.secret"
        path.write_text(key.secret + "\n", encoding="ascii")
        return path

    def config(self, tmp_path: Path, source: str, cap: str = "100000") -> Path:
        return write_config(tmp_path / "payouts.yaml", source, extra_airdrop=(
            f"  bot_signing_max_balance: {{XLM: {cap}, EURMTL: {cap}, USDM: {cap}}}\n"))

    async def test_it_signs_submits_and_the_requests_are_paid_at_once(
            self, desk, network, tmp_path, caplog):
        caplog.set_level(logging.DEBUG)
        key = Keypair.random()
        for user in (ANNA, BORIS):
            request_airdrop(desk, user, network.add_account(tokens={EURMTL: "0", USDM: "0"}))
        approve_all(desk.store)
        config = self.config(tmp_path, paying_account(network, key, xlm="200",
                                                      eurmtl="100", usdm="100"))
        bot_key = BotKey.from_file(self.secret_file(tmp_path, key))
        async with HorizonClient(network.url, retries=0) as client:
            _, result = await build_airdrop(desk.store, client, load_payouts(config), Texts(),
                                            NOW, ZONE, tmp_path / "out", bot_key=bot_key)
        [tx] = result.transactions
        [submitted] = network.submitted
        envelope = TransactionEnvelope.from_xdr(submitted, Network.TESTNET_NETWORK_PASSPHRASE)
        assert envelope.hash_hex() == tx.hash and len(envelope.signatures) == 1
        assert statuses(desk.store) == ["paid", "paid"]
        assert ticket_statuses(desk.store) == ["resolved", "resolved"]
        assert "Эйрдроп по заявке №1 отправлен" in outbox_texts(desk.store, ANNA.id)[-1]

        secret = key.secret
        assert secret not in caplog.text
        assert secret not in repr(bot_key) and secret not in str(bot_key)
        assert secret not in json.dumps(result_json(result, Texts()), ensure_ascii=False)
        for path in (tmp_path / "out").iterdir():
            assert secret not in path.read_text(encoding="utf-8")
        with desk.store.transaction() as repo:
            payloads = [json.dumps(r.payload, ensure_ascii=False)
                        for r in repo.session.query(OutboxMessage)]
        assert not [p for p in payloads if secret in p], "never in a chat"
        database = sqlite3.connect(desk.store.engine.url.database)
        assert not [line for line in database.iterdump() if secret in line]
        database.close()

    async def test_not_for_an_account_that_holds_more_than_a_little(self, desk, network,
                                                                    tmp_path):
        key = Keypair.random()
        request_airdrop(desk, ANNA, network.add_account(tokens={EURMTL: "0", USDM: "0"}))
        approve_all(desk.store)
        config = self.config(tmp_path, paying_account(network, key, eurmtl="5000"), cap="1000")
        async with HorizonClient(network.url, retries=0) as client:
            with pytest.raises(SigningRefused, match="holds 5000 EURMTL, more than "
                                                     "bot_signing_max_balance 1000"):
                await build_airdrop(desk.store, client, load_payouts(config), Texts(), NOW,
                                    ZONE, tmp_path / "out",
                                    bot_key=BotKey.from_file(self.secret_file(tmp_path, key)))
        assert statuses(desk.store) == ["approved"] and network.submitted == []

    async def test_not_with_another_accounts_key(self, desk, network, tmp_path):
        request_airdrop(desk, ANNA, network.add_account(tokens={EURMTL: "0", USDM: "0"}))
        approve_all(desk.store)
        config = self.config(tmp_path, paying_account(network))
        stranger = BotKey.from_file(self.secret_file(tmp_path, Keypair.random()))
        async with HorizonClient(network.url, retries=0) as client:
            with pytest.raises(SigningRefused, match="not the airdrop account's"):
                await build_airdrop(desk.store, client, load_payouts(config), Texts(), NOW,
                                    ZONE, tmp_path / "out", bot_key=stranger)

    async def test_not_without_a_cap_on_the_accounts_balance(self, desk, network, tmp_path):
        key = Keypair.random()
        request_airdrop(desk, ANNA, network.add_account(tokens={EURMTL: "0", USDM: "0"}))
        approve_all(desk.store)
        config = write_config(tmp_path / "payouts.yaml", paying_account(network, key))
        async with HorizonClient(network.url, retries=0) as client:
            with pytest.raises(SigningRefused, match="bot_signing_max_balance is not set"):
                await build_airdrop(desk.store, client, load_payouts(config), Texts(), NOW,
                                    ZONE, tmp_path / "out",
                                    bot_key=BotKey.from_file(self.secret_file(tmp_path, key)))

    def test_a_broken_secret_file_is_named_but_never_quoted(self, tmp_path):
        almost = Keypair.random().secret[:-1] + "A"
        path = tmp_path / "airdrop.secret"
        path.write_text(almost, encoding="ascii")
        with pytest.raises(SigningRefused) as refused:
            BotKey.from_file(path)
        assert str(path) in str(refused.value) and almost not in str(refused.value)
        with pytest.raises(SigningRefused, match="cannot read it"):
            BotKey.from_file(tmp_path / "missing.secret")

    def test_the_command_line_never_prints_it_even_when_debugging(self, desk, tmp_path,
                                                                 cli_env, database_url):
        network = FakeHorizon()
        key = Keypair.random()
        request_airdrop(desk, ANNA, network.add_account(tokens={EURMTL: "0", USDM: "0"}))
        approve_all(desk.store)
        config = self.config(tmp_path, paying_account(network, key, xlm="200", eurmtl="100",
                                                      usdm="100"))
        with network.running():
            result = subprocess.run(
                [sys.executable, "-m", "navigator", "airdrop", "build", "--submit", "--json",
                 "--out", str(tmp_path / "out")],
                capture_output=True, text=True, cwd=ROOT, timeout=120, env={
                    **cli_env, "NAVIGATOR_DATABASE_URL": database_url,
                    "NAVIGATOR_PAYOUTS_FILE": str(config),
                    "NAVIGATOR_HORIZON_URL": network.url, "NAVIGATOR_LOG_LEVEL": "DEBUG",
                    "NAVIGATOR_PAYOUTS_SECRET_FILE": str(self.secret_file(tmp_path, key))})
        assert result.returncode == 0, result.stderr
        assert key.secret not in result.stdout + result.stderr
        assert json.loads(result.stdout)["batch"] == 1
        assert statuses(desk.store) == ["paid"]
