"""Agents' rewards: a month of the desk's work counted from the ticket log, the pool split
by the documented formula, and the unsigned batch that pays it, adding up exactly."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from stellar_sdk import Keypair, Network, TransactionEnvelope

from navigator.events import AgentRef, ButtonPressed, UserRef
from navigator.handling import Navigator
from navigator.payouts.approvals import approve, set_payout_account
from navigator.payouts.building import PayoutError
from navigator.payouts.config import load_payouts
from navigator.payouts.horizon import HorizonClient
from navigator.payouts.rewards import (
    Contribution,
    build_rewards,
    contributions,
    month_bounds,
    split_pool,
)
from navigator.store import Store
from navigator.texts import Texts
from tests.conftest import ROOT
from tests.helpers import agent_says, say
from tests.payouts.fakehorizon import FakeHorizon
from tests.payouts.helpers import EURMTL, paying_account, request_airdrop, write_config

ZONE = ZoneInfo("Europe/Podgorica")
OLGA = AgentRef(501, "Ольга Петрова", "olga_p")
MARKO = AgentRef(502, "Marko Vuković", "marko_v")
IRA = AgentRef(503, "Ирина Смирнова", "ira_s")
WEIGHTS = {"answered": Decimal(1), "solved": Decimal(2)}
OLGA_ACCOUNT, MARKO_ACCOUNT = Keypair.random().public_key, Keypair.random().public_key


@pytest.fixture
def november(database_url, shipped_flows, shipped_knowledge):
    """A month of the desk: Ольга answers and solves two questions (rated 5, and 4 after
    Марко's answer was rated 2), Марко also approves an airdrop, Ира (no payout account)
    solves one unrated; Ольга's October ticket does not count."""
    clock = [datetime(2026, 10, 20, 9, 0, tzinfo=UTC)]
    store = Store(database_url)
    desk = Navigator(store, shipped_flows, shipped_knowledge, None, clock=lambda: clock[0])

    def at(day: int, hour: int, minute: int = 0, month: int = 11) -> None:
        clock[0] = datetime(2026, month, day, hour, minute, tzinfo=UTC)

    def ask(user: UserRef, question: str) -> None:
        say(desk, user, "/human")
        say(desk, user, question)

    for agent, name in ((OLGA, "Ольга"), (MARKO, "Марко"), (IRA, "Ира")):
        agent_says(desk, agent, f"/myname {name}")
    with store.transaction() as repo:
        set_payout_account(repo, OLGA, OLGA_ACCOUNT, clock[0], Texts())
        set_payout_account(repo, MARKO, MARKO_ACCOUNT, clock[0], Texts())
    anna, boris = UserRef(1001, "Анна", None, "ru"), UserRef(1002, "Борис", None, "ru")
    vera, gleb = UserRef(1003, "Вера", None, "ru"), UserRef(1004, "Глеб", None, "ru")

    at(20, 9, month=10)
    ask(anna, "Где купить сим-карту в Баре?")  # ticket 1, October
    agent_says(desk, OLGA, "В любом киоске m:tel.", ticket=1)
    agent_says(desk, OLGA, "/resolve", ticket=1)
    desk.handle(ButtonPressed(anna, "rate|1|5"))

    at(2, 10)
    ask(anna, "Как открыть линию доверия к EURMTL?")  # ticket 2
    at(2, 10, 10)
    agent_says(desk, OLGA, "В кошельке: Добавить актив, EURMTL, эмитент GACK…", ticket=2)
    agent_says(desk, OLGA, "/resolve", ticket=2)
    desk.handle(ButtonPressed(anna, "rate|2|5"))

    at(3, 10)
    ask(boris, "Сколько стоит членство в Ассоциации?")  # ticket 3
    at(3, 10, 30)
    agent_says(desk, MARKO, "Бесплатно.", ticket=3)
    agent_says(desk, MARKO, "/resolve", ticket=3)
    desk.handle(ButtonPressed(boris, "rate|3|2"))  # back to the agents
    at(3, 12)
    agent_says(desk, OLGA, "Членство бесплатное, но нужны рекомендации.", ticket=3)
    agent_says(desk, OLGA, "/resolve", ticket=3)
    desk.handle(ButtonPressed(boris, "rate|3|4"))

    at(4, 9)
    request_airdrop(desk, vera, Keypair.random().public_key)  # ticket 4
    with store.transaction() as repo:
        approve(repo, 4, MARKO, clock[0], Texts())

    at(5, 18)
    ask(gleb, "Где расписание встреч?")  # ticket 5
    at(5, 18, 5)
    agent_says(desk, IRA, "В канале сообщества.", ticket=5)
    agent_says(desk, IRA, "/resolve", ticket=5)
    yield store
    store.close()


def november_contributions(store: Store) -> dict[str, Contribution]:
    start, end = month_bounds("2026-11", ZONE)
    with store.transaction() as repo:
        return {c.name: c for c in contributions(repo, start, end)}


class TestContribution:
    def test_each_agents_month_from_the_ticket_log(self, november):
        agents = november_contributions(november)
        assert sorted(agents) == ["Ира", "Марко", "Ольга"]
        olga, marko, ira = agents["Ольга"], agents["Марко"], agents["Ира"]
        assert (olga.answered, olga.solved, olga.ratings) == ({2, 3}, {2, 3}, [5, 4])
        assert (marko.answered, marko.solved, marko.ratings) == ({3}, {3, 4}, [2])
        assert (ira.answered, ira.solved, ira.ratings) == ({5}, {5}, [])
        assert olga.first_responses == [timedelta(minutes=10)]
        assert marko.first_responses == [timedelta(minutes=30)]
        assert (olga.account, marko.account, ira.account) == (OLGA_ACCOUNT, MARKO_ACCOUNT,
                                                              None)

    def test_points_follow_the_documented_formula(self, november):
        agents = november_contributions(november)
        assert agents["Ольга"].points(WEIGHTS) == Decimal("5.4")  # (2 + 2x2) x 4.5/5
        assert agents["Марко"].points(WEIGHTS) == 2  # (1 + 2x2) x 2/5
        assert agents["Ира"].points(WEIGHTS) == Decimal("2.4")  # (1 + 2x1) x 4/5 unrated

    def test_the_split_adds_up_to_the_pool_among_agents_with_an_account(self, november):
        agents = list(november_contributions(november).values())
        shares = split_pool(agents, Decimal(300), WEIGHTS)
        assert shares == {OLGA.id: Decimal("218.9189189"), MARKO.id: Decimal("81.0810811")}
        assert sum(shares.values()) == Decimal(300)

    def test_the_months_edges_are_the_desks_local_midnights(self):
        assert month_bounds("2026-11", ZONE) == (datetime(2026, 10, 31, 23, tzinfo=UTC),
                                                 datetime(2026, 11, 30, 23, tzinfo=UTC))
        assert month_bounds("2026-12", ZONE)[1] == datetime(2026, 12, 31, 23, tzinfo=UTC)
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_bounds("2026-13", ZONE)


def test_equal_points_round_to_the_stroop_and_the_remainder_goes_to_the_first():
    agents = [Contribution(agent_id, f"агент {agent_id}", {agent_id}, set(), [5], [],
                           Keypair.random().public_key) for agent_id in (3, 1, 2)]
    shares = split_pool(agents, Decimal(100), WEIGHTS)
    assert shares == {1: Decimal("33.3333334"), 2: Decimal("33.3333333"),
                      3: Decimal("33.3333333")}


def test_the_command_prints_the_table_with_pseudonyms_only(november, tmp_path, cli_env,
                                                           database_url):
    config = write_config(tmp_path / "payouts.yaml", Keypair.random().public_key)
    result = subprocess.run(
        [sys.executable, "-m", "navigator", "rewards", "--month", "2026-11"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**cli_env, "NAVIGATOR_DATABASE_URL": database_url,
             "NAVIGATOR_PAYOUTS_FILE": str(config)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    olga = next(line for line in lines if line.strip().startswith("Ольга"))
    assert olga.split()[1:7] == ["2", "2", "4.5", "(2)", "10", "мин"]
    assert "218.9189189" in olga
    assert "81.0810811" in next(line for line in lines if "Марко" in line)
    assert "left out of the split: Ира." in result.stdout
    assert "Pool 300 EURMTL: split among 2 agents, 300 in total." in result.stdout
    for name in ("Петрова", "Vuković", "Смирнова", "olga_p"):
        assert name not in result.stdout


async def test_the_batch_pays_the_split_and_adds_up_to_the_pool(november, tmp_path):
    network = FakeHorizon()
    await network.start()
    network.add_account(OLGA_ACCOUNT, tokens={EURMTL: "0"})
    network.add_account(MARKO_ACCOUNT)  # no EURMTL trustline: a claimable balance
    config = load_payouts(write_config(tmp_path / "payouts.yaml", paying_account(network)))
    now = datetime(2026, 12, 1, 10, tzinfo=UTC)
    async with HorizonClient(network.url, retries=0) as client:
        result, _, _ = await build_rewards(november, client, config, Texts(), "2026-11",
                                                now, ZONE, tmp_path / "out")
        [tx] = result.transactions
        envelope = TransactionEnvelope.from_xdr(tx.xdr, Network.TESTNET_NETWORK_PASSPHRASE)
        paid = [(type(op).__name__, op.asset.code, Decimal(op.amount))
                for op in envelope.transaction.operations]
        assert paid == [("Payment", "EURMTL", Decimal("218.9189189")),
                        ("CreateClaimableBalance", "EURMTL", Decimal("81.0810811"))]
        assert sum(amount for *_, amount in paid) == Decimal(300)
        assert envelope.transaction.memo.memo_text == b"MTL Support rewards"
        with pytest.raises(PayoutError, match="already in batch #1"):
            await build_rewards(november, client, config, Texts(), "2026-11", now, ZONE,
                                tmp_path / "again")
    await network.stop()
