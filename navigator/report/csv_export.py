"""The period's tickets as CSV: one row per ticket opened in the period, UTF-8, times in
ISO 8601 with the desk's UTC offset, codes (status, outcome, type) as the store has
them, agents by pseudonym."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Table, func, select

from navigator.report.period import Period
from navigator.store.models import Agent, Message

COLUMNS = ("id", "desk", "type", "opened", "first_response", "resolved", "closed",
           "status", "outcome", "rating", "agent", "messages")


def write_csv(connection: Connection, facts: Table, period: Period, made: datetime,
              path: Path) -> int:
    """Write the tickets opened in `period` to `path`; returns how many. `messages`
    counts the user's private chat (their messages, the bot's and the agents' answers)
    from the ticket's opening until it was resolved (or withdrawn), or until `made`
    while it is open."""
    f, messages, agents = facts.c, Message.__table__.c, Agent.__table__.c
    message_count = select(func.count()).where(
        messages.user_id == f.user_id, messages.created_at >= f.opened_at,
        messages.created_at <= func.coalesce(f.settled_at, made)).scalar_subquery()
    query = select(f.id, f.desk, f.type, f.opened, f.first_response, f.resolution, f.closed,
                   f.status, f.outcome, f.rating, agents.pseudonym, message_count) \
        .select_from(facts.outerjoin(Agent.__table__, agents.id == f.agent_id)) \
        .where(f.previous == 0).order_by(f.id)
    zone = period.zone

    def local(seconds: int | None) -> str:
        """Unix seconds as local ISO 8601 with the offset ("" for none)."""
        return "" if seconds is None else \
            datetime.fromtimestamp(seconds, zone).isoformat(timespec="seconds")

    written = 0
    # The file first: a path that cannot be written fails before any query runs.
    with path.open("w", encoding="utf-8", newline="") as out, connection.execute(query) as rows:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for (number, desk, type_, opened, first_response, resolution, closed, status, outcome,
             rating, pseudonym, count) in rows:
            writer.writerow((
                number, "" if desk is None else desk, type_, local(opened),
                local(None if first_response is None else opened + first_response),
                local(None if resolution is None else opened + resolution), local(closed),
                status, outcome or "", "" if rating is None else rating, pseudonym or "",
                count))
            written += 1
    return written
