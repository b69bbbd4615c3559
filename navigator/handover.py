"""Handing a user over to the agents: open a ticket with their question, or ask for it
first (the desk, navigator.desk, carries the ticket from there)."""

from __future__ import annotations

from navigator import buttons, desk
from navigator.turn import Turn

HANDOVER_QUESTION = "handover_question"  # conversation.awaiting: the question to hand over


def start(turn: Turn, request_type: str, question: str | None = None,
          why: str = desk.ASKED) -> None:
    """Hand over `question`, or ask what to hand over (its answer: `open_ticket`).
    `why`: why the ticket is opened (desk.OPENING_REASONS; the report counts them)."""
    if not available(turn):
        return
    if question:
        open_ticket(turn, request_type, question, why)
    else:
        ask_question(turn, request_type, why=why)


def available(turn: Turn) -> bool:
    """True if a new ticket may be opened; if not, the user is told why."""
    ticket = turn.repo.open_ticket(turn.user.id)
    if ticket is not None:
        turn.send(turn.say("ticket_already_open", ticket=ticket.id))
        return False
    if turn.user.ignored:  # an agent's /ignore: nothing more reaches the agents
        turn.send(turn.say("handover_unavailable"), [buttons.menu(turn)])
        return False
    return True


def ask_question(turn: Turn, request_type: str, prompt: str = "",
                 why: str = desk.ASKED) -> None:
    """Ask the user what to hand over (`prompt`: a flow's own words for it; `why`: kept
    for the ticket the answer opens)."""
    conversation = turn.conversation
    conversation.awaiting = HANDOVER_QUESTION
    conversation.variables = {**conversation.variables, "_request_type": request_type,
                              "_handover_reason": why}
    turn.send(prompt or turn.say("handover_ask_question"), [buttons.exit_flow(turn)])


def open_ticket(turn: Turn, request_type: str, question: str, why: str | None) -> None:
    """The ticket for the agents; the user leaves the flows (the agents answer now).
    `why`: desk.OPENING_REASONS."""
    # A typed request is named after the flow that makes it ("Вступление в Ассоциацию"),
    # so the user can later be told which request was done or refused.
    flow = turn.flows.flows.get(turn.conversation.flow_id or "")
    title = dict(flow.title.texts) if flow and request_type != desk.QUESTION else None
    desk.open_ticket(turn, turn.texts, request_type, question, turn.history_size, title,
                     why)
    turn.leave_flows()
    turn.conversation.last_search = {}
