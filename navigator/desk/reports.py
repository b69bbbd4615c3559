"""What the desk tells the agents unasked: reminders of tickets left waiting (and the
closing of resolved tickets nobody rated), the daily digest and, once a week, the
report of the week."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from navigator.desk.states import CLAIMED, CLOSED, OPEN, RESOLVED, owner_name, record
from navigator.desk.tickets import AGENTS_LANGUAGE, LOW_RATING, card_buttons
from navigator.desk.timings import waited
from navigator.events import AgentsReport, AgentsText, NotifyAgents, Reply
from navigator.report.period import Period
from navigator.store import Repository
from navigator.store.models import Ticket, TicketEvent, as_utc
from navigator.store.repository import OPEN_TICKET_STATUSES
from navigator.telegram_html import excerpt
from navigator.texts import Texts


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
            replies.append(NotifyAgents(ticket.id, texts.say(
                AGENTS_LANGUAGE, "agents_remind_waiting", ticket=ticket.id,
                waited=waited(since, now), agent=owner_name(repo, ticket))))
    return replies


def _in_status_since(ticket: Ticket, log: list[TicketEvent]) -> datetime:
    """When the ticket entered its current status (from its log)."""
    changes = [e for e in log if e.kind == "status"]
    return as_utc(changes[-1].at if changes else ticket.created_at)


DIGEST_LIST_LIMIT = 10  # tickets listed per part of the digest: one Telegram message


def daily_digest(repo: Repository, texts: Texts, now: datetime, hour: int | None,
                 zone: ZoneInfo, report_weekday: int | None = None) -> list[Reply]:
    """The agents' daily digest, posted on the first Tick at or after `hour` o'clock local
    time (`zone`): a bot that was down then posts it when it is back, the same day. It
    says what is open, by state; the untaken tickets and those whose user waits for an
    answer, longest waiting first; and yesterday's opened, solved and ratings. On
    `report_weekday` (0 Monday … 6 Sunday; None: never) the report of the seven days
    before follows it as a file. The day is claimed in the database in the transaction
    that posts it, so the digest goes out exactly once a day across restarts and
    processes. `hour` None: no digest."""
    if hour is None:
        return []
    local = now.astimezone(zone)
    day = local.date().isoformat()
    if local.hour < hour or repo.digest_sent(day) or not repo.claim_digest(day, now):
        return []
    text = texts.say(AGENTS_LANGUAGE, "agents_digest", date=local.strftime("%d.%m.%Y"),
                     **_open_now(repo, now), yesterday=_yesterday(repo, local))
    replies: list[Reply] = [AgentsText(text.strip())]
    if local.weekday() == report_weekday:
        week = Period(local.date() - timedelta(days=7), local.date() - timedelta(days=1), zone)
        replies.append(report_reply(texts, week, "agents_report_weekly_caption"))
    return replies


def report_reply(texts: Texts, period: Period, caption: str) -> AgentsReport:
    """The report of `period` for the agents' chat, its caption from template `caption`."""
    return AgentsReport(period.first, period.last, period.zone.key, texts.say(
        AGENTS_LANGUAGE, caption, first=period.first.strftime("%d.%m.%Y"),
        last=period.last.strftime("%d.%m.%Y"), days=period.days).strip(), AGENTS_LANGUAGE)


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
    user = ticket.context.get("user") or {}
    return {"id": ticket.id, "agent": owner_name(repo, ticket),
            "user": user.get("name") or ticket.user_id, "waiting": waiting,
            "question": short(ticket.question)}


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


def short(text: str, limit: int = 80) -> str:
    """`text` on one line, cut to `limit` characters: a question in a list for agents."""
    return excerpt(" ".join(text.split()), limit)
