"""Tickets and the user's side of them: opening one (with the agents' card), the user
writing to it or reopening it, withdrawing it, rating it or saying it is not solved,
commenting on the rating, and /status."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from navigator import buttons
from navigator.desk import folding
from navigator.desk.states import (
    AGENTS_LANGUAGE,
    CLAIMED,
    CLOSED,
    FORGOTTEN,
    NOT_SOLVED,
    OPEN,
    RESOLVED,
    WAITING_USER,
    owner_name,
    record,
)
from navigator.desk.timings import median, response_times
from navigator.events import Button, NotifyAgents
from navigator.store.models import Ticket, User
from navigator.store.repository import OPEN_TICKET_STATUSES
from navigator.telegram_html import TEXT_LIMIT, excerpt, framed_parts, visible_length
from navigator.texts import Texts
from navigator.turn import Turn

LOW_RATING = 2  # this or less: the ticket goes back to the agents
# A rating's comment is written right after the rating, or not at all: later text is a
# new question for the bot.
RATING_COMMENT_WINDOW = timedelta(minutes=30)
QUESTION = "question"  # the untyped request: a question to answer, not a request to decide
# The request the airdrop flow hands over: approved for payment on Stellar rather than
# marked done (navigator.payouts.approvals); the network's confirmation resolves it.
AIRDROP = "airdrop"
_PENDING_COMMENT = "_rating_comment"  # in the conversation's variables: {ticket, until}

WITHDRAWN = "withdrawn"
# The card shows this much of the question; a longer one follows the card in full, in
# parts, so the card (with the path, the bot's tries and the history) always fits.
QUESTION_EXCERPT = 1000
STATUS_QUESTION_EXCERPT = 300  # /status reminds the user of their question


def public_variables(variables: dict[str, Any]) -> dict[str, Any]:
    """What a flow collected, without the engine's own bookkeeping (keys starting with _)."""
    return {k: v for k, v in variables.items() if not k.startswith("_")}


def earlier_request(turn: Turn, request_type: str, once: bool,
                    unique_by: tuple[str, ...]) -> Ticket | None:
    """An earlier ticket that makes this request a duplicate, if there is one.

    `once`: the user may make this kind of request only once. `unique_by`: no two requests
    may share the value of these variables (e.g. the same Stellar account). Withdrawn
    requests do not count, nor those closed undecided because the user erased their data
    (decided ones do: the user id stays on them).
    """
    if not once and not unique_by:
        return None
    variables = turn.conversation.variables
    for ticket in turn.repo.tickets_of_type(request_type):
        if ticket.context.get("close_reason") in (WITHDRAWN, FORGOTTEN):
            continue
        if once and ticket.user_id == turn.user.id:
            return ticket
        earlier = ticket.context.get("variables", {})
        if any(name in variables and earlier.get(name) == variables[name] for name in unique_by):
            return ticket
    return None


def has_request(turn: Turn, request_type: str) -> bool:
    """True if the user already made a request of this type (for flow conditions)."""
    return earlier_request(turn, request_type, once=True, unique_by=()) is not None


def open_ticket(turn: Turn, texts: Texts, request_type: str, question: str,
                history_size: int, title: dict[str, str] | None = None,
                reason: str | None = None) -> Ticket:
    """Create the ticket with its full context, tell the user, and send agents the card.
    `title`: what a typed request is called, per language (its flow's title), so the
    user can be told later which request was done or refused. `reason`: why it was
    opened (states.OPENING_REASONS), logged with the opening for the report."""
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
    if title:
        context["request_title"] = title
    ticket = turn.repo.create_ticket(turn.user.id, request_type, question, context)
    ticket.created_at = turn.now
    record(turn.repo, ticket, None, OPEN, _user(turn), turn.now, why=reason)
    message = texts.say(turn.language, "handover_done", ticket=ticket.id)
    recent = response_times(turn.repo, turn.now - timedelta(days=30))[0]
    if recent:  # roughly when: the median first response of the last 30 days
        message += "\n" + texts.say(turn.language, "handover_eta",
                                    eta=median(recent))
    turn.send(message)
    turn.replies += opening_posts(texts, ticket, context, earlier)
    return ticket


def opening_posts(texts: Texts, ticket: Ticket, context: dict[str, Any],
                  earlier_tickets: int) -> list[NotifyAgents]:
    """The card (with its buttons) and, for a long question, its full text in parts after
    it. The card shows an excerpt of the question and as much of the history as fits,
    the newest messages first to stay."""
    question = ticket.question
    parts: list[str] = []
    if len(question) > QUESTION_EXCERPT:
        parts = framed_parts(question, lambda text, number, count: texts.say(
            AGENTS_LANGUAGE, "agents_question_part", ticket=ticket.id, part=number,
            parts=count, text=text))
        question = excerpt(question, QUESTION_EXCERPT)
    messages = list(context["messages"])
    while True:
        card = texts.render("agent_card.html", ticket=ticket, user=context["user"],
                            question=question, question_parts=len(parts),
                            earlier_tickets=earlier_tickets, trail=context["trail"],
                            tried=context["tried"], variables=context["variables"],
                            messages=messages,
                            earlier_messages=len(context["messages"]) - len(messages))
        if visible_length(card) <= TEXT_LIMIT or not messages:
            break
        messages = messages[1:]
    return [NotifyAgents(ticket.id, card, card_buttons(texts, ticket), opening=True),
            *(NotifyAgents(ticket.id, part, opening=True) for part in parts)]


def is_request(ticket: Ticket) -> bool:
    """A typed request (join, airdrop...): agents decide it, done or refused."""
    return ticket.type != QUESTION


def request_title(ticket: Ticket, language: str) -> str:
    """What the user calls this request, in their language (its type if unnamed)."""
    titles = ticket.context.get("request_title") or {}
    return titles.get(language) or titles.get(AGENTS_LANGUAGE) or ticket.type


def card_buttons(texts: Texts, ticket: Ticket) -> tuple[Button, ...]:
    """Take and resolve; a typed request can also be marked done or refused, and an
    airdrop request is approved for payment instead (it is resolved once paid)."""
    if ticket.type == AIRDROP:
        actions = ["take", "approve", "refuse"]
    else:
        actions = ["take", "resolve", *(("done", "refuse") if is_request(ticket) else ())]
    return tuple(Button(texts.say(AGENTS_LANGUAGE, f"agents_button_{action}"),
                        buttons.agent_action(action, ticket.id)) for action in actions)


def rating_buttons(texts: Texts, language: str, ticket_id: int) -> tuple[Button, ...]:
    """1-5, and "not solved" for a user who wants the agents to carry on instead."""
    return (*(Button(str(n), buttons.rating(ticket_id, n)) for n in range(1, 6)),
            Button(texts.say(language, "button_not_solved"), buttons.not_solved(ticket_id)))


def add_to_ticket(turn: Turn, texts: Texts, ticket: Ticket, text: str,
                  suggestions: list[dict[str, Any]] | None = None) -> None:
    """A user's message while their ticket is open goes to the agents, not to the user's
    search: the bot does not talk over the human. It may show the agents the articles it
    would have suggested (`suggestions`). If the agent was waiting for the user, it is
    the agent's turn again."""
    if ticket.status == WAITING_USER:
        record(turn.repo, ticket, ticket.status, CLAIMED, _user(turn), turn.now)
    turn.replies += folding.fold_line(turn.repo, texts, ticket)  # a flood's, first
    turn.replies += relayed(texts, ticket, turn.user, text, suggestions or [])
    # The same words each time: a quick series shows one (the outbox collapses them).
    turn.send(texts.say(turn.language, "ticket_message_added", ticket=ticket.id),
              collapse=f"added|{ticket.id}")


def relayed(texts: Texts, ticket: Ticket, user: User, text: str,
            suggestions: list[dict[str, Any]]) -> list[NotifyAgents]:
    """A user's message as the agents read it in the ticket: whole, or in parts each
    headed with the ticket and the part's number (the suggestions after the last)."""
    def frame(part: str, number: int, parts: int) -> str:
        return texts.render("agent_message.html", ticket=ticket, user=user, text=part,
                            part=number, parts=parts,
                            suggestions=suggestions if number == parts else [])

    return [NotifyAgents(ticket.id, message) for message in framed_parts(text, frame)]


def reopen_by_user(turn: Turn, texts: Texts, ticket: Ticket, text: str,
                   suggestions: list[dict[str, Any]] | None = None) -> None:
    """The user wrote after resolution, before rating: the same ticket is worked on again
    (see the docstring of navigator.desk for why not a new one)."""
    to = CLAIMED if ticket.agent_id is not None else OPEN
    record(turn.repo, ticket, ticket.status, to, _user(turn), turn.now)
    turn.replies.append(NotifyAgents(ticket.id, texts.say(
        AGENTS_LANGUAGE, "agents_reopened_by_user", ticket=ticket.id),
        card_buttons(texts, ticket) if to == OPEN else ()))
    add_to_ticket(turn, texts, ticket, text, suggestions)


def withdraw(turn: Turn, ticket: Ticket) -> None:
    record(turn.repo, ticket, ticket.status, CLOSED, _user(turn), turn.now)
    ticket.context = {**ticket.context, "closed_by": "user", "close_reason": WITHDRAWN}


def _user(turn: Turn) -> str:
    return f"user:{turn.user.id}"


# The user's side ------------------------------------------------------------------------


def rate(turn: Turn, texts: Texts, ticket_id: int, rating: int) -> None:
    """The user's 1-5 answer to "did we solve it?". 3-5 closes the ticket; 1-2 stores the
    rating and sends the ticket back to the agents, open for anyone to take."""
    ticket = _awaiting_rating(turn, texts, ticket_id)
    if ticket is None or not 1 <= rating <= 5:
        return
    ticket.rating = rating
    turn.repo.log_ticket(ticket, _user(turn), turn.now, kind="rating", text=str(rating))
    _await_comment(turn, ticket)
    if rating <= LOW_RATING:
        ticket.agent_id = None
        record(turn.repo, ticket, RESOLVED, OPEN, _user(turn), turn.now)
        turn.send(texts.say(turn.language, "rating_low", ticket=ticket.id))
        turn.replies.append(NotifyAgents(ticket.id, texts.say(
            AGENTS_LANGUAGE, "agents_rated_low", ticket=ticket.id, rating=rating),
            card_buttons(texts, ticket)))
        return
    record(turn.repo, ticket, RESOLVED, CLOSED, _user(turn), turn.now)
    turn.send(texts.say(turn.language, "rating_thanks", ticket=ticket.id, rating=rating),
              [Button(texts.say(turn.language, "button_skip_comment"),
                      buttons.no_comment(ticket.id))])
    turn.replies.append(NotifyAgents(ticket.id, texts.say(
        AGENTS_LANGUAGE, "agents_rated", ticket=ticket.id, rating=rating)))


def not_solved(turn: Turn, texts: Texts, ticket_id: int) -> None:
    """The user's "Не решено" instead of a rating: the agent who had the ticket carries
    on (anyone, if nobody had it), and the user is told a person continues."""
    ticket = _awaiting_rating(turn, texts, ticket_id)
    if ticket is None:
        return
    to = CLAIMED if ticket.agent_id is not None else OPEN
    record(turn.repo, ticket, RESOLVED, to, _user(turn), turn.now, why=NOT_SOLVED)
    turn.replies.append(NotifyAgents(ticket.id, texts.say(
        AGENTS_LANGUAGE, "agents_not_solved", ticket=ticket.id,
        agent=owner_name(turn.repo, ticket)),
        card_buttons(texts, ticket) if to == OPEN else ()))
    turn.send(texts.say(turn.language, "not_solved_for_user", ticket=ticket.id))


def _awaiting_rating(turn: Turn, texts: Texts, ticket_id: int) -> Ticket | None:
    """The user's resolved ticket `ticket_id`, which a rating or "not solved" answers;
    None (the user told why, if it is theirs) when it is not waiting for that."""
    ticket = turn.repo.ticket(ticket_id)
    if ticket is None or ticket.user_id != turn.user.id:
        return None
    if ticket.status == CLOSED:
        turn.send(texts.say(turn.language, "rating_already", ticket=ticket.id))
        return None
    if ticket.status != RESOLVED:
        turn.send(texts.say(turn.language, "rating_not_now", ticket=ticket.id))
        return None
    return ticket


def _await_comment(turn: Turn, ticket: Ticket) -> None:
    until = (turn.now + RATING_COMMENT_WINDOW).isoformat()
    turn.conversation.variables = {**turn.conversation.variables,
                                   _PENDING_COMMENT: {"ticket": ticket.id, "until": until}}


def forget_comment(turn: Turn) -> None:
    """The user moved on (a command, another button): their next text is not a comment."""
    variables = turn.conversation.variables
    if _PENDING_COMMENT in variables:
        turn.conversation.variables = {k: v for k, v in variables.items()
                                       if k != _PENDING_COMMENT}


def skip_comment(turn: Turn, texts: Texts) -> None:
    forget_comment(turn)
    turn.send(texts.say(turn.language, "rating_comment_skipped"),
              [buttons.menu(turn)])


def take_comment(turn: Turn, texts: Texts, text: str) -> bool:
    """If the user was invited to comment on their rating (and still may), `text` is that
    comment: logged, and shown to the agents in the ticket's thread; on a ticket a low
    rating reopened it joins the ticket like any message. True if it was the comment."""
    pending = turn.conversation.variables.get(_PENDING_COMMENT)
    if not pending:
        return False
    forget_comment(turn)
    ticket = turn.repo.ticket(pending.get("ticket"))
    if ticket is None or not text or turn.now > datetime.fromisoformat(pending["until"]) or \
            ticket.status not in (CLOSED, *OPEN_TICKET_STATUSES):
        return False
    turn.repo.log_ticket(ticket, _user(turn), turn.now, kind="comment", text=text)
    if ticket.status in OPEN_TICKET_STATUSES:
        add_to_ticket(turn, texts, ticket, text)
        return True
    turn.replies += [NotifyAgents(ticket.id, part) for part in framed_parts(
        text, lambda comment, number, count: texts.say(
            AGENTS_LANGUAGE, "agents_rating_comment", ticket=ticket.id, rating=ticket.rating,
            text=comment, part=number, parts=count))]
    turn.send(texts.say(turn.language, "rating_comment_thanks"),
              [buttons.menu(turn)])
    return True


def status(turn: Turn, texts: Texts) -> None:
    """/status: the user's current (or latest) ticket and where it is."""
    ticket = turn.repo.open_ticket(turn.user.id) or turn.repo.latest_ticket(turn.user.id)
    if ticket is None:
        turn.send(texts.say(turn.language, "status_none"))
        return
    agent = turn.repo.agent_by_id(ticket.agent_id)
    resolutions = [e.text for e in turn.repo.ticket_log(ticket.id)
                   if e.kind == "status" and e.to_status == RESOLVED]
    words = texts.say(turn.language, f"status_{ticket.status}",
                      agent=(agent.pseudonym if agent else None) or "", rating=ticket.rating,
                      outcome=resolutions[-1] if resolutions else None)
    turn.send(texts.say(turn.language, "status_ticket", ticket=ticket.id, status=words,
                        question=excerpt(ticket.question, STATUS_QUESTION_EXCERPT)))
