"""Which ticket a place in the agents' chat belongs to, and where a ticket lives there.

The one owner of the mapping between tickets and the agents' chat, for both directions
and both transports:

* Out: a ticket's card is the first message the bot posted for it (`remember_card`); in
  a forum each ticket has its own topic (`set_topic`); `ticket_thread` says where a
  ticket lives, so the next message goes there.
* In: an agent's message belongs to the ticket it names, else to the ticket whose
  topic it was posted in, or whose card or relayed message it replies to
  (`ticket_at`, `in_ticket`). The transports only report the place (`ChatPlace`): the
  Telegram update's topic and reply, or in the terminal the newest ticket message shown
  to the agents, which the terminal records as its message number.

Every function runs inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from sqlalchemy import func, select, update

from navigator.events import AgentCommand, AgentText, AnonymousAgentMessage, ChatPlace
from navigator.store import Repository
from navigator.store.models import OutboxMessage, Ticket
from navigator.telegram_html import TOPIC_NAME_LIMIT, excerpt

PlacedEvent = TypeVar("PlacedEvent", AgentText, AgentCommand, AnonymousAgentMessage)


def ticket_at(repo: Repository, place: ChatPlace) -> int | None:
    """The ticket a message posted at `place` belongs to, or None.

    A reply to any message the bot posted for a ticket (its card, or a user's message
    relayed to the agents) belongs to that ticket; so does a message in its forum topic.
    """
    if place.reply_to_message_id is not None:
        ticket_id = repo.session.scalar(
            select(OutboxMessage.ticket_id).where(
                OutboxMessage.chat_id == place.chat_id,
                OutboxMessage.message_id == place.reply_to_message_id,
                OutboxMessage.ticket_id.is_not(None)).limit(1))
        if ticket_id is not None:
            return ticket_id
    if place.thread_id is not None:
        return repo.session.scalar(
            select(Ticket.id).where(Ticket.agents_chat_id == place.chat_id,
                                    Ticket.agents_thread_id == place.thread_id)
            .order_by(Ticket.id.desc()).limit(1))
    return None


def in_ticket(repo: Repository, event: PlacedEvent) -> PlacedEvent:
    """The agent's event with the ticket it belongs to: the one it names, else the one
    of its place in the agents' chat (None if neither)."""
    if event.ticket_id is not None or event.place is None:
        return event
    return replace(event, ticket_id=ticket_at(repo, event.place))


@dataclass(frozen=True)
class TicketThread:
    """Where a ticket lives in the agents' chat, as far as the bot knows."""

    ticket_id: int
    chat_id: int | None
    thread_id: int | None
    card_message_id: int | None
    title: str  # a topic name: "№12 · Анна"
    card_row_id: int | None  # the outbox row holding the ticket's card


def ticket_thread(repo: Repository, ticket_id: int) -> TicketThread | None:
    """Where the ticket lives in the agents' chat (None: no such ticket)."""
    ticket = repo.session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    card_row = repo.session.scalar(
        select(func.min(OutboxMessage.id)).where(OutboxMessage.ticket_id == ticket_id,
                                                  OutboxMessage.kind == "notify_agents"))
    name = (ticket.context.get("user") or {}).get("name") or str(ticket.user_id)
    return TicketThread(ticket.id, ticket.agents_chat_id, ticket.agents_thread_id,
                        ticket.agents_card_message_id,
                        excerpt(f"№{ticket.id} · {name}", TOPIC_NAME_LIMIT), card_row)


def set_topic(repo: Repository, ticket_id: int, chat_id: int, thread_id: int | None) -> None:
    """Remember the ticket's forum topic (None: it was deleted; the card id goes too)."""
    ticket = repo.session.get(Ticket, ticket_id)
    if ticket is not None:
        ticket.agents_chat_id, ticket.agents_thread_id = chat_id, thread_id
        if thread_id is None:
            ticket.agents_card_message_id = None


def remember_card(repo: Repository, ticket_id: int, chat_id: int, message_id: int) -> None:
    """A message the bot posted for the ticket: the first one is its card."""
    repo.session.execute(
        update(Ticket).where(Ticket.id == ticket_id, Ticket.agents_card_message_id.is_(None))
        .values(agents_chat_id=chat_id, agents_card_message_id=message_id)
        .execution_options(synchronize_session=False))
