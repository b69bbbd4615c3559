"""The airdrop desk in the agents' chat: the card's approve button and /approve instead of
«Выполнено», /myaccount, `/airdrop build|status` posting the batch and its files, and the
periodic check of submitted batches in the running bot."""

from __future__ import annotations

from pathlib import Path

import pytest
from stellar_sdk import Keypair, Network, TransactionEnvelope

from navigator.events import (
    AgentButtonPressed,
    AgentsDocument,
    AgentsText,
    NotifyAgents,
    SendText,
    UserRef,
)
from navigator.outbox import Outbox, enqueue, reply_of
from navigator.payouts.desk import PayoutsDesk
from navigator.payouts.horizon import HorizonClient
from navigator.payouts.ledger import AgentPayoutAccount, PayoutTransaction
from navigator.render import html_to_plain
from navigator.settings import Settings
from navigator.store.models import OutboxMessage
from tests.helpers import agent_says, press, say, to_chat
from tests.payouts.helpers import (
    EURMTL,
    OLGA,
    USDM,
    paying_account,
    request_airdrop,
    statuses,
    ticket_statuses,
    write_config,
)

ANNA = UserRef(1001, "Анна", "anna_m", "ru")  # her account does not exist yet
BORIS = UserRef(1002, "Борис", None, "ru")  # trusts both tokens


def card_of(replies) -> NotifyAgents:
    [card] = [r for r in replies if isinstance(r, NotifyAgents) and r.buttons]
    return card


def posted(store) -> list:
    """What the agents' chat is to get, in order (from the outbox)."""
    with store.transaction() as repo:
        rows = repo.session.query(OutboxMessage).order_by(OutboxMessage.id).all()
        return [reply_of(row) for row in rows if row.lane == "agents"]


def payouts_desk(desk, tmp_path: Path, config: Path, url: str) -> PayoutsDesk:
    settings = Settings(payouts_file=config, horizon_url=url, data_dir=tmp_path / "data")
    return PayoutsDesk(settings, desk.store, desk.texts,
                       horizon=lambda address: HorizonClient(address, retries=0))


class TestTheCard:
    def test_an_airdrop_card_offers_approval_instead_of_done(self, desk):
        menu = say(desk, ANNA, "/start")
        press(desk, ANNA, menu, "Эйрдроп")
        card = card_of(say(desk, ANNA, Keypair.random().public_key))
        assert [b.data for b in card.buttons] == ["take|1", "approve|1", "refuse|1"]
        assert "Одобрить выплату" in card.buttons[1].label

    def test_the_approve_button_puts_the_request_in_the_next_batch(self, desk):
        request_airdrop(desk, ANNA, Keypair.random().public_key)
        replies = desk.handle(AgentButtonPressed(OLGA, "approve|1"))
        [to_anna] = [r for r in replies if isinstance(r, SendText)]
        assert "Заявка №1 на эйрдроп одобрена" in to_anna.text
        assert "Ольга: заявка №1 одобрена к выплате" in to_chat(replies)
        assert statuses(desk.store) == ["approved"]
        assert ticket_statuses(desk.store) == ["waiting_user"]

    def test_approve_by_command_naming_the_ticket(self, desk):
        request_airdrop(desk, ANNA, Keypair.random().public_key)
        agent_says(desk, OLGA, "/approve 1")
        assert statuses(desk.store) == ["approved"]

    def test_done_on_an_airdrop_request_points_to_approval_and_changes_nothing(self, desk):
        request_airdrop(desk, ANNA, Keypair.random().public_key)
        replies = agent_says(desk, OLGA, "/done", ticket=1)
        assert "не отмечают выполненной, а одобряют к выплате (/approve" in to_chat(replies)
        assert not [r for r in replies if isinstance(r, SendText)]
        assert ticket_statuses(desk.store) == ["open"] and statuses(desk.store) == []

    def test_approve_on_a_question_is_refused(self, desk):
        say(desk, ANNA, "/human")
        say(desk, ANNA, "Как открыть линию доверия?")
        replies = agent_says(desk, OLGA, "/approve", ticket=1)
        assert "не заявка на эйрдроп" in to_chat(replies)
        assert statuses(desk.store) == []


class TestMyAccount:
    def test_an_agent_registers_the_rewards_account(self, desk):
        account = Keypair.random().public_key
        replies = agent_says(desk, OLGA, f"/myaccount {account}")
        assert f"Ольга: вознаграждения будут приходить на {account}" in to_chat(replies)
        with desk.store.transaction() as repo:
            assert repo.session.get(AgentPayoutAccount, OLGA.id).account == account

    def test_a_secret_key_is_refused_and_not_stored(self, desk):
        # The secret guard takes it out before the desk sees it, and warns the agent.
        secret = Keypair.random().secret
        replies = agent_says(desk, OLGA, f"/myaccount {secret}")
        assert "в вашем сообщении был секретный ключ Stellar" in to_chat(replies)
        assert secret not in to_chat(replies)
        with desk.store.transaction() as repo:
            assert repo.session.get(AgentPayoutAccount, OLGA.id) is None


class TestAirdropInTheAgentsChat:
    @pytest.fixture
    def approved(self, desk, network, tmp_path):
        """Anna (no account yet) and Boris (trusts both tokens) were approved; the fake
        network (serving) knows the paying account."""
        boris = network.add_account(xlm="3", tokens={EURMTL: "0", USDM: "0"})
        config = write_config(tmp_path / "payouts.yaml", paying_account(network))
        request_airdrop(desk, ANNA, Keypair.random().public_key)
        request_airdrop(desk, BORIS, boris)
        agent_says(desk, OLGA, "/approve", ticket=1)
        agent_says(desk, OLGA, "/approve", ticket=2)
        return network, config

    def test_the_command_is_acknowledged_by_the_engine(self, desk):
        replies = agent_says(desk, OLGA, "/airdrop build")
        assert "Собираю пакет эйрдропа" in to_chat(replies)
        assert "/airdrop build — собрать пакет" in to_chat(agent_says(desk, OLGA,
                                                                     "/airdrop что"))

    async def test_build_posts_the_summary_and_each_unsigned_transaction(
            self, desk, approved, tmp_path):
        network, config = approved
        before = Outbox(desk.store).last_id()
        await payouts_desk(desk, tmp_path, config, network.url).run("build")
        post = [reply for _, reply in Outbox(desk.store).added_since(before)]
        message, summary, transaction = post
        assert isinstance(message, AgentsText)
        assert "Пакет №1 · эйрдроп: выплат 2, транзакций 1" in html_to_plain(message.text)
        assert isinstance(summary, AgentsDocument) and summary.file_name == "batch-1.txt"
        assert "web+stellar:tx?xdr=" in summary.content and "№1" in summary.content
        assert isinstance(transaction, AgentsDocument)
        with desk.store.transaction() as repo:
            [stored] = repo.session.query(PayoutTransaction).all()
        assert transaction.file_name == f"{stored.hash}.xdr"
        envelope = TransactionEnvelope.from_xdr(transaction.content.strip(),
                                                Network.TESTNET_NETWORK_PASSPHRASE)
        assert envelope.hash_hex() == stored.hash and envelope.signatures == []
        assert "Транзакция 1/1 · операций: 5" in transaction.caption
        assert statuses(desk.store) == ["in_batch", "in_batch"]
        assert (tmp_path / "data" / "payouts" / f"{stored.hash}.xdr").exists()

    async def test_horizon_down_is_said_in_the_chat_and_nothing_is_marked(
            self, desk, approved, tmp_path):
        network, config = approved
        network.unavailable = "down"
        replies = await payouts_desk(desk, tmp_path, config, network.url).run("build")
        assert "Horizon недоступен" in to_chat(replies) and "Ничего не изменено" in \
            to_chat(replies)
        assert replies[-1] == posted(desk.store)[-1]
        assert statuses(desk.store) == ["approved", "approved"]

    async def test_status_says_what_waits_for_signatures(self, desk, approved, tmp_path):
        network, config = approved
        work = payouts_desk(desk, tmp_path, config, network.url)
        await work.run("build")
        replies = await work.run("status")
        assert "Ждут подписей и отправки: пакет №1, транзакция 1 (2 заяв.)" in \
            to_chat(replies)


class TestThePeriodicCheck:
    async def test_nothing_pending_asks_horizon_nothing(self, desk, network, tmp_path):
        config = write_config(tmp_path / "payouts.yaml", paying_account(network))
        assert await payouts_desk(desk, tmp_path, config, network.url).check() == []
        assert network.requests == []

    async def test_a_confirmed_batch_is_paid_and_the_users_told(self, desk, network,
                                                                  tmp_path):
        boris = network.add_account(xlm="3", tokens={EURMTL: "0", USDM: "0"})
        config = write_config(tmp_path / "payouts.yaml", paying_account(network))
        request_airdrop(desk, BORIS, boris)
        agent_says(desk, OLGA, "/approve", ticket=1)
        work = payouts_desk(desk, tmp_path, config, network.url)
        await work.run("build")
        assert [s.status for s in await work.check()] == ["pending"]
        with desk.store.transaction() as repo:
            [tx] = repo.session.query(PayoutTransaction).all()
            tx_hash, xdr = tx.hash, tx.xdr
        network.succeed(tx_hash, xdr)
        assert [s.status for s in await work.check()] == ["success"]
        assert statuses(desk.store) == ["paid"] and ticket_statuses(desk.store) == ["resolved"]
        with desk.store.transaction() as repo:
            rows = repo.session.query(OutboxMessage).filter(
                OutboxMessage.user_id == BORIS.id).order_by(OutboxMessage.id).all()
            last = reply_of(rows[-1])
        assert f"https://stellar.expert/explorer/testnet/tx/{tx_hash}" in last.text


def test_a_document_survives_the_outbox(desk):
    document = AgentsDocument("abc.xdr", "AAAA\n", "Транзакция 1/1")
    with desk.store.transaction() as repo:
        [row_id] = enqueue(repo, [document])
    with desk.store.transaction() as repo:
        row = repo.session.get(OutboxMessage, row_id)
        assert (reply_of(row), row.lane) == (document, "agents")
