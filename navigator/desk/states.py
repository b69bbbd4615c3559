"""A ticket's statuses, the outcomes a status change can record, and `record`, which
changes the status and logs it (the life-cycle itself: the package's docstring)."""

from __future__ import annotations

from datetime import datetime

from navigator.store import Repository
from navigator.store.models import Ticket

AGENTS_LANGUAGE = "ru"  # the agents' chat is Russian-speaking
RESOLVED, CLOSED, OPEN, CLAIMED, WAITING_USER = (
    "resolved", "closed", "open", "claimed", "waiting_user")
# Why a status changed, in the status change's `text` in the ticket log.
DONE, REFUSED, NOT_SOLVED = "done", "refused", "not_solved"
# Why a ticket was opened, in the `text` of its opening status change: the bot found no
# good enough answer (or could not search), its answer did not help, the user asked for
# a person (/human, a "person" button or menu item), or a flow's typed request.
NO_ANSWER, NOT_HELPED, ASKED, FLOW = "no_answer", "not_helped", "asked", "flow"
OPENING_REASONS = (NO_ANSWER, NOT_HELPED, ASKED, FLOW)
# A ticket's `close_reason` (in its context) when its user erased their data: nobody
# is left to answer, and it is never reopened.
FORGOTTEN = "forgotten"


def record(repo: Repository, ticket: Ticket, from_status: str | None, to_status: str,
           who: str, now: datetime, why: str | None = None) -> None:
    """Change a ticket's status and log the change (`why`: DONE, REFUSED, NOT_SOLVED, or
    on opening one of OPENING_REASONS)."""
    ticket.status = to_status
    repo.log_ticket(ticket, who, now, from_status=from_status, to_status=to_status, text=why)


def owner_name(repo: Repository, ticket: Ticket) -> str:
    """The agent who has the ticket, as the agents' chat knows them ("" if nobody)."""
    owner = repo.agent_by_id(ticket.agent_id)
    return (owner.pseudonym or owner.name) if owner else ""
