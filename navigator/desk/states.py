"""A ticket's life as a table: which status may change to which, and who may change it.

`TRANSITIONS` is the specification (in the style of h11's `_state.py`): `record` writes
a status change only if the table has it, by that kind of actor, from the status the
ticket really is in; anything else raises `IllegalTransition` before a thing is written,
so the log in `ticket_events` never tells a story the table does not allow. A new rule
of the desk is a new line here first. (Why the life-cycle is what it is: the package's
docstring.)

Who changes a status is written in the log as `user:<id>`, `agent:<id>`, `bot` (timers)
or `operator` (the command line); the table speaks of the kinds: USER, AGENT, BOT,
OPERATOR.
"""

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

USER, AGENT, BOT, OPERATOR = "user", "agent", "bot", "operator"

# from status (None: the ticket is being created) -> to status -> who may make the change.
TRANSITIONS: dict[str | None, dict[str, frozenset[str]]] = {
    None: {
        OPEN: frozenset({USER}),  # a hand-over: /human, a flow's handover step
    },
    OPEN: {
        CLAIMED: frozenset({AGENT}),  # /take, «Взять», or answering it
        RESOLVED: frozenset({AGENT}),  # /resolve, /done, /refuse
        # withdrawn (/cancel) or erased (/forgetme); /ignore; `navigator forget`
        CLOSED: frozenset({USER, AGENT, OPERATOR}),
    },
    CLAIMED: {
        # the agent answered: the user's turn; or approved an airdrop: the network's
        WAITING_USER: frozenset({AGENT}),
        # the bot: an airdrop paid on Stellar, confirmed (navigator.payouts.confirmation)
        RESOLVED: frozenset({AGENT, BOT}),
        CLOSED: frozenset({USER, AGENT, OPERATOR}),
    },
    WAITING_USER: {
        CLAIMED: frozenset({USER}),  # the user wrote back: the agent's turn
        RESOLVED: frozenset({AGENT, BOT}),  # the bot: an airdrop paid, as above
        CLOSED: frozenset({USER, AGENT, OPERATOR}),
    },
    RESOLVED: {
        CLOSED: frozenset({USER, BOT}),  # rated 3-5; not rated in time
        OPEN: frozenset({USER}),  # rated 1-2; or "not solved" / wrote again, nobody had it
        # "not solved" or wrote again: its agent carries on; /reopen
        CLAIMED: frozenset({USER, AGENT}),
    },
    CLOSED: {
        CLAIMED: frozenset({AGENT}),  # /reopen
    },
}


class IllegalTransition(Exception):
    """A status change the table does not allow (a bug in the caller: nothing written)."""


def actor(who: str) -> str:
    """The kind of actor a log's `who` names: "agent:12" -> AGENT."""
    return who.partition(":")[0]


def check(from_status: str | None, to_status: str, who: str) -> None:
    """Raise IllegalTransition unless `who` may change a ticket from `from_status` to
    `to_status`."""
    allowed = TRANSITIONS.get(from_status, {}).get(to_status, frozenset())
    if actor(who) not in allowed:
        raise IllegalTransition(f"{who} may not change a ticket from {from_status} to "
                                f"{to_status}")


def record(repo: Repository, ticket: Ticket, from_status: str | None, to_status: str,
           who: str, now: datetime, why: str | None = None) -> None:
    """Change a ticket's status and log the change (`why`: DONE, REFUSED, NOT_SOLVED, or
    on opening one of OPENING_REASONS). `from_status` is the status the ticket is in
    (None: it is being created).

    Raises IllegalTransition, writing nothing, if the table does not allow the change or
    the ticket is not in `from_status`."""
    if from_status is not None and ticket.status != from_status:
        raise IllegalTransition(f"ticket {ticket.id} is {ticket.status}, not {from_status}")
    check(from_status, to_status, who)
    ticket.status = to_status
    repo.log_ticket(ticket, who, now, from_status=from_status, to_status=to_status, text=why)


def record_taken(repo: Repository, ticket: Ticket, who: str, now: datetime) -> None:
    """Log an agent's take, which `Repository.take_ticket` already made in one UPDATE
    (two agents taking at once: exactly one wins, so the status cannot wait for `record`).
    The change is checked against the table all the same."""
    check(OPEN, CLAIMED, who)
    repo.log_ticket(ticket, who, now, from_status=OPEN, to_status=CLAIMED)


def owner_name(repo: Repository, ticket: Ticket) -> str:
    """The agent who has the ticket, as the agents' chat knows them ("" if nobody)."""
    owner = repo.agent_by_id(ticket.agent_id)
    return (owner.pseudonym or owner.name) if owner else ""
