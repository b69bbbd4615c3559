"""Tables. Conversation state lives here, not in process memory, so any process (or a
restarted one) continues every conversation where it was."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; everything stored here is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    """A person writing to the bot; `id` is their Telegram user id."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(256), default="")
    username: Mapped[str | None] = mapped_column(String(64))
    language_code: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="ru")
    # Set by an agent's /ignore (a spammer): the bot still answers, hands nothing over.
    ignored: Mapped[bool] = mapped_column(Boolean, default=False)
    # `/survey off`: never asked in a usefulness survey (`/survey on` undoes it).
    no_surveys: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last message over the flood limit (navigator.flood): a newer one within a
    # minute is the same flood episode, which gets one notice.
    flood_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the user asked /forgetme: the confirmation button works for a while after.
    forget_asked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class Conversation(Base):
    """Where a user is: current flow and step, what the bot waits for, what it last found."""

    __tablename__ = "conversations"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    flow_id: Mapped[str | None] = mapped_column(String(64))
    step_id: Mapped[str | None] = mapped_column(String(64))
    awaiting: Mapped[str | None] = mapped_column(String(32))
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    trail: Mapped[list[Any]] = mapped_column(default=list)
    last_search: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Frames of `call` steps: [{"flow": caller flow, "next": step to return to}, ...]
    stack: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class Message(Base):
    """Every message in or out of a private chat: the context a hand-over carries."""

    __tablename__ = "messages"
    # For the report: a ticket's messages by (user_id, created_at); who wrote when over a
    # period from (direction, created_at, user_id) alone, without reading the rows
    # (a year of 1,000,000 messages: 0.25 s of CPU instead of 0.8 s).
    __table_args__ = (Index("ix_messages_user_id_id", "user_id", "id"),
                      Index("ix_messages_user_id_created_at", "user_id", "created_at"),
                      Index("ix_messages_direction_created_at", "direction", "created_at",
                            "user_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))  # "in" (from the user) or "out"
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Ticket(Base):
    """A request handed over to the agents."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_user_id_status", "user_id", "status"),
                      Index("ix_tickets_agents_thread", "agents_chat_id", "agents_thread_id"),
                      Index("ix_tickets_created_at", "created_at"),
                      # Every minute's Tick looks for folded messages (navigator.desk.folding).
                      Index("ix_tickets_folded", "folded"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    type: Mapped[str] = mapped_column(String(32), default="question")
    question: Mapped[str] = mapped_column(Text, default="")
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Where the ticket lives in the agents' chat (set by the sender when it delivers the
    # card): a forum topic, or the card message that later messages reply to. An agent's
    # message in that topic, or a reply to the card, belongs to this ticket.
    agents_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    agents_thread_id: Mapped[int | None] = mapped_column(BigInteger)
    agents_card_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # The agent who took it (set on /take, or by answering an untaken ticket).
    agent_id: Mapped[int | None] = mapped_column(BigInteger)
    rating: Mapped[int | None] = mapped_column(Integer)  # the user's 1-5, once rated
    # A flooding user's messages not relayed one by one (navigator.desk.folding): how
    # many since the agents were last told, and the range of their message ids.
    folded: Mapped[int] = mapped_column(Integer, default=0)
    folded_from: Mapped[int | None] = mapped_column(Integer)
    folded_to: Mapped[int | None] = mapped_column(Integer)
    # When its texts were erased (the user's /forgetme, or older than the retention
    # period: navigator.erasure); the row and its numbers stay for the reports.
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class Agent(Base):
    """A volunteer in the agents' chat; `id` is their Telegram user id. Users see only the
    `pseudonym` (set with /myname), never the account's name."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(256), default="")
    username: Mapped[str | None] = mapped_column(String(64))
    pseudonym: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TicketEvent(Base):
    """The ticket's log: every status change (`kind` "status", with from/to, and in
    `text` why, when it says more than the statuses: "done", "refused", "not_solved";
    on the opening change, why the ticket was opened: "asked", "no_answer",
    "not_helped", "flow", see navigator.desk.states),
    every agent answer ("reply") and note ("note"), the user's rating ("rating", `text`
    the number) and its comment ("comment"), reminders ("reminder"), with who and when.
    First-response and resolution times, and who did what, are counted from here."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="status")
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    who: Mapped[str] = mapped_column(String(32))  # "user:<id>", "agent:<id>" or "bot"
    text: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SelfServiceEvent(Base):
    """What the bot did on its own, for the report: a search and its decision (`kind`
    "search", `decision` "answer", "suggest" or "escalate", with the best article and
    its score), the user's "helped" / "not_helped" on an article, and a suggested
    article the user chose ("chosen"). Ticket events cover what people did."""

    __tablename__ = "self_service"
    # The report counts a period by kind and decision from the index alone.
    __table_args__ = (Index("ix_self_service_at_kind", "at", "kind", "decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str | None] = mapped_column(String(16))
    question: Mapped[str | None] = mapped_column(Text)
    article_id: Mapped[str | None] = mapped_column(String(256))
    score: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Survey(Base):
    """A usefulness survey of the community (`navigator survey start`): one question,
    asked once of every user who talked to the bot since `since`. One is open at a time
    (`closed_at` None)."""

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SurveyAnswer(Base):
    """One person asked in a survey (at most once: the unique key), and their answer:
    a score 1-5 and an optional comment, once given."""

    __tablename__ = "survey_answers"
    __table_args__ = (UniqueConstraint("survey_id", "user_id"),
                      Index("ix_survey_answers_answered_at", "answered_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    asked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    score: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Digest(Base):
    """A daily digest posted to the agents' chat: one row per local day, written in the
    transaction that posts it, so a restarted or a second process never posts it again."""

    __tablename__ = "digests"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # local date: 2026-11-21
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxMessage(Base):
    """A reply the engine decided, waiting for (or past) its delivery.

    Written in the same transaction as the state change that caused it; the sender
    (navigator.outbox) delivers the rows of one `lane` (a chat) strictly in id order.
    Rows are never deleted: `status` is pending -> sending -> sent, or failed, or
    cancelled before it was sent (a newer copy superseded it, or its texts were erased).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_lane_id", "status", "lane", "id"),
        Index("ix_outbox_chat_message", "chat_id", "message_id"),
        Index("ix_outbox_ticket_id", "ticket_id"),
        Index("ix_outbox_lane_id", "lane", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lane: Mapped[str] = mapped_column(String(32))  # "user:<id>" or "agents"
    # "send_text", "copy_to_user", "notify_agents", "agents_text" or "delete_message"
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[float] = mapped_column(Float, default=0.0)  # unix time of the next try
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[float | None] = mapped_column(Float)
    # An earlier attempt was sent and never acknowledged (the process stopped mid-call):
    # this delivery may be a duplicate. The at-least-once window, made visible.
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    # 0: a live reply; 1: a broadcast (a survey), sent only from what live replies leave.
    priority: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)  # where it was delivered
    thread_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)  # Telegram's id of it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Replies that show the same thing again (a menu, a step) share a key: an unsent
    # older copy is cancelled when a newer one is written (navigator.outbox.enqueue).
    collapse_key: Mapped[str | None] = mapped_column(String(64))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class InboxUpdate(Base):
    """An update from Telegram, stored before Telegram is told it arrived.

    The transport commits the row and only then acknowledges the update (the next
    getUpdates offset, or the webhook's 200), so a crash never loses one; the engine marks
    it `handled` in the same transaction as the state change it caused, so a redelivered
    or replayed update is never handled twice (navigator.inbox).
    """

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_status_seq", "status", "seq"),
                      Index("ix_inbox_user_id", "user_id"))

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # arrival order
    update_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # handled, skipped, failed
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The user the update is from (a private chat) or about (an agent's message in a
    # ticket): what /forgetme erases.
    user_id: Mapped[int | None] = mapped_column(BigInteger)


class DailyJob(Base):
    """A job done once a day for the whole cluster (the retention of old texts): the row
    is claimed in the transaction that does the job, so no second process repeats it."""

    __tablename__ = "daily_jobs"

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # local date: 2026-11-21
    done_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
