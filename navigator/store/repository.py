"""What the engine reads and writes, in one transaction (see Store.transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from navigator.events import AgentRef, UserRef
from navigator.store.models import (
    Agent,
    Conversation,
    DailyJob,
    Digest,
    Message,
    SelfServiceEvent,
    Ticket,
    TicketEvent,
    User,
)

# Tickets in these states still belong to a person: the bot stays quiet.
OPEN_TICKET_STATUSES = ("open", "claimed", "waiting_user")
# Ticket ids are INTEGER: 32 bits in PostgreSQL. A bigger number (typed by an agent,
# forged in a button) is no ticket; the database would refuse it with an error.
MAX_TICKET_ID = 2**31 - 1


class Repository:
    def __init__(self, session: Session):
        self.session = session

    def user(self, ref: UserRef, default_language: str) -> User:
        """The user, created on first contact; name and username kept up to date."""
        user = self.session.get(User, ref.id)
        if user is None:
            user = User(id=ref.id, language=default_language)
            self.session.add(user)
        user.name = ref.name or user.name or ""
        user.username = ref.username or user.username
        user.language_code = ref.language_code or user.language_code
        return user

    def conversation(self, user_id: int) -> Conversation:
        conversation = self.session.get(Conversation, user_id)
        if conversation is None:
            conversation = Conversation(user_id=user_id, variables={}, trail=[], last_search={},
                                        stack=[])
            self.session.add(conversation)
        return conversation

    def add_message(self, user_id: int, direction: str, text: str,
                    at: datetime | None = None) -> Message:
        message = Message(user_id=user_id, direction=direction, text=text)
        if at is not None:
            message.created_at = at
        self.session.add(message)
        return message

    def recent_messages(self, user_id: int, limit: int) -> list[Message]:
        """The last `limit` messages of a user that still have their text, oldest first."""
        self.session.flush()
        rows = self.session.scalars(
            select(Message).where(Message.user_id == user_id, Message.text != "")
            .order_by(Message.id.desc()).limit(limit)
        ).all()
        return list(reversed(rows))

    def log_self_service(self, user_id: int, kind: str, at: datetime, *,
                         decision: str | None = None, question: str | None = None,
                         article_id: str | None = None, score: float | None = None) -> None:
        """Record what the bot did on its own (a search, "helped?", a suggestion chosen)."""
        self.session.add(SelfServiceEvent(user_id=user_id, kind=kind, decision=decision,
                                          question=question, article_id=article_id,
                                          score=score, at=at))
    def inbound_times(self, user_id: int, limit: int) -> list[datetime]:
        """When the user's last `limit` messages to the bot came, newest first."""
        self.session.flush()
        return list(self.session.scalars(
            select(Message.created_at).where(Message.user_id == user_id,
                                             Message.direction == "in")
            .order_by(Message.id.desc()).limit(limit)))

    def inbound_messages(self, user_id: int, first_id: int, last_id: int,
                         limit: int) -> list[Message]:
        """The user's messages to the bot with ids from `first_id` to `last_id`, oldest
        first, at most `limit` (the newest of them)."""
        self.session.flush()
        rows = self.session.scalars(
            select(Message).where(Message.user_id == user_id, Message.direction == "in",
                                  Message.id >= first_id, Message.id <= last_id)
            .order_by(Message.id.desc()).limit(limit)).all()
        return list(reversed(rows))

    def open_ticket(self, user_id: int) -> Ticket | None:
        return self.session.scalars(
            select(Ticket).where(Ticket.user_id == user_id,
                                 Ticket.status.in_(OPEN_TICKET_STATUSES))
            .order_by(Ticket.id.desc()).limit(1)
        ).first()

    def create_ticket(self, user_id: int, type_: str, question: str,
                      context: dict[str, Any]) -> Ticket:
        ticket = Ticket(user_id=user_id, type=type_, question=question, context=context,
                        status="open")
        self.session.add(ticket)
        self.session.flush()  # assigns the ticket number the user is told
        return ticket

    def tickets_of_type(self, type_: str) -> list[Ticket]:
        """Every ticket of a request type, oldest first (to refuse duplicate requests)."""
        return list(self.session.scalars(
            select(Ticket).where(Ticket.type == type_).order_by(Ticket.id)))

    def ticket_count(self, user_id: int) -> int:
        return self.session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.user_id == user_id)
        ) or 0

    # The desk ----------------------------------------------------------------------------

    def agent(self, ref: AgentRef) -> Agent:
        """The agent, created on their first action; name and username kept up to date."""
        agent = self.session.get(Agent, ref.id)
        if agent is None:
            agent = Agent(id=ref.id, name=ref.name or "")
            self.session.add(agent)
        agent.name = ref.name or agent.name or ""
        agent.username = ref.username or agent.username
        return agent

    def agent_by_id(self, agent_id: int | None) -> Agent | None:
        return self.session.get(Agent, agent_id) if agent_id is not None else None

    def ticket(self, ticket_id: int | None) -> Ticket | None:
        if ticket_id is None or not 0 < ticket_id <= MAX_TICKET_ID:
            return None
        return self.session.get(Ticket, ticket_id)

    def take_ticket(self, ticket_id: int, agent_id: int) -> bool:
        """Claim an open ticket for an agent, atomically: of two agents taking the same
        ticket at once exactly one gets True. Run it as the transaction's first statement
        (SQLite then waits for the other writer instead of failing on a stale snapshot)."""
        if not 0 < ticket_id <= MAX_TICKET_ID:
            return False
        result = self.session.execute(
            update(Ticket).where(Ticket.id == ticket_id, Ticket.status == "open",
                                 Ticket.agent_id.is_(None))
            .values(status="claimed", agent_id=agent_id)
            .execution_options(synchronize_session=False))
        return result.rowcount == 1

    def log_ticket(self, ticket: Ticket, who: str, at: datetime, *, kind: str = "status",
                   from_status: str | None = None, to_status: str | None = None,
                   text: str | None = None) -> None:
        self.session.add(TicketEvent(ticket_id=ticket.id, kind=kind, from_status=from_status,
                                     to_status=to_status, who=who, text=text, at=at))

    def ticket_log(self, ticket_id: int) -> list[TicketEvent]:
        self.session.flush()
        return list(self.session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
            .order_by(TicketEvent.id)))

    def queue(self) -> list[Ticket]:
        """Tickets that still belong to a person, oldest first."""
        return list(self.session.scalars(
            select(Ticket).where(Ticket.status.in_(OPEN_TICKET_STATUSES)).order_by(Ticket.id)))

    def newest_open_ticket(self) -> Ticket | None:
        return self.session.scalars(
            select(Ticket).where(Ticket.status.in_(OPEN_TICKET_STATUSES))
            .order_by(Ticket.id.desc()).limit(1)).first()

    def latest_ticket(self, user_id: int, status: str | None = None) -> Ticket | None:
        query = select(Ticket).where(Ticket.user_id == user_id)
        if status is not None:
            query = query.where(Ticket.status == status)
        return self.session.scalars(query.order_by(Ticket.id.desc()).limit(1)).first()

    def latest_ticket_of_anyone(self) -> Ticket | None:
        return self.session.scalars(select(Ticket).order_by(Ticket.id.desc()).limit(1)).first()

    def first_times_since(self, since: datetime, resolved: str
                          ) -> dict[int, tuple[datetime | None, datetime | None]]:
        """For tickets opened at or after `since`: when an agent first answered and
        when the ticket first became `resolved`, in one query (not one per ticket)."""
        self.session.flush()
        first_reply = func.min(case((TicketEvent.kind == "reply", TicketEvent.at)))
        first_resolved = func.min(case((and_(TicketEvent.kind == "status",
                                             TicketEvent.to_status == resolved),
                                        TicketEvent.at)))
        rows = self.session.execute(
            select(TicketEvent.ticket_id, first_reply, first_resolved)
            .join(Ticket, Ticket.id == TicketEvent.ticket_id)
            .where(Ticket.created_at >= since)
            .group_by(TicketEvent.ticket_id))
        return {ticket_id: (reply, done) for ticket_id, reply, done in rows}

    def tickets_since(self, since: datetime) -> list[Ticket]:
        """Tickets opened at or after `since` (withdrawn ones too), oldest first."""
        return list(self.session.scalars(
            select(Ticket).where(Ticket.created_at >= since).order_by(Ticket.id)))

    def tickets_with_folds(self) -> list[Ticket]:
        """Tickets holding messages of a flood the agents were not told about yet."""
        return list(self.session.scalars(
            select(Ticket).where(Ticket.folded > 0).order_by(Ticket.id)))

    def tickets_with_status(self, status: str) -> list[Ticket]:
        return list(self.session.scalars(
            select(Ticket).where(Ticket.status == status).order_by(Ticket.id)))

    def tickets_opened_between(self, start: datetime, end: datetime) -> list[Ticket]:
        """Tickets opened at or after `start` and before `end`, oldest first."""
        return list(self.session.scalars(
            select(Ticket).where(Ticket.created_at >= start, Ticket.created_at < end)
            .order_by(Ticket.id)))

    def ticket_events_between(self, start: datetime, end: datetime) -> list[TicketEvent]:
        """Every ticket's log entries at or after `start` and before `end`, in order."""
        self.session.flush()
        return list(self.session.scalars(
            select(TicketEvent).where(TicketEvent.at >= start, TicketEvent.at < end)
            .order_by(TicketEvent.id)))

    # The daily digest ---------------------------------------------------------------------

    def digest_sent(self, day: str) -> bool:
        return self.session.get(Digest, day) is not None

    def claim_digest(self, day: str, at: datetime) -> bool:
        """Mark the digest of `day` as posted. True if this call did it; False if it was
        already posted. Of two processes claiming at once exactly one gets True (the day
        is the primary key; the loser's insert does nothing)."""
        return self._claimed(self._insert(Digest).values(day=day, sent_at=at)
                             .on_conflict_do_nothing(index_elements=["day"])
                             .returning(Digest.day))

    def daily_job_done(self, job: str, day: str) -> bool:
        return self.session.get(DailyJob, (job, day)) is not None

    def claim_daily_job(self, job: str, day: str, at: datetime) -> bool:
        """Mark `job` as done for `day`: True if this call did it, False if it was done
        already (by this or another process), as `claim_digest`."""
        return self._claimed(self._insert(DailyJob).values(job=job, day=day, done_at=at)
                             .on_conflict_do_nothing(index_elements=["job", "day"])
                             .returning(DailyJob.job))

    def _claimed(self, insert: Any) -> bool:
        """Whether an insert that does nothing on conflict inserted its row. Read from
        RETURNING: psycopg reports no row count (-1) for INSERT … ON CONFLICT DO NOTHING."""
        return self.session.execute(insert).first() is not None

    def _insert(self, table: type[Any]) -> Any:
        dialect = self.session.get_bind().dialect.name
        return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
