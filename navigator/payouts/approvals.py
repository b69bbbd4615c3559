"""Agents' decisions about payouts: approving an airdrop request (it goes into the next
batch) and registering the account an agent's rewards go to. Plain functions over the
repository that return replies; the desk calls them (the approve button, /approve,
/myaccount)."""

from __future__ import annotations

from datetime import datetime

from stellar_sdk import StrKey

from navigator.desk.states import CLAIMED, OPEN, WAITING_USER, record
from navigator.desk.tickets import AGENTS_LANGUAGE, AIRDROP
from navigator.events import AgentRef, AgentsText, NotifyAgents, Reply, SendText
from navigator.payouts.assets import is_account_id, short_account
from navigator.payouts.ledger import APPROVED, CANCELLED, Ledger, PayoutRequest
from navigator.render import html_to_plain
from navigator.store import Repository
from navigator.store.models import User
from navigator.store.repository import OPEN_TICKET_STATUSES
from navigator.texts import Texts

ACCOUNT_VARIABLE = "account"  # the variable flows/airdrop.yaml stores the account in
# Why a ticket's status changed when its request was approved (the ticket log's `text`).
APPROVED_WHY = "approved"


def approve(repo: Repository, ticket_id: int, agent: AgentRef, now: datetime,
            texts: Texts | None = None) -> list[Reply]:
    """An agent approves airdrop request `ticket_id`: it will be paid in the next batch.

    The account comes from what the airdrop flow collected (the ticket's `account`
    variable). Refused, with the reason in the ticket's thread, when the ticket is not an
    airdrop request, is no longer being worked on, has no valid account, was approved
    already, or its account already had (or is having) an airdrop. On approval the user
    is told, the ticket waits in `waiting_user` (the agents' part is done; no reminders)
    and the approval is logged; the ticket is resolved when the network confirms the
    payment (navigator.payouts.confirmation).
    """
    texts = texts or Texts()
    ticket = repo.ticket(ticket_id)

    def to_ticket(key: str, **values: object) -> list[Reply]:
        text = texts.say(AGENTS_LANGUAGE, key, ticket=ticket_id, **values).strip()
        return [NotifyAgents(ticket_id, text) if ticket else AgentsText(text)]

    if ticket is None:
        return to_ticket("agents_unknown_ticket")
    if ticket.type != AIRDROP:
        return to_ticket("payout_not_airdrop")
    if ticket.status not in OPEN_TICKET_STATUSES:
        return to_ticket("agents_already_resolved", status=ticket.status)
    account = ticket.context.get("variables", {}).get(ACCOUNT_VARIABLE)
    if not is_account_id(account):
        return to_ticket("payout_no_account")
    ledger = Ledger(repo.session)
    if (earlier := ledger.request_of_ticket(ticket.id)) is not None:
        return to_ticket("payout_already_approved", status=earlier.status)
    others = [r for r in ledger.requests_for_account(account) if _live(repo, r)]
    if others:
        return to_ticket("payout_account_had_airdrop", account=short_account(account),
                         other=others[0].ticket_id)
    approver = repo.agent(agent)
    repo.session.add(PayoutRequest(ticket_id=ticket.id, user_id=ticket.user_id,
                                   account=account, status=APPROVED, approved_by=approver.id,
                                   approved_at=now, operations=[]))
    if ticket.agent_id is None:
        ticket.agent_id = approver.id
    who = f"agent:{approver.id}"
    if ticket.status == OPEN:  # nobody had it: the approver takes it (the table's way)
        record(repo, ticket, OPEN, CLAIMED, who, now)
    if ticket.status != WAITING_USER:
        record(repo, ticket, ticket.status, WAITING_USER, who, now, why=APPROVED_WHY)
    else:  # already the user's turn: the approval is still logged
        repo.log_ticket(ticket, who, now, kind="payout", text=APPROVED_WHY)
    user = repo.session.get_one(User, ticket.user_id)
    message = texts.say(user.language, "payout_approved", ticket=ticket.id).strip()
    repo.add_message(user.id, "out", html_to_plain(message), now)
    name = approver.pseudonym or approver.name or f"id {approver.id}"
    return [SendText(user.id, message, ticket_id=ticket.id),
            *to_ticket("agents_payout_approved", agent=name, account=short_account(account))]


def _live(repo: Repository, request: PayoutRequest) -> bool:
    """Paid, being paid, or approved with its ticket still open (an approved request
    whose ticket was refused or withdrawn will be cancelled, never paid)."""
    if request.status == APPROVED:
        ticket = repo.ticket(request.ticket_id)
        return ticket is not None and ticket.status in OPEN_TICKET_STATUSES
    return request.status != CANCELLED


def set_payout_account(repo: Repository, agent: AgentRef, text: str, now: datetime,
                       texts: Texts | None = None) -> list[Reply]:
    """/myaccount G...: the account this agent's rewards go to (shown back shortened).
    Without an account it says which one is registered. A secret key is refused loudly
    and never stored."""
    texts = texts or Texts()
    value = text.strip()
    ledger = Ledger(repo.session)
    agent_row = repo.agent(agent)

    def say(key: str, **values: object) -> list[Reply]:
        return [AgentsText(texts.say(AGENTS_LANGUAGE, key, **values).strip())]

    if StrKey.is_valid_ed25519_secret_seed(value):
        return say("payout_account_is_secret")
    if not value:
        current = ledger.payout_account(agent_row.id)
        return say("payout_account_usage", account=current)
    if not is_account_id(value):
        return say("payout_account_invalid")
    ledger.set_payout_account(agent_row.id, value, now)
    return say("payout_account_set", account=value,
               agent=agent_row.pseudonym or agent_row.name or f"id {agent_row.id}")

