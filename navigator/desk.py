"""The desk: what happens when a request goes to people. Decisions only, like the engine.

A ticket carries everything an agent needs: who asked, what, the path through the
menus, what the bot tried, the variables a flow collected, and the last messages.
"""

from __future__ import annotations

from typing import Any

from navigator.events import NotifyAgents
from navigator.store.models import Ticket
from navigator.texts import Texts
from navigator.turn import Turn

WITHDRAWN = "withdrawn"


def public_variables(variables: dict[str, Any]) -> dict[str, Any]:
    """What a flow collected, without the engine's own bookkeeping (keys starting with _)."""
    return {k: v for k, v in variables.items() if not k.startswith("_")}


def earlier_request(turn: Turn, request_type: str, once: bool,
                    unique_by: tuple[str, ...]) -> Ticket | None:
    """An earlier ticket that makes this request a duplicate, if there is one.

    `once`: the user may make this kind of request only once. `unique_by`: no two requests
    may share the value of these variables (e.g. the same Stellar account). Withdrawn
    requests do not count.
    """
    if not once and not unique_by:
        return None
    variables = turn.conversation.variables
    for ticket in turn.repo.tickets_of_type(request_type):
        if ticket.context.get("close_reason") == WITHDRAWN:
            continue
        if once and ticket.user_id == turn.user.id:
            return ticket
        earlier = ticket.context.get("variables", {})
        if any(name in variables and earlier.get(name) == variables[name] for name in unique_by):
            return ticket
    return None


def has_request(turn: Turn, request_type: str) -> bool:
    """True if the user already made a request of this type (for flow conditions)."""
    return any(t.user_id == turn.user.id and t.context.get("close_reason") != WITHDRAWN
               for t in turn.repo.tickets_of_type(request_type))


def open_ticket(turn: Turn, texts: Texts, request_type: str, question: str,
                history_size: int) -> Ticket:
    """Create the ticket with its full context, tell the user, and send agents the card."""
    conversation = turn.conversation
    variables = public_variables(conversation.variables)
    earlier = turn.repo.ticket_count(turn.user.id)
    messages = [{"direction": m.direction, "text": m.text}
                for m in turn.repo.recent_messages(turn.user.id, history_size)]
    context: dict[str, Any] = {
        "user": {"id": turn.user.id, "name": turn.user.name,
                 "username": turn.user.username, "language": turn.language},
        "trail": list(conversation.trail),
        "tried": conversation.last_search.get("hits", []),
        "variables": variables,
        "messages": messages,
    }
    ticket = turn.repo.create_ticket(turn.user.id, request_type, question, context)
    turn.send(texts.say(turn.language, "handover_done", ticket=ticket.id))
    card = texts.render("agent_card.html", ticket=ticket, user=context["user"],
                        earlier_tickets=earlier, trail=context["trail"], tried=context["tried"],
                        variables=variables, messages=messages)
    turn.replies.append(NotifyAgents(ticket.id, card))
    return ticket


def add_to_ticket(turn: Turn, texts: Texts, ticket: Ticket, text: str) -> None:
    """A user's message while their ticket is open goes to the agents, not to search."""
    turn.replies.append(NotifyAgents(ticket.id, texts.render(
        "agent_message.html", ticket=ticket, user=turn.user, text=text)))
    turn.send(texts.say(turn.language, "ticket_message_added", ticket=ticket.id))


def withdraw(turn: Turn, ticket: Ticket) -> None:
    ticket.status = "closed"
    ticket.context = {**ticket.context, "closed_by": "user", "close_reason": WITHDRAWN}
