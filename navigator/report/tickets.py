"""What happened to each ticket of a report: one row per ticket opened in the period or
the one before it, computed once by the database from the ticket log into a temporary
table. Every figure about tickets aggregates that table, and the CSV lists it.

A ticket's outcome (its state when the report is made): "solved" (a question an agent
resolved), "done" or "refused" (a typed request decided), "withdrawn" (the user
cancelled it), "ignored" (an agent closed it as spam with /ignore), or NULL while it
is still being worked on. Withdrawn and ignored tickets are not requests the desk
could process or solve: the shares leave them out and show them apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    or_,
    select,
)

from navigator.desk.states import CLOSED, DONE, REFUSED, RESOLVED
from navigator.report.period import Period
from navigator.report.sql import epoch
from navigator.store.models import Ticket, TicketEvent
from navigator.store.repository import OPEN_TICKET_STATUSES

SOLVED, WITHDRAWN, IGNORED = "solved", "withdrawn", "ignored"
SOLVED_OUTCOMES = (SOLVED, DONE, REFUSED)
NOT_REQUESTS = (WITHDRAWN, IGNORED)


def _table() -> Table:
    return Table(
        "report_tickets", MetaData(),
        Column("id", Integer, primary_key=True),
        Column("previous", Integer, nullable=False),  # 1: opened in the period before
        Column("user_id", BigInteger, nullable=False),
        Column("type", String(32), nullable=False),
        Column("status", String(16), nullable=False),
        Column("outcome", String(16)),
        Column("reason", Text),  # why it was opened (desk.states.OPENING_REASONS)
        Column("rating", Integer),
        Column("agent_id", BigInteger),  # who has it (took, answered or resolved it)
        Column("responder", String(32)),  # who answered first: "agent:<id>"
        Column("resolver", String(32)),  # whose resolution it is (the last one)
        Column("desk", BigInteger),  # the agents' chat it went to
        Column("opened_at", DateTime(timezone=True), nullable=False),
        # Until when the user's chat belongs to the ticket: the last resolution, or the
        # closing of a withdrawn or spam ticket (NULL while open).
        Column("settled_at", DateTime(timezone=True)),
        Column("opened", BigInteger, nullable=False),  # Unix seconds
        Column("closed", BigInteger),  # Unix seconds, if closed
        # Seconds from opening to the first agent answer or decision, and to the first
        # resolution (done and refused resolve too).
        Column("first_response", BigInteger),
        Column("resolution", BigInteger),
        Column("processed", Integer, nullable=False),  # an agent answered or decided it
        prefixes=["TEMPORARY"],
    )


@contextmanager
def ticket_facts(connection: Connection, period: Period) -> Iterator[Table]:
    """The temporary table of the tickets opened in `period` and the one before it,
    dropped again when the block ends."""
    table = _table()
    table.create(connection)
    try:
        query = _facts_query(period)
        connection.execute(table.insert().from_select(list(query.selected_columns.keys()),
                                                      query))
        if connection.dialect.name == "postgresql":
            # Temporary tables are never analysed by autovacuum: without statistics the
            # planner guesses, and joins to the ticket log ran 5 times slower.
            connection.exec_driver_sql(f"ANALYZE {table.name}")
        yield table
    finally:
        table.drop(connection)


def _facts_query(period: Period):  # -> Select
    """One pass over the tickets and their log: each fact is an aggregate of the ticket's
    log entries; who answered first and whose the last resolution is are then looked up
    by primary key. (Joined to the log instead, PostgreSQL hashed the whole log for each:
    7 s for a year of 100,000 tickets, against 2 s.)"""
    tickets, events = Ticket.__table__, TicketEvent.__table__
    e = events.c
    status_change = e.kind == "status"
    resolving = and_(status_change, e.to_status == RESOLVED)
    # Closed straight from a working state, not after a resolution: by the user
    # (withdrawn) or by an agent (spam).
    cut_short = and_(status_change, e.to_status == CLOSED,
                     e.from_status.in_(OPEN_TICKET_STATUSES))
    per_ticket = select(
        tickets.c.id, tickets.c.user_id, tickets.c.type, tickets.c.status, tickets.c.rating,
        tickets.c.agent_id, tickets.c.agents_chat_id, tickets.c.created_at,
        func.min(case((e.kind == "reply", e.at))).label("first_reply_at"),
        func.min(case((e.kind == "reply", e.id))).label("first_reply_id"),
        func.min(case((resolving, e.at))).label("resolved_at"),
        func.max(case((resolving, e.at))).label("last_resolved_at"),
        func.max(case((resolving, e.id))).label("last_resolved_id"),
        func.max(case((and_(resolving, e.text == DONE), e.id))).label("done_id"),
        func.max(case((and_(resolving, e.text == REFUSED), e.id))).label("refused_id"),
        func.max(case((and_(cut_short, e.who.like("user:%")), e.id))).label("withdrawn_id"),
        func.max(case((and_(cut_short, e.who.not_like("user:%")), e.id))).label("ignored_id"),
        func.max(case((and_(status_change, e.to_status == CLOSED), e.at))).label("closed_at"),
        func.max(case((and_(status_change, e.from_status.is_(None)), e.text))).label("reason"),
    ).select_from(tickets.outerjoin(events, e.ticket_id == tickets.c.id)) \
        .where(tickets.c.created_at >= period.previous().start,
               tickets.c.created_at < period.end) \
        .group_by(tickets.c.id).subquery()
    t = per_ticket.c
    still_open = t.status.in_(OPEN_TICKET_STATUSES)
    after_resolution = func.coalesce(t.last_resolved_id, 0)
    withdrawn = and_(t.status == CLOSED, t.withdrawn_id > after_resolution)
    ignored = and_(t.status == CLOSED, t.ignored_id > after_resolution)
    outcome = case((still_open, None), (withdrawn, WITHDRAWN), (ignored, IGNORED),
                   (t.done_id == t.last_resolved_id, DONE),
                   (t.refused_id == t.last_resolved_id, REFUSED), else_=SOLVED)
    opened = epoch(t.created_at)
    reply, resolved = epoch(t.first_reply_at), epoch(t.resolved_at)
    first_response = case((t.first_reply_at.is_(None), resolved),
                          (t.resolved_at.is_(None), reply),
                          (reply <= resolved, reply), else_=resolved) - opened
    return select(
        t.id,
        case((t.created_at < period.start, 1), else_=0).label("previous"),
        t.user_id, t.type, t.status, outcome.label("outcome"), t.reason, t.rating,
        t.agent_id, _who(t.first_reply_id).label("responder"),
        _who(t.last_resolved_id).label("resolver"), t.agents_chat_id.label("desk"),
        t.created_at.label("opened_at"),
        case((still_open, None), (or_(withdrawn, ignored), t.closed_at),
             else_=t.last_resolved_at).label("settled_at"),
        opened.label("opened"),
        case((t.status == CLOSED, epoch(t.closed_at))).label("closed"),
        first_response.label("first_response"),
        (resolved - opened).label("resolution"),
        case((or_(t.first_reply_at.is_not(None), t.resolved_at.is_not(None), ignored), 1),
             else_=0).label("processed"),
    )


def _who(event_id: Any):  # -> ScalarSelect
    """Who wrote the ticket log entry `event_id`."""
    events = TicketEvent.__table__.c
    return select(events.who).where(events.id == event_id).scalar_subquery()
