"""Payouts in the running bot (`navigator run`) against the fake Bot API and a fake
Horizon: the approve button, `/airdrop build` in the agents' chat posting the batch and
its unsigned transactions as files, and the periodic check telling the user once the
network confirms the payment."""

from __future__ import annotations

import pytest
from stellar_sdk import Network, TransactionEnvelope

from navigator.ratelimit import Limit, Limits
from navigator.store import Store
from navigator.store.models import Ticket
from tests.payouts.fakehorizon import FakeHorizon
from tests.payouts.helpers import EURMTL, USDM, paying_account, write_config

from .fakebot import FakeTelegram, contains

pytestmark = pytest.mark.slow


async def test_an_airdrop_from_the_approve_button_to_the_users_confirmation(
        fake_telegram: FakeTelegram, bot_settings, start_bot, database_url, tmp_path) -> None:
    network = FakeHorizon()
    await network.start()
    boris_account = network.add_account(xlm="3", tokens={EURMTL: "0", USDM: "0"})
    config = write_config(tmp_path / "payouts.yaml", paying_account(network))
    boris = fake_telegram.add_user("Борис")
    oleg = fake_telegram.add_user("Олег", username="oleg_iv")
    agents = fake_telegram.add_supergroup("MTL Support agents", forum=False, members=[oleg])
    settings = bot_settings(agents_chat_id=agents.id, payouts_file=config,
                            horizon_url=network.url, payouts_check_minutes=0.02)
    try:
        async with start_bot(settings, limits=Limits(group=Limit(10.0))):
            await fake_telegram.user_sends(boris, "/start")
            menu = await fake_telegram.wait_for("sendMessage", chat_id=boris)
            airdrop = next(b["callback_data"] for row in
                           menu.params["reply_markup"]["inline_keyboard"] for b in row
                           if "Эйрдроп" in b["text"])
            await fake_telegram.user_presses(boris, menu.result, airdrop)
            await fake_telegram.wait_for("sendMessage", chat_id=boris,
                                         text=contains("публичный адрес"))
            await fake_telegram.user_sends(boris, boris_account)
            card = await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                                text=contains("Заявка №1"))
            await fake_telegram.agent_says(agents, oleg, "/myname Олег")
            await fake_telegram.wait_for("sendMessage", chat_id=agents, text=contains("«Олег»"))
            await fake_telegram.user_presses(oleg, card.result, "approve|1")
            await fake_telegram.wait_for("sendMessage", chat_id=boris,
                                         text=contains("одобрена"))

            await fake_telegram.agent_says(agents, oleg, "/airdrop build")
            await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                         text=contains("Собираю пакет"))
            await fake_telegram.wait_for("sendMessage", chat_id=agents, timeout=20,
                                         text=contains("Пакет №1"))
            summary = await fake_telegram.wait_for("sendDocument", chat_id=agents)
            transaction = await fake_telegram.wait_for("sendDocument", chat_id=agents)
            assert summary.params["document"].filename == "batch-1.txt"
            upload = transaction.params["document"]
            tx_hash = upload.filename.removesuffix(".xdr")
            xdr = upload.data.decode("ascii").strip()
            envelope = TransactionEnvelope.from_xdr(xdr, Network.TESTNET_NETWORK_PASSPHRASE)
            assert envelope.hash_hex() == tx_hash and envelope.signatures == []
            assert "Транзакция 1/1" in transaction.params["caption"]

            network.succeed(tx_hash, xdr)  # the signers signed and submitted it
            paid = await fake_telegram.wait_for("sendMessage", chat_id=boris, timeout=20,
                                                text=contains(tx_hash))
            assert "10 EURMTL" in paid.params["text"]
            await fake_telegram.wait_for("sendMessage", chat_id=agents,
                                         text=contains("оплачены и закрыты заявки №1"))
    finally:
        await network.stop()
    store = Store(database_url)
    with store.transaction() as repo:
        assert repo.session.get_one(Ticket, 1).status == "resolved"
    store.close()
