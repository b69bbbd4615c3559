"""How long tickets took, counted from the ticket log. (Durations in words, "12 мин":
the `duration` template, `{{ span | duration("ru") }}`.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from navigator.desk.states import RESOLVED
from navigator.store import Repository
from navigator.store.models import Ticket, as_utc


@dataclass(frozen=True)
class Timing:
    """A ticket with its time to the first agent answer and to the first resolution."""

    ticket: Ticket
    created: datetime
    first_answer: timedelta | None
    resolution: timedelta | None


def ticket_timings(repo: Repository, since: datetime) -> list[Timing]:
    """The tickets opened since `since`, timed from the ticket log."""
    firsts = repo.first_times_since(since, RESOLVED)
    timings = []
    for ticket in repo.tickets_since(since):
        created = as_utc(ticket.created_at)
        reply, resolved = firsts.get(ticket.id, (None, None))
        timings.append(Timing(ticket, created,
                              as_utc(reply) - created if reply else None,
                              as_utc(resolved) - created if resolved else None))
    return timings


def response_times(repo: Repository, since: datetime
                   ) -> tuple[list[timedelta], list[timedelta]]:
    """For tickets opened since `since`: times to the first agent answer, and to the
    first resolution (from the ticket log)."""
    return spans(ticket_timings(repo, since))


def spans(timings: list[Timing]) -> tuple[list[timedelta], list[timedelta]]:
    """The times to the first answer, and to the first resolution, of those that have one."""
    return ([t.first_answer for t in timings if t.first_answer is not None],
            [t.resolution for t in timings if t.resolution is not None])


def median(durations: list[timedelta]) -> timedelta | None:
    """The median duration (None if there is none)."""
    if not durations:
        return None
    return sorted(durations)[len(durations) // 2]


def waited(since: datetime, now: datetime) -> timedelta:
    """How long since `since`."""
    return now - as_utc(since)
