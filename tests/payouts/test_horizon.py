"""The Horizon client against the fake Horizon: what it reads of accounts and
transactions, and that an outage is never mistaken for a missing account."""

from __future__ import annotations

from decimal import Decimal

import pytest
from stellar_sdk import Account, Keypair, Network, TransactionBuilder

from navigator.payouts.assets import XLM, Asset
from navigator.payouts.horizon import HorizonClient, HorizonUnavailable, fetch_accounts

EURMTL = Asset("EURMTL", Keypair.random().public_key)
USDM = Asset("USDM", Keypair.random().public_key)


def payment(source: str, sequence: int, destination: str) -> TransactionBuilder:
    return (TransactionBuilder(Account(source, sequence), Network.TESTNET_NETWORK_PASSPHRASE,
                               base_fee=100)
            .append_payment_op(destination, EURMTL.to_sdk(), "10")
            .append_create_account_op(Keypair.random().public_key, "5")
            .set_timeout(600))


class TestAccounts:
    async def test_an_account_with_its_balances_trustlines_and_reserve(self, horizon):
        network, client = horizon
        account_id = network.add_account(xlm="12.5", tokens={EURMTL: "3", USDM: "0"},
                                         limits={USDM: Decimal(100)}, unauthorized={EURMTL})
        account = await client.account(account_id)
        assert account.id == account_id and account.sequence == 1_000_000_000_000
        assert account.balances[XLM].amount == Decimal("12.5")
        assert account.minimum_balance() == Decimal(2)  # 2 base reserves + 2 trustlines
        assert account.spendable(XLM) == Decimal("10.5")
        assert account.can_receive(USDM, Decimal(100)) and \
            not account.can_receive(USDM, Decimal("100.0000001"))
        assert not account.can_receive(EURMTL, Decimal(1)), "the issuer has not authorized it"
        assert not account.can_receive(Asset("MTL", EURMTL.issuer), Decimal(1))
        assert account.can_receive(XLM, Decimal(1000))

    async def test_a_missing_account_is_none(self, horizon):
        _, client = horizon
        assert await client.account(Keypair.random().public_key) is None

    async def test_an_outage_is_unavailable_never_missing(self, horizon):
        network, client = horizon
        network.unavailable = "down"
        with pytest.raises(HorizonUnavailable, match="HTTP 503"):
            await client.account(Keypair.random().public_key)

    async def test_a_transient_failure_is_retried(self, horizon):
        network, _ = horizon
        network.unavailable = "rate_limited"
        async with HorizonClient(network.url, retries=1) as patient:
            with pytest.raises(HorizonUnavailable, match="HTTP 429"):
                await patient.account(Keypair.random().public_key)
        assert len(network.requests) == 2

    async def test_many_accounts_at_once_and_the_first_outage_stops_them(self, horizon):
        network, client = horizon
        known = [network.add_account() for _ in range(20)]
        unknown = Keypair.random().public_key
        found = await fetch_accounts(client, [*known, unknown, known[0]])
        assert set(found) == {*known, unknown} and found[unknown] is None
        network.unavailable = "down"
        with pytest.raises(HorizonUnavailable):
            await fetch_accounts(client, known)

    async def test_nothing_listening_is_unavailable(self):
        async with HorizonClient("http://127.0.0.1:9", retries=0) as client:
            with pytest.raises(HorizonUnavailable, match="Cannot connect"):
                await client.account(Keypair.random().public_key)


class TestTransactions:
    async def test_fees_the_network_charges(self, horizon):
        network, client = horizon
        network.fee_p95 = 5000
        assert await client.fee_charged() == 5000

    async def test_not_yet_in_a_ledger_is_none(self, horizon):
        _, client = horizon
        assert await client.transaction("ab" * 32) is None

    async def test_a_successful_one(self, horizon):
        network, client = horizon
        tx = payment(Keypair.random().public_key, 7, Keypair.random().public_key).build()
        network.succeed(tx.hash_hex(), tx.to_xdr())
        outcome = await client.transaction(tx.hash_hex())
        assert (outcome.hash, outcome.successful, outcome.ledger) == (
            tx.hash_hex(), True, network.ledger)

    async def test_a_failed_one_with_its_result_codes(self, horizon):
        network, client = horizon
        tx = payment(Keypair.random().public_key, 7, Keypair.random().public_key).build()
        network.fail(tx.hash_hex(), tx.to_xdr(), op_codes={0: "op_no_trust"})
        outcome = await client.transaction(tx.hash_hex())
        assert not outcome.successful
        assert outcome.result_codes == ("tx_failed", ("op_no_trust", "op_success"))
        assert outcome.describe() == "tx_failed (#1 op_no_trust)"

    async def test_submitting_signed_and_unsigned(self, horizon):
        network, client = horizon
        key = Keypair.random()
        network.add_account(key.public_key, sequence=41)
        tx = payment(key.public_key, 41, network.add_account(tokens={EURMTL: "0"})).build()
        unsigned = await client.submit(tx.to_xdr())
        assert (unsigned.successful, unsigned.result_codes) == (False, ("tx_bad_auth", ()))
        tx.sign(key)
        signed = await client.submit(tx.to_xdr())
        assert signed.successful and signed.hash == tx.hash_hex()
        assert network.accounts[key.public_key].sequence == 42
        assert (await client.transaction(tx.hash_hex())).successful

    async def test_a_submission_without_an_answer_is_unavailable(self, horizon):
        network, client = horizon
        network.unavailable = "down"
        with pytest.raises(HorizonUnavailable, match="outcome is unknown"):
            await client.submit("AAAA")
