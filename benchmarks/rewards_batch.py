"""Agents' rewards on a desk's real ticket log: `navigator rewards --month M --build` on a
database (the desk simulation's, for one) against the tests' fake Horizon, and a check
that the unsigned batch pays exactly the pool.

On the fake network the rewards account holds the pool and every agent's registered
account (/myaccount) exists with a trustline to the pool's token. The script prints what
the command prints (the table, the batch's summary), decodes every transaction it wrote
with stellar-sdk, and exits 1 unless the payments go to the registered accounts and add
up to the pool to the stroop.

    python benchmarks/desk_simulation.py --users 60 --kills 1 --data /tmp/desksim
    python benchmarks/rewards_batch.py /tmp/desksim/navigator.db --month 2026-11

Needs the test extras (aiohttp).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from stellar_sdk import Keypair, Network, TransactionEnvelope

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from navigator.payouts.assets import Asset  # noqa: E402
from navigator.payouts.ledger import AgentPayoutAccount  # noqa: E402
from navigator.store import Store  # noqa: E402
from tests.payouts.fakehorizon import FakeHorizon  # noqa: E402


def registered_accounts(database_url: str) -> dict[int, str]:
    store = Store(database_url)
    try:
        with store.transaction() as repo:
            return dict(repo.session.execute(
                select(AgentPayoutAccount.agent_id, AgentPayoutAccount.account)).all())
    finally:
        store.close()


def main(args: argparse.Namespace) -> int:
    database_url = f"sqlite:///{Path(args.database).resolve()}"
    accounts = registered_accounts(database_url)
    print(f"{len(accounts)} agents registered a rewards account", flush=True)
    pool = Asset("EURMTL", Keypair.random().public_key)
    network = FakeHorizon()
    source = network.add_account(xlm="1000", tokens={pool: "100000"})
    for account in accounts.values():
        network.add_account(account, xlm="5", tokens={pool: "0"})
    work = Path(tempfile.mkdtemp(prefix="navigator-rewards-"))
    config = work / "payouts.yaml"
    config.write_text(
        "network: testnet\nmax_fee: 1000\nvalid_hours: 24\nrewards:\n"
        f"  account: {source}\n  memo: MTL Support rewards\n"
        f"  pool: {{code: EURMTL, issuer: {pool.issuer}, amount: {args.pool}}}\n",
        encoding="utf-8")
    with network.running():
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("NAVIGATOR_")},
               "NAVIGATOR_DATABASE_URL": database_url, "NAVIGATOR_PAYOUTS_FILE": str(config),
               "NAVIGATOR_HORIZON_URL": network.url, "NAVIGATOR_DATA_DIR": str(work)}
        command = [sys.executable, "-m", "navigator", "rewards", "--month", args.month,
                   "--build", "--out", str(work / "batch")]
        done = subprocess.run(command, env=env, cwd=ROOT, text=True, capture_output=True,
                              timeout=300)
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    if done.returncode != 0:
        return done.returncode
    paid: dict[str, Decimal] = {}
    files = sorted((work / "batch").glob("*.xdr"))
    for path in files:
        envelope = TransactionEnvelope.from_xdr(path.read_text(encoding="ascii").strip(),
                                                Network.TESTNET_NETWORK_PASSPHRASE)
        assert envelope.hash_hex() == path.stem and envelope.signatures == []
        for operation in envelope.transaction.operations:
            destination = (operation.destination.account_id if hasattr(operation, "destination")
                           else operation.claimants[0].destination)  # a claimable balance
            paid[destination] = paid.get(destination, Decimal(0)) + Decimal(operation.amount)
    total = sum(paid.values(), Decimal(0))
    print(f"decoded {len(files)} transactions: {len(paid)} payments, {total} EURMTL in "
          f"total; the pool is {args.pool}")
    unknown = set(paid) - set(accounts.values())
    if unknown or total != Decimal(args.pool):
        print(f"MISMATCH: unknown destinations {sorted(unknown)}, total {total}")
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", help="a Navigator SQLite database file")
    parser.add_argument("--month", required=True, help="YYYY-MM")
    parser.add_argument("--pool", default="300", help="the pool in EURMTL (default 300)")
    sys.exit(main(parser.parse_args()))
