"""Personal data: erasing what the bot keeps about a person.

What is kept, where and for how long is listed in the README ("Personal data"). Two
ways to erase it, one mechanism:

* `forget_user`: everything about one user, on their `/forgetme` (confirmed with a
  button: `ask`, `confirm`, `cancel`) or an operator's `navigator forget USER_ID`. Their
  messages, name, username, flow answers, the updates Telegram sent about them, the
  texts of their tickets (questions, the agents' answers and notes, rating comments)
  and of every outbox row to them or about their tickets. Their open tickets close
  with a note to the agents (no name in it).
* `erase_older_than`: the same texts of everyone, once older than the retention period
  (`NAVIGATOR_KEEP_MESSAGES_DAYS`), run once a day for the whole cluster by the Tick
  (`daily_retention`) and by `navigator forget-old`.

What stays are rows without words: tickets with their type, statuses, times, agent,
rating and outcome, and their log of status changes, so /stats and reports count the
same after an erasure. The user's numeric Telegram id stays on those rows (and the
user's row keeps the bot's language and the agents' /ignore): it names no one by
itself, and it keeps a one-time request (the airdrop) from being made twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import func, or_, select, update

from navigator import buttons
from navigator.desk.states import AGENTS_LANGUAGE, CLOSED, FORGOTTEN, record
from navigator.events import Button, NotifyAgents, Reply
from navigator.outbox import CANCELLED
from navigator.store import Repository
from navigator.store.models import (
    Conversation,
    InboxUpdate,
    Message,
    OutboxMessage,
    SelfServiceEvent,
    SurveyAnswer,
    Ticket,
    TicketEvent,
    User,
    as_utc,
)
from navigator.store.repository import OPEN_TICKET_STATUSES
from navigator.texts import Texts
from navigator.turn import Turn

log = logging.getLogger(__name__)

ERASED = ""  # what an erased text becomes
# Kinds of ticket log entries whose text is words (an answer, a note, a comment);
# status changes keep their outcome (done, refused...) and ratings their number.
WORDY_EVENTS = ("reply", "note", "comment")
# What of a ticket's context stays: what the bot tried (article titles and scores), the
# request's name, and how it was closed; the user's entry keeps only id and language.
KEPT_CONTEXT = ("tried", "request_title", "closed_by", "close_reason")
CONFIRM_WITHIN = timedelta(minutes=10)  # /forgetme's button works this long
RETENTION_JOB = "retention"


@dataclass
class Erased:
    """What an erasure changed (counts, for the command line and the log), and the
    replies it decided (the agents' notes about closed tickets)."""

    messages: int = 0
    tickets: int = 0
    closed: list[int] = field(default_factory=list)
    events: int = 0
    outbox: int = 0
    inbox: int = 0
    users: int = 0
    # Questions the bot searched and survey comments (what the report keeps), erased too:
    # counted apart, not in `summary`.
    searches: int = 0
    replies: list[Reply] = field(default_factory=list)

    def summary(self) -> str:
        return (f"messages {self.messages}, tickets {self.tickets} (closed now: "
                f"{len(self.closed)}), ticket log texts {self.events}, outbox rows "
                f"{self.outbox}, stored updates {self.inbox}, users' names {self.users}")


# One user --------------------------------------------------------------------------------


def describe_user(repo: Repository, user_id: int) -> str | None:
    """Who the user is, for an operator about to erase them ("Анна @anna, 3 tickets, 1
    open"); None if there is no such user."""
    user = repo.session.get(User, user_id)
    if user is None:
        return None
    name = " ".join(part for part in (user.name, f"@{user.username}" if user.username else "")
                    if part) or "no name"
    tickets = repo.ticket_count(user_id)
    opened = " (it will be closed)" if repo.open_ticket(user_id) else ""
    return f"{name}, {tickets} tickets, {1 if opened else 0} open{opened}"


def forget_user(repo: Repository, texts: Texts, user_id: int, now: datetime,
                who: str) -> Erased | None:
    """Erase everything stored about the user (None: no such user). `who` closes their
    open tickets ("user:<id>", or "operator" for the command line)."""
    user = repo.session.get(User, user_id)
    if user is None:
        return None
    repo.session.flush()
    erased = Erased(users=1)
    tickets = list(repo.session.scalars(select(Ticket).where(Ticket.user_id == user_id)))
    for ticket in tickets:
        if ticket.status in OPEN_TICKET_STATUSES:
            record(repo, ticket, ticket.status, CLOSED, who, now)
            ticket.context = {**ticket.context, "closed_by": who, "close_reason": FORGOTTEN}
            erased.closed.append(ticket.id)
            erased.replies.append(NotifyAgents(ticket.id, texts.say(
                AGENTS_LANGUAGE, "agents_user_forgotten", ticket=ticket.id).strip()))
    erased.messages = _rowcount(repo.session.execute(
        update(Message).where(Message.user_id == user_id, Message.text != ERASED)
        .values(text=ERASED)))
    erased.tickets, erased.events = _erase_tickets(repo, tickets, now)
    about_user = or_(OutboxMessage.user_id == user_id,
                     OutboxMessage.ticket_id.in_([t.id for t in tickets]))
    erased.outbox = _erase_outbox(repo, about_user, now) + \
        _erase_queue_lines(repo, texts, tickets)
    erased.inbox = _rowcount(repo.session.execute(
        update(InboxUpdate).where(InboxUpdate.user_id == user_id).values(payload={})))
    erased.searches = _erase_report_texts(repo, SelfServiceEvent.user_id == user_id,
                                          SurveyAnswer.user_id == user_id)
    _erase_user(repo, user)
    return erased


def _erase_report_texts(repo: Repository, searches: Any, answers: Any) -> int:
    """The words the report keeps: questions the bot searched (self_service) and survey
    comments; the counts and scores stay."""
    return _rowcount(repo.session.execute(
        update(SelfServiceEvent).where(searches, SelfServiceEvent.question.is_not(None),
                                       SelfServiceEvent.question != ERASED)
        .values(question=ERASED))) + _rowcount(repo.session.execute(
            update(SurveyAnswer).where(answers, SurveyAnswer.comment.is_not(None),
                                       SurveyAnswer.comment != ERASED)
            .values(comment=ERASED)))


def _erase_user(repo: Repository, user: User) -> None:
    user.name, user.username, user.language_code = ERASED, None, None
    user.flood_at = user.forget_asked_at = None
    conversation = repo.session.get(Conversation, user.id)
    if conversation is not None:
        conversation.flow_id = conversation.step_id = conversation.awaiting = None
        conversation.variables, conversation.trail, conversation.stack = {}, [], []
        conversation.last_search = {}


def _erase_tickets(repo: Repository, tickets: list[Ticket], now: datetime) -> tuple[int, int]:
    """Erase the tickets' texts and their log's words; returns how many tickets were
    erased (not erased before) and how many log entries."""
    fresh = sum(ticket.erased_at is None for ticket in tickets)
    for ticket in tickets:
        ticket.question = ERASED
        ticket.context = _kept_context(ticket.context)
        ticket.folded, ticket.folded_from, ticket.folded_to = 0, None, None
        ticket.erased_at = ticket.erased_at or now
    if not tickets:
        return 0, 0
    events = repo.session.execute(
        update(TicketEvent).where(TicketEvent.ticket_id.in_([t.id for t in tickets]),
                                  TicketEvent.kind.in_(WORDY_EVENTS),
                                  TicketEvent.text.is_not(None))
        .values(text=None))
    return fresh, _rowcount(events)


def _kept_context(context: dict[str, Any]) -> dict[str, Any]:
    user = context.get("user") or {}
    kept = {key: context[key] for key in KEPT_CONTEXT if key in context}
    return {"user": {"id": user.get("id"), "language": user.get("language")}, **kept}


def _erase_outbox(repo: Repository, which: Any, now: datetime) -> int:
    """Erase the payloads of the outbox rows `which` selects (not erased yet); those not
    sent yet are cancelled: an empty message cannot be sent, and should not be. A
    deletion (of a message that carried a secret) holds no text and still goes."""
    rows = repo.session.scalars(select(OutboxMessage).where(
        which, OutboxMessage.erased_at.is_(None),
        OutboxMessage.kind != "delete_message")).all()
    for row in rows:
        row.payload, row.erased_at = {"text": ERASED, "erased": True}, now
        if row.status == "pending":
            row.status, row.last_error = CANCELLED, "its text was erased (personal data)"
    return len(rows)


def _erase_queue_lines(repo: Repository, texts: Texts, tickets: list[Ticket]) -> int:
    """Posts to the agents' chat about many tickets (the queue, the digest) name each
    ticket's user and question on a line that starts with its number: those lines of
    these tickets are replaced."""
    ids = [t.id for t in tickets]
    first = repo.session.scalar(select(func.min(OutboxMessage.id)).where(
        OutboxMessage.ticket_id.in_(ids)))  # the first card: no post names them before
    if first is None:
        return 0
    line = re.compile(rf"^[№#]({'|'.join(map(str, ids))})(?!\d).*$", re.MULTILINE)
    changed = 0
    for row in repo.session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "agents_text", OutboxMessage.id > first,
            OutboxMessage.erased_at.is_(None))):
        text = row.payload.get("text") or ""
        scrubbed = line.sub(lambda m: texts.say(AGENTS_LANGUAGE, "agents_line_erased",
                                                ticket=m.group(1)).strip(), text)
        if scrubbed != text:
            row.payload = {**row.payload, "text": scrubbed}
            changed += 1
    return changed


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


# Everyone's old texts ------------------------------------------------------------------


def erase_older_than(repo: Repository, cutoff: datetime, now: datetime) -> Erased:
    """Erase the texts older than `cutoff`: messages, closed tickets whose last change is
    older, outbox rows delivered (or given up) before it, stored updates, and the names
    of users not seen since."""
    repo.session.flush()
    erased = Erased()
    erased.messages = _rowcount(repo.session.execute(
        update(Message).where(Message.created_at < cutoff, Message.text != ERASED)
        .values(text=ERASED)))
    tickets = list(repo.session.scalars(select(Ticket).where(
        Ticket.status == CLOSED, Ticket.updated_at < cutoff, Ticket.erased_at.is_(None))))
    erased.tickets, erased.events = _erase_tickets(repo, tickets, now)
    erased.outbox = _erase_outbox(repo, or_(
        OutboxMessage.ticket_id.in_([t.id for t in tickets]),
        (OutboxMessage.created_at < cutoff) &
        OutboxMessage.status.not_in(("pending", "sending"))), now)
    erased.inbox = _rowcount(repo.session.execute(
        update(InboxUpdate).where(InboxUpdate.received_at < cutoff,
                                  InboxUpdate.status != "pending")
        .values(payload={})))
    erased.searches = _erase_report_texts(repo, SelfServiceEvent.at < cutoff,
                                          SurveyAnswer.answered_at < cutoff)
    away = repo.session.scalars(
        select(User).join(Conversation, Conversation.user_id == User.id)
        .where(Conversation.updated_at < cutoff,
               or_(User.name != ERASED, User.username.is_not(None)))).all()
    for user in away:
        _erase_user(repo, user)
        erased.users += 1
    return erased


def daily_retention(repo: Repository, now: datetime, zone: tzinfo,
                    keep_days: int | None) -> list[Reply]:
    """On a Tick: once a day (the desk's local day) for the whole cluster, erase the
    texts older than `keep_days` (None: keep them)."""
    if not keep_days:
        return []
    day = now.astimezone(zone).date().isoformat()
    if repo.daily_job_done(RETENTION_JOB, day) or \
            not repo.claim_daily_job(RETENTION_JOB, day, now):
        return []
    erased = erase_older_than(repo, now - timedelta(days=keep_days), now)
    log.info("retention (%d days): erased %s", keep_days, erased.summary())
    return []


# The user's /forgetme ----------------------------------------------------------------------


def ask(turn: Turn, texts: Texts) -> None:
    """/forgetme: say what erasing means, with a button to confirm it (for a while)."""
    turn.user.forget_asked_at = turn.now
    ticket = turn.repo.open_ticket(turn.user.id)
    turn.send(texts.say(turn.language, "forget_confirm", ticket=ticket.id if ticket else None),
              [Button(texts.say(turn.language, "button_forget_yes"), buttons.forget(True)),
               Button(texts.say(turn.language, "button_forget_no"), buttons.forget(False))],
              collapse="forget")


def confirm(turn: Turn, texts: Texts) -> None:
    """The confirmation button: erase, if /forgetme was asked within CONFIRM_WITHIN (a
    second press of the same button finds nothing asked: it erases nothing again)."""
    asked = turn.user.forget_asked_at
    menu = buttons.menu(turn)
    if asked is None or turn.now - as_utc(asked) > CONFIRM_WITHIN:
        turn.send(texts.say(turn.language, "forget_outdated"), [menu])
        return
    erased = forget_user(turn.repo, texts, turn.user.id, turn.now, f"user:{turn.user.id}")
    if erased is not None:
        turn.replies.extend(erased.replies)
    turn.send(texts.say(turn.language, "forget_done"), [menu])


def cancel(turn: Turn, texts: Texts, back: list[Button]) -> None:
    """"Отмена": nothing is erased; `back` leads to where the user was (a flow)."""
    turn.user.forget_asked_at = None
    turn.send(texts.say(turn.language, "forget_cancelled"),
              [*back, buttons.menu(turn)])
