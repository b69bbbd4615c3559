"""What the payouts tests share: a payouts.yaml for the fake Horizon's testnet accounts,
airdrop requests made as users make them, and reading back what was decided."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stellar_sdk import Keypair

from navigator.events import AgentRef, UserRef
from navigator.outbox import enqueue
from navigator.payouts.approvals import approve
from navigator.payouts.assets import Asset
from navigator.payouts.ledger import Ledger, PayoutRequest
from navigator.store import Store
from navigator.store.models import OutboxMessage, Ticket
from navigator.texts import Texts
from tests.helpers import press, say
from tests.payouts.fakehorizon import FakeHorizon

EURMTL = Asset("EURMTL", Keypair.random().public_key)
USDM = Asset("USDM", Keypair.random().public_key)
OLGA = AgentRef(501, "Ольга Петрова", "olga_p")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def write_config(path: Path, source: str, rewards_source: str | None = None,
                 tokens: str | None = None, extra_airdrop: str = "",
                 per_day: str = "{XLM: 10000, EURMTL: 10000, USDM: 10000}",
                 network: str = "testnet") -> Path:
    """A testnet payouts.yaml paying from `source`: 5 XLM to create an account, 10 EURMTL
    and 2.5 USDM per newcomer (or `tokens`, YAML list items), 300 EURMTL of rewards."""
    tokens = tokens if tokens is not None else (
        f"    - {{code: EURMTL, issuer: {EURMTL.issuer}, amount: 10}}\n"
        f"    - {{code: USDM, issuer: {USDM.issuer}, amount: 2.5}}\n")
    path.write_text(
        f"network: {network}\n"
        "max_fee: 1000\n"
        "valid_hours: 24\n"
        "airdrop:\n"
        f"  account: {source}\n"
        "  memo: MTL Support airdrop\n"
        "  starting_balance: 5\n"
        "  tokens:\n" + tokens +
        "  limits:\n"
        f"    per_day: {per_day}\n" + extra_airdrop +
        "rewards:\n"
        f"  account: {rewards_source or source}\n"
        "  memo: MTL Support rewards\n"
        f"  pool: {{code: EURMTL, issuer: {EURMTL.issuer}, amount: 300}}\n",
        encoding="utf-8")
    return path


def paying_account(fake: FakeHorizon, key: Keypair | None = None, xlm: str = "10000",
                   eurmtl: str = "100000", usdm: str = "100000", **extra: Any) -> str:
    """The airdrop's paying account on the fake network, well funded."""
    return fake.add_account((key or Keypair.random()).public_key, xlm=xlm,
                            tokens={EURMTL: eurmtl, USDM: usdm}, **extra)


def request_airdrop(navigator: Any, user: UserRef, account: str) -> None:
    """`user` asks for the newcomer airdrop through the shipped flow, as in Telegram."""
    menu = say(navigator, user, "/start")
    press(navigator, user, menu, "Эйрдроп" if user.language_code == "ru" else "airdrop")
    say(navigator, user, account)


def airdrop_tickets(store: Store, users_accounts: list[tuple[UserRef, str]]) -> None:
    """Airdrop requests stored as the airdrop flow stores them, without walking the
    menus (for a scale the engine would take minutes over)."""
    with store.transaction() as repo:
        for user, account in users_accounts:
            repo.user(user, "ru")
            repo.session.flush()
            ticket = repo.create_ticket(
                user.id, "airdrop", f"Заявка на эйрдроп новичка. Аккаунт: {account}.",
                {"user": {"id": user.id, "name": user.name, "username": user.username,
                          "language": "ru"},
                 "trail": [], "tried": [], "variables": {"account": account},
                 "messages": []})
            ticket.created_at = NOW


def approve_all(store: Store, agent: AgentRef = OLGA, now: datetime = NOW) -> list[Any]:
    """An agent approves every airdrop ticket (what /approve does); the replies go to the
    outbox, as the desk sends them."""
    replies, texts = [], Texts()
    with store.transaction() as repo:
        ids = [t.id for t in repo.tickets_of_type("airdrop")]
    for ticket_id in ids:
        with store.transaction() as repo:
            decided = approve(repo, ticket_id, agent, now, texts)
            enqueue(repo, decided)
            replies += decided
    return replies


def requests(store: Store) -> list[PayoutRequest]:
    with store.transaction() as repo:
        return list(repo.session.query(PayoutRequest).order_by(PayoutRequest.id))


def statuses(store: Store) -> list[str]:
    return [r.status for r in requests(store)]


def ticket_statuses(store: Store) -> list[str]:
    with store.transaction() as repo:
        return [t.status for t in repo.session.query(Ticket).order_by(Ticket.id)]


def outbox_texts(store: Store, user_id: int | None = None, kind: str | None = None
                 ) -> list[str]:
    with store.transaction() as repo:
        rows = repo.session.query(OutboxMessage).order_by(OutboxMessage.id).all()
        return [r.payload.get("text", "") for r in rows
                if (user_id is None or r.user_id == user_id) and (kind is None or r.kind == kind)]


def pending_hashes(store: Store) -> list[str]:
    with store.transaction() as repo:
        ledger = Ledger(repo.session)
        return [tx.hash for b in ledger.pending_batches() for tx in ledger.transactions(b.id)]
