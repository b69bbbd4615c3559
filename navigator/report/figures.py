"""The report's figures for a period and the period before it, counted by the database:
each query aggregates (GROUP BY, window functions) and only the totals come back.

Tickets are counted by when they were opened, in the state they are in when the report
is made (a ticket opened on the last day and solved since counts as solved). What the
bot did on its own comes from the `self_service` log, hand-over reasons from the
tickets' opening; both are recorded since a given date (`Report.recorded_since`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from math import gcd
from typing import Any

from sqlalchemy import Connection, Table, and_, case, distinct, func, literal, select, union_all

from navigator.desk.states import NO_ANSWER, OPENING_REASONS
from navigator.desk.tickets import QUESTION
from navigator.report.period import Period
from navigator.report.sql import epoch, percentiles
from navigator.report.tickets import IGNORED, NOT_REQUESTS, SOLVED_OUTCOMES, WITHDRAWN
from navigator.store.models import (
    Agent,
    Message,
    SelfServiceEvent,
    Survey,
    SurveyAnswer,
    Ticket,
    TicketEvent,
)
from navigator.store.repository import OPEN_TICKET_STATUSES

HOUR = 3600
# Upper bounds of the speed buckets: under 1 h, 1-4 h, 4-8 h, 8-24 h, and over 24 h.
BUCKET_BOUNDS = (HOUR, 4 * HOUR, 8 * HOUR, 24 * HOUR)
LIST_LIMIT = 15  # rows in the lists (open tickets, unanswered questions)
COMMENTS_LIMIT = 8  # the latest comments: a sample to read, beside the ratings chart
NOW, BEFORE = 0, 1  # the `previous` column of the ticket facts


@dataclass(frozen=True)
class Spread:
    """How long something took, in seconds: how many, median, 90th percentile, and the
    counts per bucket (BUCKET_BOUNDS, then the rest)."""

    count: int = 0
    median: int | None = None
    p90: int | None = None
    buckets: tuple[int, ...] = (0, 0, 0, 0, 0)


@dataclass(frozen=True)
class SelfService:
    """What the bot did on its own: searches by decision, and what users did with them."""

    searches: int = 0
    answered: int = 0  # the bot answered with an article
    suggested: int = 0  # it offered a few articles to choose from
    escalated: int = 0  # it had nothing good enough and offered a person
    helped: int = 0  # «помогло» on an article (an answer, a suggestion or a menu's)
    not_helped: int = 0
    chosen: int = 0  # suggested articles users opened


@dataclass(frozen=True)
class Totals:
    """One period's figures."""

    conversations: int = 0  # people who wrote to the bot
    tickets: int = 0  # hand-overs to people, of every type
    questions: int = 0  # of them plain questions (the rest: typed requests)
    withdrawn: int = 0
    ignored: int = 0
    processed: int = 0  # of the requests: an agent answered or decided
    solved: int = 0  # of the requests: resolved (solved, done or refused)
    rated: int = 0  # tickets with a rating (a low one reopens the ticket: not solved)
    solved_rated: int = 0  # solved tickets with a rating: the rating response rate
    rating_sum: int = 0
    ratings: tuple[int, ...] = (0, 0, 0, 0, 0)  # how many 1s, 2s... 5s
    first_response: Spread = Spread()
    resolution: Spread = Spread()
    reasons: dict[str, int] = field(default_factory=dict)  # why opened ("" unknown)
    bot: SelfService = SelfService()

    @property
    def typed(self) -> int:
        return self.tickets - self.questions

    @property
    def requests(self) -> int:
        """Tickets the desk had to process: all but the withdrawn and the spam."""
        return self.tickets - self.withdrawn - self.ignored

    @property
    def mean_rating(self) -> float | None:
        return self.rating_sum / self.rated if self.rated else None


@dataclass(frozen=True)
class GroupFigures:
    """A row of a table by request type or by agent."""

    tickets: int = 0  # by type: requests; by agent: tickets they answered
    processed: int = 0
    solved: int = 0  # by agent: tickets they resolved
    rated: int = 0
    rating_sum: int = 0
    median_first_response: int | None = None  # by agent: where they answered first

    @property
    def mean_rating(self) -> float | None:
        return self.rating_sum / self.rated if self.rated else None


@dataclass(frozen=True)
class Group:
    name: str
    now: GroupFigures
    before: GroupFigures


@dataclass(frozen=True)
class OpenTicket:
    id: int
    type: str
    status: str
    agent: str
    opened: datetime
    waited: timedelta
    question: str


@dataclass(frozen=True)
class Day:
    """One day of the period, beside the same day of the period before."""

    day: date
    messages: int
    tickets: int
    messages_before: int
    tickets_before: int


@dataclass(frozen=True)
class Comment:
    ticket: int
    at: datetime
    rating: int | None
    text: str


@dataclass(frozen=True)
class Unanswered:
    """A question the bot could not answer (it escalated, or it went to people)."""

    question: str
    people: int
    last: datetime


@dataclass(frozen=True)
class SurveyScores:
    """Usefulness survey answers given in one period."""

    answered: int
    mean: float | None
    at_least_4: int  # answers of 4 or 5
    scores: list[int]  # answers of 1, 2, 3, 4, 5


@dataclass(frozen=True)
class SurveyFigures:
    """The usefulness survey in the report: the answers given in the period (and in the
    one before), how many people were asked in it, the latest comments."""

    now: SurveyScores
    before: SurveyScores
    asked: int
    comments: list[tuple[datetime, int, str]]  # (when, score, comment), latest first


@dataclass(frozen=True)
class Report:
    period: Period
    made: datetime
    now: Totals
    before: Totals
    by_type: list[Group]
    by_agent: list[Group]
    open_tickets: list[OpenTicket]
    open_total: int
    days: list[Day]
    heatmap: list[list[int]]  # [weekday Monday=0][local hour]: messages from users
    comments: list[Comment]
    unanswered: list[Unanswered]
    # When the engine began recording what some figures need: {"self_service": ...,
    # "reasons": ...}; None: nothing recorded yet.
    recorded_since: dict[str, datetime | None]
    # What typed requests are called: {type: {language: its flow's title}}.
    type_titles: dict[str, dict[str, str]] = field(default_factory=dict)
    # The usefulness survey (the programme's first number); None: none was ever started.
    survey: SurveyFigures | None = None


def count_figures(connection: Connection, facts: Table, period: Period,
                  made: datetime) -> Report:
    """Every figure of the report, from the ticket facts (navigator.report.tickets) and
    the store, as of `made`."""
    totals = _totals(connection, facts, period)
    days, heatmap = _when_people_write(connection, facts, period)
    open_tickets, open_total = _open_tickets(connection, period, made)
    return Report(
        period=period, made=made, now=totals[NOW], before=totals[BEFORE],
        by_type=_by_type(connection, facts), by_agent=_by_agent(connection, facts),
        open_tickets=open_tickets, open_total=open_total, days=days, heatmap=heatmap,
        comments=_comments(connection, facts),
        unanswered=_unanswered(connection, facts, period),
        recorded_since=_recorded_since(connection), type_titles=_type_titles(connection),
        survey=_survey(connection, period))


def _counted(facts: Table):  # -> ColumnElement[bool]
    """A request: not withdrawn, not spam."""
    return facts.c.outcome.is_(None) | facts.c.outcome.not_in(NOT_REQUESTS)


def _count_if(condition: Any):  # -> ColumnElement[int]
    return func.sum(case((condition, 1), else_=0))


def _buckets(column: Any) -> list[Any]:
    lower = 0
    columns = []
    for upper in BUCKET_BOUNDS:
        columns.append(_count_if(and_(column >= lower, column < upper)))
        lower = upper
    columns.append(_count_if(column >= lower))
    return columns


def _totals(connection: Connection, facts: Table, period: Period) -> dict[int, Totals]:
    f = facts.c
    counted = _counted(facts)
    solved = f.outcome.in_(SOLVED_OUTCOMES)
    columns = {
        "tickets": func.count(), "questions": _count_if(f.type == QUESTION),
        "withdrawn": _count_if(f.outcome == WITHDRAWN),
        "ignored": _count_if(f.outcome == IGNORED),
        "processed": _count_if(and_(counted, f.processed == 1)), "solved": _count_if(solved),
        "rated": _count_if(f.rating.is_not(None)),
        "solved_rated": _count_if(and_(solved, f.rating.is_not(None))),
        "rating_sum": func.coalesce(func.sum(f.rating), 0),
        **{f"rating_{n}": _count_if(f.rating == n) for n in range(1, 6)},
    }
    for name in ("first_response", "resolution"):
        columns[name] = _count_if(and_(counted, f[name].is_not(None)))
        for number, bucket in enumerate(_buckets(case((counted, f[name])))):
            columns[f"{name}_{number}"] = bucket
    found = {row.previous: row._mapping for row in connection.execute(
        select(f.previous, *(column.label(name) for name, column in columns.items()))
        .group_by(f.previous))}
    requests = select(facts).where(counted).subquery()
    speed = {name: percentiles(connection, requests, name, ["previous"], [50, 90])
             for name in ("first_response", "resolution")}
    reasons: dict[int, dict[str, int]] = defaultdict(dict)
    for previous, reason, count in connection.execute(
            select(f.previous, f.reason, func.count()).group_by(f.previous, f.reason)):
        known = reason if reason in OPENING_REASONS else ""
        reasons[previous][known] = reasons[previous].get(known, 0) + count
    bot = _self_service(connection, period)
    conversations = _conversations(connection, period)
    totals = {}
    for previous in (NOW, BEFORE):
        values = {name: int((found.get(previous) or {}).get(name) or 0) for name in columns}

        def spread(name: str, previous: int = previous,
                   values: dict[str, int] = values) -> Spread:
            quantiles = speed[name].get((previous,), {})
            return Spread(values[name], quantiles.get(50), quantiles.get(90),
                          tuple(values[f"{name}_{n}"] for n in range(len(BUCKET_BOUNDS) + 1)))

        totals[previous] = Totals(
            conversations=conversations.get(previous, 0),
            **{name: values[name] for name in ("tickets", "questions", "withdrawn", "ignored",
                                               "processed", "solved", "rated", "solved_rated",
                                               "rating_sum")},
            ratings=tuple(values[f"rating_{n}"] for n in range(1, 6)),
            first_response=spread("first_response"), resolution=spread("resolution"),
            reasons=reasons.get(previous, {}), bot=bot.get(previous, SelfService()))
    return totals


def _which_period(column: Any, period: Period):  # -> ColumnElement[int]
    return case((column < period.start, BEFORE), else_=NOW)


def _self_service(connection: Connection, period: Period) -> dict[int, SelfService]:
    log = SelfServiceEvent.__table__.c
    which = _which_period(log.at, period)
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for previous, kind, decision, count in connection.execute(
            select(which, log.kind, log.decision, func.count())
            .where(log.at >= period.previous().start, log.at < period.end)
            .group_by(which, log.kind, log.decision)):
        counts[previous][decision if kind == "search" else kind] = count
    return {previous: SelfService(
        searches=sum(c.get(d, 0) for d in ("answer", "suggest", "escalate")),
        answered=c.get("answer", 0), suggested=c.get("suggest", 0),
        escalated=c.get("escalate", 0), helped=c.get("helped", 0),
        not_helped=c.get("not_helped", 0), chosen=c.get("chosen", 0))
        for previous, c in counts.items()}


def _conversations(connection: Connection, period: Period) -> dict[int, int]:
    """People who wrote to the bot, per period."""
    messages = Message.__table__.c
    which = _which_period(messages.created_at, period)
    return dict(connection.execute(
        select(which, func.count(distinct(messages.user_id)))
        .where(messages.direction == "in", messages.created_at >= period.previous().start,
               messages.created_at < period.end)
        .group_by(which)).all())


def _group_figures(row: Any) -> GroupFigures:
    return GroupFigures(*(int(v or 0) for v in row))


def _by_type(connection: Connection, facts: Table) -> list[Group]:
    """Requests, processed, solved, ratings and the median first response per type."""
    f = facts.c
    counted = _counted(facts)
    rows = connection.execute(select(
        f.previous, f.type, _count_if(counted), _count_if(and_(counted, f.processed == 1)),
        _count_if(f.outcome.in_(SOLVED_OUTCOMES)), _count_if(f.rating.is_not(None)),
        func.coalesce(func.sum(f.rating), 0),
    ).group_by(f.previous, f.type)).all()
    medians = percentiles(connection, select(facts).where(counted).subquery(),
                          "first_response", ["previous", "type"], [50])
    figures: dict[str, dict[int, GroupFigures]] = defaultdict(dict)
    for previous, type_, *values in rows:
        median = medians.get((previous, type_), {}).get(50)
        figures[type_][previous] = GroupFigures(*(int(v or 0) for v in values),
                                                median_first_response=median)
    return _groups(figures, lambda now: -now.tickets)


def _groups(figures: dict[str, dict[int, GroupFigures]], order: Any) -> list[Group]:
    groups = [Group(name, by.get(NOW, GroupFigures()), by.get(BEFORE, GroupFigures()))
              for name, by in figures.items()]
    return sorted(groups, key=lambda g: (order(g.now), g.name))


def _by_agent(connection: Connection, facts: Table) -> list[Group]:
    """Per agent (by pseudonym, never the account's name): the tickets they answered
    first and the median time of that first answer, the tickets whose resolution is
    theirs, and the mean rating of the tickets they had."""
    f = facts.c
    work: dict[int, dict[int, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for column, figure in ((f.responder, "tickets"), (f.resolver, "solved")):
        for previous, who, count in connection.execute(
                select(f.previous, column, func.count()).where(column.like("agent:%"))
                .group_by(f.previous, column)):
            if (agent := _agent_id(who)) is not None:
                work[agent][previous][figure] = count
    for previous, agent, rated, rating_sum in connection.execute(
            select(f.previous, f.agent_id, func.count(f.rating),
                   func.coalesce(func.sum(f.rating), 0))
            .where(f.agent_id.is_not(None)).group_by(f.previous, f.agent_id)):
        work[agent][previous].update(rated=rated, rating_sum=rating_sum)
    medians = percentiles(connection, facts, "first_response", ["previous", "responder"], [50])
    for (previous, who), found in medians.items():
        if (agent := _agent_id(who)) is not None:
            work[agent][previous]["median_first_response"] = found.get(50)
    # Only those who answered or resolved something: one who just took tickets did no
    # work to show (the ratings of their tickets stay in the totals).
    worked = [agent for agent, by in work.items()
              if any(v.get("tickets") or v.get("solved") for v in by.values())]
    names = _pseudonyms(connection, worked)
    return _groups({names[agent]: {previous: GroupFigures(**values)
                                   for previous, values in work[agent].items()}
                    for agent in worked}, lambda now: -(now.tickets + now.solved))


def _agent_id(who: str | None) -> int | None:
    prefix, _, number = (who or "").partition(":")
    return int(number) if prefix == "agent" and number.lstrip("-").isdigit() else None


def _pseudonyms(connection: Connection, agent_ids: list[int]) -> dict[int, str]:
    """The agents' pseudonyms; one without a pseudonym is "#1", "#2"... (an account's
    name never appears in the report)."""
    agents = Agent.__table__.c
    found = dict(connection.execute(
        select(agents.id, agents.pseudonym).where(agents.id.in_(agent_ids))).all()) \
        if agent_ids else {}
    names, unnamed = {}, 0
    for agent in sorted(agent_ids):
        if found.get(agent):
            names[agent] = found[agent]
        else:
            unnamed += 1
            names[agent] = f"#{unnamed}"
    return names


def _open_tickets(connection: Connection, period: Period, made: datetime
                  ) -> tuple[list[OpenTicket], int]:
    """Tickets opened before the period's end and still open, oldest first."""
    tickets, agents = Ticket.__table__.c, Agent.__table__.c
    still_open = and_(tickets.status.in_(OPEN_TICKET_STATUSES),
                      tickets.created_at < period.end)
    total = connection.execute(select(func.count()).where(still_open)).scalar_one()
    rows = connection.execute(
        select(tickets.id, tickets.type, tickets.status, agents.pseudonym, tickets.created_at,
               tickets.question)
        .select_from(Ticket.__table__.outerjoin(Agent.__table__, agents.id == tickets.agent_id))
        .where(still_open).order_by(tickets.created_at, tickets.id).limit(LIST_LIMIT))
    listed = []
    for number, type_, status, pseudonym, opened, question in rows:
        opened = _utc(opened)
        listed.append(OpenTicket(number, type_, status, pseudonym or "", opened,
                                 made - opened, question or ""))
    return listed, total


def _bucket_seconds(period: Period) -> int:
    """Group timestamps by the hour, or by the quarter hour where the desk's offset from
    UTC is not whole hours (India, Nepal...): a bucket must not straddle local midnight."""
    size = HOUR
    for day in [*period.previous().dates(), *period.dates(), period.last + timedelta(days=1)]:
        offset = datetime.combine(day, time(), period.zone).utcoffset()
        size = gcd(size, int(offset.total_seconds()) if offset else 0)
    return max(size, 60)


def _when_people_write(connection: Connection, facts: Table, period: Period
                       ) -> tuple[list[Day], list[list[int]]]:
    """Messages from users and tickets opened per local day (this period and the one
    before, day by day), and this period's messages by weekday and local hour. The
    database counts per hour (UTC); only the hourly counts are turned to local time."""
    size = _bucket_seconds(period)
    messages = Message.__table__.c
    bucket = epoch(messages.created_at) // size
    message_counts = connection.execute(
        select(bucket, func.count())
        .where(messages.direction == "in", messages.created_at >= period.previous().start,
               messages.created_at < period.end)
        .group_by(bucket)).all()
    ticket_bucket = facts.c.opened // size
    ticket_counts = connection.execute(
        select(ticket_bucket, func.count()).group_by(ticket_bucket)).all()
    per_day: dict[str, dict[date, int]] = {"messages": defaultdict(int),
                                           "tickets": defaultdict(int)}
    heatmap = [[0] * 24 for _ in range(7)]
    for name, counts in (("messages", message_counts), ("tickets", ticket_counts)):
        for number, count in counts:
            local = datetime.fromtimestamp(number * size, UTC).astimezone(period.zone)
            per_day[name][local.date()] += count
            if name == "messages" and local.date() >= period.first:
                heatmap[local.weekday()][local.hour] += count
    shift = timedelta(days=period.days)
    days = [Day(day, per_day["messages"][day], per_day["tickets"][day],
                per_day["messages"][day - shift], per_day["tickets"][day - shift])
            for day in period.dates()]
    return days, heatmap


def _comments(connection: Connection, facts: Table) -> list[Comment]:
    """The latest comments on ratings of this period's tickets."""
    events = TicketEvent.__table__.c
    rows = connection.execute(
        select(events.ticket_id, events.at, facts.c.rating, events.text)
        .join(facts, facts.c.id == events.ticket_id)
        .where(facts.c.previous == NOW, events.kind == "comment")
        .order_by(events.at.desc(), events.id.desc()).limit(COMMENTS_LIMIT))
    return [Comment(ticket, _utc(at), rating, text or "") for ticket, at, rating, text in rows]


def _survey(connection: Connection, period: Period) -> SurveyFigures | None:
    """The survey's answers by when they were given, whatever survey asked them."""
    if connection.execute(select(Survey.__table__.c.id).limit(1)).first() is None:
        return None
    answers = SurveyAnswer.__table__.c
    which = _which_period(answers.answered_at, period)
    counts: dict[int, list[int]] = {NOW: [0] * 5, BEFORE: [0] * 5}
    for previous, score, count in connection.execute(
            select(which, answers.score, func.count())
            .where(answers.answered_at >= period.previous().start,
                   answers.answered_at < period.end, answers.score.between(1, 5))
            .group_by(which, answers.score)):
        counts[previous][score - 1] = count

    def scores(of: list[int]) -> SurveyScores:
        answered = sum(of)
        mean = sum(n * (i + 1) for i, n in enumerate(of)) / answered if answered else None
        return SurveyScores(answered, mean, of[3] + of[4], of)

    asked = connection.scalar(select(func.count()).where(
        answers.asked_at >= period.start, answers.asked_at < period.end)) or 0
    comments = connection.execute(
        select(answers.answered_at, answers.score, answers.comment)
        .where(answers.answered_at >= period.start, answers.answered_at < period.end,
               answers.comment.is_not(None), answers.comment != "")
        .order_by(answers.answered_at.desc(), answers.id.desc()).limit(COMMENTS_LIMIT))
    return SurveyFigures(scores(counts[NOW]), scores(counts[BEFORE]), int(asked),
                         [(_utc(at), int(score or 0), text) for at, score, text in comments])


def _unanswered(connection: Connection, facts: Table, period: Period) -> list[Unanswered]:
    """The questions the bot could not answer, most people first: those its search
    escalated, and the questions handed over to people (asked for a person, or the
    answer did not help). The same person asking twice counts once. Identical text
    only, until the knowledge-gap clustering exists."""
    log, tickets = SelfServiceEvent.__table__.c, Ticket.__table__.c
    escalated = select(log.user_id, log.question.label("question"), log.at.label("at")) \
        .where(log.kind == "search", log.decision == "escalate",
               log.at >= period.start, log.at < period.end)
    handed_over = select(tickets.user_id, tickets.question.label("question"),
                         tickets.created_at.label("at")) \
        .join(facts, facts.c.id == tickets.id) \
        .where(facts.c.previous == NOW, tickets.type == QUESTION,
               # a ticket after an escalated search is that search's question again
               func.coalesce(facts.c.reason, literal("")) != NO_ANSWER)
    both = union_all(escalated, handed_over).subquery()
    people = func.count(distinct(both.c.user_id))
    last = func.max(both.c.at)
    rows = connection.execute(
        select(both.c.question, people, last).where(both.c.question != "")
        .group_by(both.c.question).order_by(people.desc(), last.desc()).limit(LIST_LIMIT))
    return [Unanswered(question, count, _utc(at)) for question, count, at in rows]


def _recorded_since(connection: Connection) -> dict[str, datetime | None]:
    log, events = SelfServiceEvent.__table__.c, TicketEvent.__table__.c
    self_service = connection.execute(select(func.min(log.at))).scalar()
    reasons = connection.execute(
        select(func.min(events.at)).where(events.kind == "status",
                                          events.from_status.is_(None),
                                          events.text.is_not(None))).scalar()
    return {"self_service": _utc(self_service) if self_service else None,
            "reasons": _utc(reasons) if reasons else None}


def _type_titles(connection: Connection) -> dict[str, dict[str, str]]:
    """What each typed request is called, from its newest ticket (the flow's title)."""
    tickets = Ticket.__table__.c
    newest = select(func.max(tickets.id)).where(tickets.type != QUESTION) \
        .group_by(tickets.type).scalar_subquery()
    return {type_: dict(context.get("request_title") or {}) for type_, context in
            connection.execute(select(tickets.type, tickets.context)
                               .where(tickets.id.in_(newest)))}


def _utc(moment: Any) -> datetime:
    """A timestamp from the database: naive from SQLite, aware from PostgreSQL; text
    when it went through a union (SQLite)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
