"""The desk: what happens when a request goes to people. Decisions only, like the engine.

A ticket carries everything an agent needs: who asked, what, the path through the
menus, what the bot tried, the variables a flow collected, and the last messages.

Its life: `open` (nobody has it) -> `claimed` (an agent took it, or answered it) ->
`waiting_user` (the agent answered; the user's turn) <-> `claimed` (the user wrote back)
-> `resolved` (an agent said so; the user is asked for a 1-5 rating) -> `closed` (rated
3-5; not rated within three days; or withdrawn by the user). A rating of 1-2 sends it
back to `open` for any agent to take. Every change is written to `ticket_events` with
who and when (`record`), and so is every agent answer and note, so first-response and
resolution times can be counted.

A user message after resolution, before the rating, reopens the same ticket (to
`claimed` by the agent who had it): within that window the user is almost always
continuing the same matter ("it still does not work"), and the agent has the context.
The rating request has a "Не решено" button that does the same on purpose.
Once the ticket is closed (rated), a new message is a new question for the bot, except
for the comment a rating invites: the first free text within `RATING_COMMENT_WINDOW`
after a rating is that rating's comment (logged as "comment", shown in the ticket's
thread), not a question. The "Пропустить" button, any command, any other button or the
window passing ends the wait. After a low rating the ticket is open again, so the
comment ("what went wrong") also joins the ticket as an ordinary user message: the
agent who takes it reads it where they read everything else.

Typed requests (a flow's `handover` step with a `type` other than "question": `join`,
`airdrop`...) are decided rather than answered: their card also has "Выполнено" (`/done`)
and "Отказать" (`/refuse причина`). Both resolve the ticket and ask for the rating; the
status change carries the outcome ("done" or "refused") in the log's `text`, and a
refusal's reason reaches the user signed like an answer (and is logged as a "reply").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentEvent,
    AgentsText,
    AgentText,
    AnonymousAgentMessage,
    Attachment,
    Button,
    CopyToUser,
    NotifyAgents,
    Reply,
    SendText,
)
from navigator.render import CAPTION_LIMIT, html_to_plain, telegram_length
from navigator.search import SearchBackend
from navigator.store import Repository
from navigator.store.models import Agent, Ticket, TicketEvent, User, as_utc
from navigator.store.repository import OPEN_TICKET_STATUSES
from navigator.texts import Texts
from navigator.turn import Turn

AGENTS_LANGUAGE = "ru"  # the agents' chat is Russian-speaking
RESOLVED, CLOSED, OPEN, CLAIMED, WAITING_USER = (
    "resolved", "closed", "open", "claimed", "waiting_user")
LOW_RATING = 2  # this or less: the ticket goes back to the agents
# A rating's comment is written right after the rating, or not at all: later text is a
# new question for the bot.
RATING_COMMENT_WINDOW = timedelta(minutes=30)
QUESTION = "question"  # the untyped request: a question to answer, not a request to decide
# Why a status changed, in the status change's `text` in the ticket log.
DONE, REFUSED, NOT_SOLVED = "done", "refused", "not_solved"
_PENDING_COMMENT = "_rating_comment"  # in the conversation's variables: {ticket, until}
_NUMBERED = re.compile(r"^#?(\d+)\b\s*(.*)$", re.DOTALL)

WITHDRAWN = "withdrawn"
# Attachments an agent's answer may carry: those with a caption, where the pseudonym
# signs them. Stickers and video messages have none, so the user could not tell who
# sent them: they are not relayed.
RELAYED_ATTACHMENTS = ("photo", "document", "video", "voice", "audio", "animation")


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
    return earlier_request(turn, request_type, once=True, unique_by=()) is not None


def open_ticket(turn: Turn, texts: Texts, request_type: str, question: str,
                history_size: int, title: dict[str, str] | None = None) -> Ticket:
    """Create the ticket with its full context, tell the user, and send agents the card.
    `title`: what a typed request is called, per language (its flow's title), so the
    user can be told later which request was done or refused."""
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
    record(turn.repo, ticket, None, OPEN, _user(turn), turn.now)
    message = texts.say(turn.language, "handover_done", ticket=ticket.id)
    recent = response_times(turn.repo, turn.now - timedelta(days=30))[0]
    if recent:  # roughly when: the median first response of the last 30 days
        message += "\n" + texts.say(turn.language, "handover_eta",
                                    eta=_median(recent))
    turn.send(message)
    card = texts.render("agent_card.html", ticket=ticket, user=context["user"],
                        earlier_tickets=earlier, trail=context["trail"], tried=context["tried"],
                        variables=variables, messages=messages)
    turn.replies.append(NotifyAgents(ticket.id, card, card_buttons(texts, ticket)))
    return ticket


def is_request(ticket: Ticket) -> bool:
    """A typed request (join, airdrop...): agents decide it, done or refused."""
    return ticket.type != QUESTION


def request_title(ticket: Ticket, language: str) -> str:
    """What the user calls this request, in their language (its type if unnamed)."""
    titles = ticket.context.get("request_title") or {}
    return titles.get(language) or titles.get(AGENTS_LANGUAGE) or ticket.type


def card_buttons(texts: Texts, ticket: Ticket) -> tuple[Button, ...]:
    """Take and resolve; a typed request can also be marked done or refused."""
    actions = ["take", "resolve", *(("done", "refuse") if is_request(ticket) else ())]
    return tuple(Button(texts.say(AGENTS_LANGUAGE, f"agents_button_{action}"),
                        f"{action}|{ticket.id}") for action in actions)


def rating_buttons(texts: Texts, language: str, ticket_id: int) -> tuple[Button, ...]:
    """1-5, and "not solved" for a user who wants the agents to carry on instead."""
    return (*(Button(str(n), f"rate|{ticket_id}|{n}") for n in range(1, 6)),
            Button(texts.say(language, "button_not_solved"), f"unsolved|{ticket_id}"))


def add_to_ticket(turn: Turn, texts: Texts, ticket: Ticket, text: str,
                  suggestions: list[dict[str, Any]] | None = None) -> None:
    """A user's message while their ticket is open goes to the agents, not to the user's
    search: the bot does not talk over the human. It may show the agents the articles it
    would have suggested (`suggestions`). If the agent was waiting for the user, it is
    the agent's turn again."""
    if ticket.status == WAITING_USER:
        record(turn.repo, ticket, ticket.status, CLAIMED, _user(turn), turn.now)
    turn.replies.append(NotifyAgents(ticket.id, texts.render(
        "agent_message.html", ticket=ticket, user=turn.user, text=text,
        suggestions=suggestions or [])))
    turn.send(texts.say(turn.language, "ticket_message_added", ticket=ticket.id))


def reopen_by_user(turn: Turn, texts: Texts, ticket: Ticket, text: str,
                   suggestions: list[dict[str, Any]] | None = None) -> None:
    """The user wrote after resolution, before rating: the same ticket is worked on again
    (see the module's docstring for why not a new one)."""
    to = CLAIMED if ticket.agent_id is not None else OPEN
    record(turn.repo, ticket, ticket.status, to, _user(turn), turn.now)
    turn.replies.append(NotifyAgents(ticket.id, texts.say(
        AGENTS_LANGUAGE, "agents_reopened_by_user", ticket=ticket.id),
        card_buttons(texts, ticket) if to == OPEN else ()))
    add_to_ticket(turn, texts, ticket, text, suggestions)


def withdraw(turn: Turn, ticket: Ticket) -> None:
    record(turn.repo, ticket, ticket.status, CLOSED, _user(turn), turn.now)
    ticket.context = {**ticket.context, "closed_by": "user", "close_reason": WITHDRAWN}


def record(repo: Repository, ticket: Ticket, from_status: str | None, to_status: str,
           who: str, now: datetime, why: str | None = None) -> None:
    """Change a ticket's status and log the change (`why`: DONE, REFUSED, NOT_SOLVED)."""
    ticket.status = to_status
    repo.log_ticket(ticket, who, now, from_status=from_status, to_status=to_status, text=why)


def _user(turn: Turn) -> str:
    return f"user:{turn.user.id}"


def _agent_who(agent: Agent) -> str:
    return f"agent:{agent.id}"


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
              [Button(texts.say(turn.language, "button_skip_comment"), f"nocomment|{ticket.id}")])
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
    owner = turn.repo.agent_by_id(ticket.agent_id)
    turn.replies.append(NotifyAgents(ticket.id, texts.say(
        AGENTS_LANGUAGE, "agents_not_solved", ticket=ticket.id,
        agent=(owner.pseudonym or owner.name) if owner else ""),
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
              [Button(texts.say(turn.language, "button_menu"), "menu")])


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
    turn.replies.append(NotifyAgents(ticket.id, texts.say(
        AGENTS_LANGUAGE, "agents_rating_comment", ticket=ticket.id, rating=ticket.rating,
        text=text)))
    turn.send(texts.say(turn.language, "rating_comment_thanks"),
              [Button(texts.say(turn.language, "button_menu"), "menu")])
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
                        question=ticket.question))


# The agents' side -----------------------------------------------------------------------


class AgentDesk:
    """One agent event: the agents' chat acting on tickets. Returns the replies (to the
    agents' chat, and to users for answers and ratings requests)."""

    def __init__(self, repo: Repository, texts: Texts, now: datetime,
                 searcher: SearchBackend | None = None):
        self.repo, self.texts, self.now, self.searcher = repo, texts, now, searcher
        self.replies: list[Reply] = []

    def handle(self, event: AgentEvent) -> list[Reply]:
        if isinstance(event, AnonymousAgentMessage):
            self._refuse_anonymous(event)
            return self.replies
        if isinstance(event, AgentButtonPressed):
            action, _, number = event.data.partition("|")
            command = AgentCommand(event.agent, action, "",
                                   int(number) if number.isdigit() else None)
            return self.handle(command)
        ticket_id, args = event.ticket_id, getattr(event, "args", "")
        if isinstance(event, AgentCommand) and ticket_id is None and \
                (numbered := _NUMBERED.match(args.strip())):
            ticket_id, args = int(numbered.group(1)), numbered.group(2)
        name = event.name.lower() if isinstance(event, AgentCommand) else ""
        won = False
        if name == "take" and ticket_id is not None:
            # First statement of the transaction: two agents taking at once, one wins.
            won = self.repo.take_ticket(ticket_id, event.agent.id)
        agent = self.repo.agent(event.agent)
        if isinstance(event, AgentText):
            if ticket_id is not None:  # other talk in the agents' chat is not ours
                self._answer(agent, ticket_id, event.text.strip(), event.attachment)
        elif name == "myname":
            self._set_pseudonym(agent, args.strip())
        elif name == "queue":
            self._queue()
        elif name == "stats":
            self._stats()
        elif name == "find":
            self._find(args.strip(), self.repo.ticket(ticket_id))
        elif name in ("take", "resolve", "done", "refuse", "reopen", "note", "ignore",
                      "unignore"):
            ticket = self.repo.ticket(ticket_id)
            if ticket_id is None:
                self._to_chat("agents_no_ticket", command=name)
            elif ticket is None:
                self._to_chat("agents_unknown_ticket", ticket=ticket_id)
            elif name == "take":
                self._take(agent, ticket, won)
            elif name == "resolve":
                self._resolve(agent, ticket)
            elif name == "done":
                self._done(agent, ticket)
            elif name == "refuse":
                self._refuse(agent, ticket, args.strip())
            elif name == "reopen":
                self._reopen(agent, ticket)
            elif name in ("ignore", "unignore"):
                self._ignore(agent, ticket, name == "ignore")
            else:
                self._note(agent, ticket, args.strip())
        else:
            self._to_chat("agents_help")
        return self.replies

    def _say(self, key: str, **values: Any) -> str:
        return self.texts.say(AGENTS_LANGUAGE, key, **values).strip()

    def _to_chat(self, key: str, **values: Any) -> None:
        self.replies.append(AgentsText(self._say(key, **values)))

    def _to_ticket(self, ticket: Ticket, key: str, buttons: tuple[Button, ...] = (),
                   **values: Any) -> None:
        self.replies.append(NotifyAgents(ticket.id, self._say(key, ticket=ticket.id, **values),
                                         buttons))

    def _to_user(self, ticket: Ticket, key: str, ask_rating: bool = False,
                 **values: Any) -> None:
        """Tell the ticket's user, in their language (with the rating keyboard). The
        template may name the request: `title`."""
        user = self.repo.session.get_one(User, ticket.user_id)
        text = self.texts.say(user.language, key, ticket=ticket.id,
                              title=request_title(ticket, user.language), **values)
        buttons = rating_buttons(self.texts, user.language, ticket.id) if ask_rating else ()
        self.replies.append(SendText(user.id, text, buttons))
        self.repo.add_message(user.id, "out", html_to_plain(text))

    def _copy_to_user(self, ticket: Ticket, attachment: Attachment, name: str,
                      caption: str) -> None:
        """The agent's attachment goes to the user as a copy, its caption signed like a
        text answer. A caption holds 1024 characters: a longer one goes right after the
        attachment, as a message of its own (the same chat keeps them in order)."""
        user = self.repo.session.get_one(User, ticket.user_id)
        signed = self.texts.say(user.language, "agent_reply", name=name, ticket=ticket.id,
                                text=caption)
        if telegram_length(html_to_plain(signed)) <= CAPTION_LIMIT:
            self.replies.append(CopyToUser(user.id, attachment, signed))
        else:
            self.replies += [CopyToUser(user.id, attachment), SendText(user.id, signed)]
        label = attachment_label(self.texts, user.language, attachment)
        self.repo.add_message(user.id, "out", f"{label} {html_to_plain(signed)}")

    def _name(self, agent: Agent) -> str:
        return agent.pseudonym or agent.name or f"id {agent.id}"

    def _set_pseudonym(self, agent: Agent, pseudonym: str) -> None:
        if not pseudonym or len(pseudonym) > 64:
            self._to_chat("agents_pseudonym_usage", pseudonym=agent.pseudonym)
            return
        agent.pseudonym = pseudonym
        self._to_chat("agents_pseudonym_set", pseudonym=pseudonym)

    def _take(self, agent: Agent, ticket: Ticket, won: bool) -> None:
        if won:
            self.repo.log_ticket(ticket, _agent_who(agent), self.now, from_status=OPEN,
                                 to_status=CLAIMED)
            self._to_ticket(ticket, "agents_taken", agent=self._name(agent))
        elif ticket.agent_id == agent.id and ticket.status in OPEN_TICKET_STATUSES:
            self._to_ticket(ticket, "agents_already_yours", agent=self._name(agent))
        elif ticket.agent_id is not None and ticket.status in OPEN_TICKET_STATUSES:
            owner = self.repo.agent_by_id(ticket.agent_id)
            self._to_ticket(ticket, "agents_taken_by_other", agent=self._name(agent),
                            owner=self._name(owner) if owner else f"id {ticket.agent_id}")
        else:
            self._to_ticket(ticket, "agents_not_takeable", status=ticket.status)

    def _answer(self, agent: Agent, ticket_id: int, text: str,
                attachment: Attachment | None = None) -> None:
        """An agent's answer (a text, or an attachment with its caption `text`) goes to
        the user signed with the agent's pseudonym."""
        ticket = self.repo.ticket(ticket_id)
        if ticket is None:
            self._to_chat("agents_unknown_ticket", ticket=ticket_id)
            return
        if attachment is not None and attachment.kind not in RELAYED_ATTACHMENTS:
            self._to_ticket(ticket, "agents_attachment_not_relayed",
                            kind=attachment_label(self.texts, AGENTS_LANGUAGE, attachment))
            return
        if not agent.pseudonym:
            self._to_ticket(ticket, "agents_need_pseudonym", agent=agent.name or agent.id)
            return
        if ticket.status == CLOSED:
            self._to_ticket(ticket, "agents_ticket_closed")
            return
        if not text and attachment is None:
            return
        who = _agent_who(agent)
        if ticket.status == OPEN:  # answering an untaken ticket takes it
            ticket.agent_id = agent.id
            record(self.repo, ticket, OPEN, CLAIMED, who, self.now)
        if ticket.status == CLAIMED:
            record(self.repo, ticket, CLAIMED, WAITING_USER, who, self.now)
        if attachment is None:
            self.repo.log_ticket(ticket, who, self.now, kind="reply", text=text)
            self._to_user(ticket, "agent_reply", name=agent.pseudonym, text=text)
            return
        label = attachment_label(self.texts, AGENTS_LANGUAGE, attachment)
        self.repo.log_ticket(ticket, who, self.now, kind="reply", text=f"{label} {text}".strip())
        self._copy_to_user(ticket, attachment, agent.pseudonym, text)

    def _refuse_anonymous(self, event: AnonymousAgentMessage) -> None:
        """An anonymous admin's (or a channel's) answer or command is not acted on: the
        desk signs answers with the agent's pseudonym and counts who did what, and here
        there is nobody to name. The chat is told why; other talk is left alone."""
        if event.ticket_id is None and event.command is None:
            return
        key = "agents_channel_refused" if event.channel else "agents_anonymous_refused"
        text = self._say(key, channel=event.channel, command=event.command)
        ticket = self.repo.ticket(event.ticket_id)
        self.replies.append(NotifyAgents(ticket.id, text) if ticket else AgentsText(text))

    def _resolve(self, agent: Agent, ticket: Ticket) -> None:
        if ticket.status not in OPEN_TICKET_STATUSES:
            self._to_ticket(ticket, "agents_already_resolved", status=ticket.status)
            return
        self._close_work(agent, ticket)
        self._to_user(ticket, "rate_request", ask_rating=True)
        self._to_ticket(ticket, "agents_resolved", agent=self._name(agent))

    def _close_work(self, agent: Agent, ticket: Ticket, why: str | None = None) -> None:
        """Resolve the ticket (the resolver owns it if nobody did); the rating comes next."""
        if ticket.agent_id is None:
            ticket.agent_id = agent.id
        record(self.repo, ticket, ticket.status, RESOLVED, _agent_who(agent), self.now, why)

    def _decidable(self, ticket: Ticket, command: str) -> bool:
        """Only a typed request still being worked on can be done or refused."""
        if not is_request(ticket):
            self._to_ticket(ticket, "agents_not_a_request", command=command)
        elif ticket.status not in OPEN_TICKET_STATUSES:
            self._to_ticket(ticket, "agents_already_resolved", status=ticket.status)
        else:
            return True
        return False

    def _done(self, agent: Agent, ticket: Ticket) -> None:
        """The request was fulfilled: the user is told which one, and asked for a rating."""
        if not self._decidable(ticket, "done"):
            return
        self._close_work(agent, ticket, DONE)
        self._to_user(ticket, "request_done", ask_rating=True)
        self._to_ticket(ticket, "agents_done", agent=self._name(agent))

    def _refuse(self, agent: Agent, ticket: Ticket, reason: str) -> None:
        """The request is refused, always with a reason: the user reads it signed with the
        agent's pseudonym, like an answer, then is asked for a rating. The button only
        tells the agent how to give the reason."""
        if not self._decidable(ticket, "refuse"):
            return
        if not reason:
            self._to_ticket(ticket, "agents_refuse_usage", agent=self._name(agent))
            return
        if not agent.pseudonym:
            self._to_ticket(ticket, "agents_need_pseudonym", agent=agent.name or agent.id)
            return
        self._close_work(agent, ticket, REFUSED)
        self.repo.log_ticket(ticket, _agent_who(agent), self.now, kind="reply", text=reason)
        self._to_user(ticket, "agent_reply", name=agent.pseudonym, text=reason)
        self._to_user(ticket, "request_refused", ask_rating=True)
        self._to_ticket(ticket, "agents_refused", agent=self._name(agent), reason=reason)

    def _reopen(self, agent: Agent, ticket: Ticket) -> None:
        if ticket.status not in (RESOLVED, CLOSED):
            self._to_ticket(ticket, "agents_not_reopenable", status=ticket.status)
            return
        other = self.repo.open_ticket(ticket.user_id)
        if other is not None:
            self._to_ticket(ticket, "agents_user_has_other_ticket", other=other.id)
            return
        ticket.agent_id = agent.id
        record(self.repo, ticket, ticket.status, CLAIMED, _agent_who(agent), self.now)
        self._to_ticket(ticket, "agents_reopened", agent=self._name(agent))
        self._to_user(ticket, "ticket_reopened_for_user")

    def _ignore(self, agent: Agent, ticket: Ticket, ignore: bool) -> None:
        """/ignore: the ticket's user (a spammer) is no longer relayed: their ticket closes
        and no new one opens (the bot still answers them). /unignore undoes it."""
        user = self.repo.session.get_one(User, ticket.user_id)
        user.ignored = ignore
        if ignore and ticket.status in OPEN_TICKET_STATUSES:
            record(self.repo, ticket, ticket.status, CLOSED, _agent_who(agent), self.now)
            ticket.context = {**ticket.context, "closed_by": _agent_who(agent),
                              "close_reason": "ignored"}
        self._to_ticket(ticket, "agents_ignored" if ignore else "agents_unignored",
                        agent=self._name(agent))

    def _note(self, agent: Agent, ticket: Ticket, text: str) -> None:
        if not text:
            self._to_chat("agents_note_usage")
            return
        self.repo.log_ticket(ticket, _agent_who(agent), self.now, kind="note", text=text)
        self._to_ticket(ticket, "agents_note_saved")

    def _find(self, question: str, ticket: Ticket | None) -> None:
        """/find <question>: the knowledge base's best articles, to answer with a link."""
        if not question:
            self._to_chat("agents_find_usage")
            return
        hits: list[dict[str, Any]] = []
        if self.searcher is not None:
            try:
                result = self.searcher.search(question, language=AGENTS_LANGUAGE)
                hits = [{"title": h.article.title, "path": h.article.path,
                         "score": f"{h.score:.2f}"} for h in result.hits[:3]]
            except Exception:  # a broken index must not break the agents' chat
                hits = []
        text = self._say("agents_find", question=question, hits=hits)
        self.replies.append(NotifyAgents(ticket.id, text) if ticket else AgentsText(text))

    def _stats(self) -> None:
        """/stats: today, 7 and 30 days: opened, solved, median first response and
        resolution times, the average rating (all counted from the ticket log)."""
        periods = []
        month = ticket_timings(self.repo, self.now - timedelta(days=30))
        for label, days in (("сегодня", 1), ("7 дней", 7), ("30 дней", 30)):
            since = self.now - timedelta(days=days)
            timings = [t for t in month if t.created >= since]
            first, solved = _spans(timings)
            ratings = [t.ticket.rating for t in timings if t.ticket.rating]
            periods.append({
                "label": label, "opened": len(timings), "solved": len(solved),
                "first": _median(first), "resolution": _median(solved),
                "rating": f"{sum(ratings) / len(ratings):.1f}" if ratings else "—",
                "rated": len(ratings)})
        self._to_chat("agents_stats", periods=periods, open=len(self.repo.queue()))

    def _queue(self) -> None:
        tickets = self.repo.queue()
        if not tickets:
            self._to_chat("agents_queue_empty")
            return
        items = []
        for ticket in tickets:
            owner = self.repo.agent_by_id(ticket.agent_id)
            user = ticket.context.get("user") or {}
            items.append({"id": ticket.id, "status": ticket.status,
                          "agent": self._name(owner) if owner else "",
                          "user": user.get("name") or ticket.user_id,
                          "waiting": waited(ticket.created_at, self.now),
                          "question": _short(ticket.question)})
        self._to_chat("agents_queue", items=items)


def attachment_label(texts: Texts, language: str, attachment: Attachment) -> str:
    """`[фото]`, `[документ scan.pdf]`: an attachment in a history or a ticket's log."""
    return texts.say(language, "attachment", kind=attachment.kind,
                     file_name=attachment.file_name).strip()


def reminders(repo: Repository, texts: Texts, now: datetime, untaken: timedelta,
              waiting: timedelta, rating_window: timedelta = timedelta(days=3)) -> list[Reply]:
    """Raise again, in the agents' chat, a ticket nobody took for `untaken`, or whose user
    waits for an answer (status `claimed`: the agent's turn) for `waiting`. One reminder
    per interval: the next one only after another full interval (logged as "reminder"
    events, so a restart neither forgets nor repeats them). A resolved ticket the user
    did not rate within `rating_window` is closed (by "bot": timed out, no rating)."""
    replies: list[Reply] = []
    for ticket in repo.tickets_with_status(RESOLVED):
        changes = [e for e in repo.ticket_log(ticket.id) if e.kind == "status"]
        if changes and now - as_utc(changes[-1].at) >= rating_window:
            record(repo, ticket, RESOLVED, CLOSED, "bot", now)
    for ticket in repo.queue():
        limit = {OPEN: untaken, CLAIMED: waiting}.get(ticket.status)
        if limit is None:
            continue
        log = repo.ticket_log(ticket.id)
        since = _in_status_since(ticket, log)
        reminded = [as_utc(e.at) for e in log if e.kind == "reminder" and as_utc(e.at) >= since]
        if now - max([since, *reminded]) < limit:
            continue
        repo.log_ticket(ticket, "bot", now, kind="reminder")
        if ticket.status == OPEN:
            replies.append(NotifyAgents(ticket.id, texts.say(
                AGENTS_LANGUAGE, "agents_remind_untaken", ticket=ticket.id,
                waited=waited(since, now)), card_buttons(texts, ticket)))
        else:
            owner = repo.agent_by_id(ticket.agent_id)
            replies.append(NotifyAgents(ticket.id, texts.say(
                AGENTS_LANGUAGE, "agents_remind_waiting", ticket=ticket.id,
                waited=waited(since, now),
                agent=(owner.pseudonym or owner.name) if owner else "")))
    return replies


def _in_status_since(ticket: Ticket, log: list[TicketEvent]) -> datetime:
    """When the ticket entered its current status (from its log)."""
    changes = [e for e in log if e.kind == "status"]
    return as_utc(changes[-1].at if changes else ticket.created_at)


DIGEST_LIST_LIMIT = 10  # tickets listed per part of the digest: one Telegram message


def daily_digest(repo: Repository, texts: Texts, now: datetime, hour: int | None,
                 zone: tzinfo) -> list[Reply]:
    """The agents' daily digest, posted on the first Tick at or after `hour` o'clock local
    time (`zone`): a bot that was down then posts it when it is back, the same day. It
    says what is open, by state; the untaken tickets and those whose user waits for an
    answer, longest waiting first; and yesterday's opened, solved and ratings. The day is
    claimed in the database in the transaction that posts it, so the digest goes out
    exactly once a day across restarts and processes. `hour` None: no digest."""
    if hour is None:
        return []
    local = now.astimezone(zone)
    day = local.date().isoformat()
    if local.hour < hour or repo.digest_sent(day) or not repo.claim_digest(day, now):
        return []
    text = texts.say(AGENTS_LANGUAGE, "agents_digest", date=local.strftime("%d.%m.%Y"),
                     **_open_now(repo, now), yesterday=_yesterday(repo, local))
    return [AgentsText(text.strip())]


def _open_now(repo: Repository, now: datetime) -> dict[str, Any]:
    queue = repo.queue()
    since = {t.id: _in_status_since(t, repo.ticket_log(t.id)) for t in queue}

    def longest_waiting(status: str) -> list[dict[str, Any]]:
        tickets = sorted((t for t in queue if t.status == status), key=lambda t: since[t.id])
        return [_digest_item(repo, t, waited(since[t.id], now)) for t in tickets]

    untaken, waiting = longest_waiting(OPEN), longest_waiting(CLAIMED)
    return {"total": len(queue),
            "counts": {s: sum(t.status == s for t in queue) for s in OPEN_TICKET_STATUSES},
            "resolved": len(repo.tickets_with_status(RESOLVED)),
            "untaken": untaken[:DIGEST_LIST_LIMIT],
            "more_untaken": max(0, len(untaken) - DIGEST_LIST_LIMIT),
            "waiting": waiting[:DIGEST_LIST_LIMIT],
            "more_waiting": max(0, len(waiting) - DIGEST_LIST_LIMIT)}


def _digest_item(repo: Repository, ticket: Ticket, waiting: str) -> dict[str, Any]:
    owner = repo.agent_by_id(ticket.agent_id)
    user = ticket.context.get("user") or {}
    return {"id": ticket.id, "agent": (owner.pseudonym or owner.name) if owner else "",
            "user": user.get("name") or ticket.user_id, "waiting": waiting,
            "question": _short(ticket.question)}


def _yesterday(repo: Repository, local: datetime) -> dict[str, Any]:
    """Yesterday, midnight to midnight in the desk's time zone: tickets opened, tickets
    solved (resolved at least once), ratings given (how many, average, low ones)."""
    today = datetime.combine(local.date(), time(), local.tzinfo)
    yesterday = datetime.combine(local.date() - timedelta(days=1), time(), local.tzinfo)
    start, end = yesterday.astimezone(UTC), today.astimezone(UTC)
    log = repo.ticket_events_between(start, end)
    ratings = [int(e.text) for e in log if e.kind == "rating" and (e.text or "").isdigit()]
    return {"opened": len(repo.tickets_opened_between(start, end)),
            "solved": len({e.ticket_id for e in log
                           if e.kind == "status" and e.to_status == RESOLVED}),
            "rated": len(ratings),
            "rating": f"{sum(ratings) / len(ratings):.1f}" if ratings else "—",
            "low": sum(r <= LOW_RATING for r in ratings)}


@dataclass(frozen=True)
class Timing:
    """A ticket with its time to the first agent answer and to the first resolution."""

    ticket: Ticket
    created: datetime
    first_answer: timedelta | None
    resolution: timedelta | None


def ticket_timings(repo: Repository, since: datetime) -> list[Timing]:
    """The tickets opened since `since`, timed from the ticket log."""
    timings = []
    for ticket in repo.tickets_since(since):
        created = as_utc(ticket.created_at)
        log = repo.ticket_log(ticket.id)
        replies = [as_utc(e.at) for e in log if e.kind == "reply"]
        resolved = [as_utc(e.at) for e in log if e.kind == "status" and e.to_status == RESOLVED]
        timings.append(Timing(ticket, created,
                              replies[0] - created if replies else None,
                              resolved[0] - created if resolved else None))
    return timings


def response_times(repo: Repository, since: datetime
                   ) -> tuple[list[timedelta], list[timedelta]]:
    """For tickets opened since `since`: times to the first agent answer, and to the
    first resolution (from the ticket log)."""
    return _spans(ticket_timings(repo, since))


def _spans(timings: list[Timing]) -> tuple[list[timedelta], list[timedelta]]:
    return ([t.first_answer for t in timings if t.first_answer is not None],
            [t.resolution for t in timings if t.resolution is not None])


def _median(durations: list[timedelta]) -> str:
    if not durations:
        return "—"
    return _duration(sorted(durations)[len(durations) // 2])


def waited(since: datetime, now: datetime) -> str:
    """How long since `since`, as agents read it at a glance: 5 мин, 2 ч 10 мин, 3 дн."""
    return _duration(now - as_utc(since))


def _duration(span: timedelta) -> str:
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} мин"
    if minutes < 24 * 60:
        return f"{minutes // 60} ч {minutes % 60} мин"
    return f"{minutes // (24 * 60)} дн"


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
