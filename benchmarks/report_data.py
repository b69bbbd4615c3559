"""The report on big data: a year of a busy desk generated into a database, then
`navigator report` (HTML and CSV) timed on it, several runs.

The generator writes what the bot itself writes (users, agents, tickets and their
log, the users' chats, the self-service log) with realistic shapes: more requests on
weekdays and evenings (local time), growth over the year, first answers in about 40
minutes with a long tail, ratings mostly 4-5 with a few low ones that reopen the
ticket, some withdrawn or spam tickets, recent tickets still open, and comments.

    python benchmarks/report_data.py --database-url sqlite:////tmp/report.db
    python benchmarks/report_data.py --database-url sqlite:////tmp/report.db --skip-generate
    python benchmarks/report_data.py --database-url postgresql+psycopg://me@127.0.0.1:5433/nav

Defaults: 100,000 tickets and 1,000,000 messages over 365 days; the report is timed
three times for the default period (the last 30 days) and three times for the whole
year (the worst case: every row is in the period or the one before), in wall-clock
seconds and in CPU seconds of this process (with SQLite that is all the work; on a
shared machine the wall clock mostly says how long it waited for a core). PostgreSQL
needs a driver: `pip install -e '.[postgresql]'`.

Measured 2026-11-25 on 2 shared cores: see the README (section "The report").
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from navigator.report import make_report, period_for
from navigator.store import Store
from navigator.store.models import (
    Agent,
    Message,
    SelfServiceEvent,
    Ticket,
    TicketEvent,
    User,
)

ZONE = ZoneInfo("Europe/Podgorica")
PSEUDONYMS = ["Мария", "Алексей", "Йована", "Марко", "Ольга", "Дмитрий", "Анна", "Игорь",
              "Милица", "Сергей", "Елена", "Никола"]
QUESTIONS = [
    "Как открыть линию доверия к EURMTL?", "Где купить MTLAP?", "Как вступить в Ассоциацию?",
    "Не приходит эйрдроп", "Как проголосовать в MTLA?", "Что такое DEX и как обменять токены?",
    "Как восстановить кошелёк по секретному ключу?", "Где найти устав Ассоциации?",
    "Почему не отображается баланс?", "Как получить дивиденды фонда MTLF?",
    "Можно ли оплатить взнос в евро?", "Как перевести токены другому участнику?",
    "Какая комиссия в сети Stellar?", "Где чат сообщества в Будве?",
    "Как стать рекомендателем?", "Не могу найти кнопку голосования",
]
COMMENTS = ["Спасибо, очень быстро!", "Помогли разобраться, благодарю.", "Долго ждал ответа.",
            "Всё понятно объяснили.", "Хотелось бы инструкцию с картинками.",
            "Отлично, вопрос решён.", "Ответили, но пришлось переспрашивать."]
TYPED = {"join": {"ru": "Вступление в Ассоциацию", "en": "Joining the association"},
         "airdrop": {"ru": "Эйрдроп для новичков", "en": "Newcomer airdrop"}}
HOUR_WEIGHTS = [1, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 2, 4, 6, 7, 7, 6, 6, 6, 6, 6, 7, 8, 9, 9, 8,
                5, 2]
BATCH = 20_000


def lognormal(median_seconds: float, sigma: float) -> float:
    return random.lognormvariate(math.log(median_seconds), sigma)


class Writer:
    """Collects rows and inserts them in batches, in dependency order."""

    def __init__(self, store: Store):
        self.store = store
        self.rows: dict[type, list[dict]] = {model: [] for model in
                                             (Ticket, TicketEvent, Message, SelfServiceEvent)}
        self.counts: dict[str, int] = {}

    def add(self, model: type, **row: object) -> None:
        self.rows[model].append(row)

    def flush_if_full(self) -> None:
        """Between tickets only: a ticket's row goes in before its log."""
        if any(len(rows) >= BATCH for rows in self.rows.values()):
            self.flush()

    def flush(self) -> None:
        with self.store.engine.begin() as connection:
            for model, rows in self.rows.items():
                if rows:
                    connection.execute(model.__table__.insert(), rows)
                    self.counts[model.__tablename__] = \
                        self.counts.get(model.__tablename__, 0) + len(rows)
                    rows.clear()


def generate(store: Store, tickets: int, messages: int, days: int, users: int,
             now: datetime) -> dict:
    with store.engine.begin() as connection:
        connection.execute(User.__table__.insert(), [
            {"id": 10_000 + n, "name": f"Участник {n}", "language": "ru",
             "created_at": now - timedelta(days=days)} for n in range(users)])
        connection.execute(Agent.__table__.insert(), [
            {"id": 500 + n, "name": f"account {n}", "pseudonym": name,
             "created_at": now - timedelta(days=days)} for n, name in enumerate(PSEUDONYMS)])
    writer = Writer(store)
    first_day = (now.astimezone(ZONE) - timedelta(days=days - 1)).date()
    # Growth over the year, fewer requests at weekends.
    day_weights = [(0.5 + n / days) * (0.65 if (first_day + timedelta(days=n)).weekday() >= 5
                                       else 1.0) for n in range(days)]
    opened_days = random.choices(range(days), weights=day_weights, k=tickets)
    opened_hours = random.choices(range(24), weights=HOUR_WEIGHTS, k=tickets)
    written_messages = 0
    for number, (day, hour) in enumerate(sorted(zip(opened_days, opened_hours, strict=True)),
                                         start=1):
        local = datetime.combine(first_day + timedelta(days=day), datetime.min.time(), ZONE) \
            + timedelta(hours=hour, seconds=random.randrange(3600))
        opened = local.astimezone(UTC)
        if opened >= now:
            opened = now - timedelta(minutes=random.randrange(1, 600))
        written_messages += _ticket(writer, number, 10_000 + random.randrange(users), opened,
                                    now)
        writer.flush_if_full()
    writer.flush()
    written_messages += _conversations(writer, users, messages - written_messages, days, now)
    writer.flush()
    return writer.counts


def _ticket(writer: Writer, number: int, user: int, opened: datetime, now: datetime) -> int:
    """One ticket's whole life, as far as it got by `now`; returns its messages."""
    kind = random.choices(["question", "join", "airdrop"], weights=[85, 8, 7])[0]
    reason = "flow" if kind != "question" else \
        random.choices(["no_answer", "not_helped", "asked"], weights=[40, 20, 40])[0]
    agent = 500 + random.randrange(len(PSEUDONYMS))
    status, rating, agent_id = "open", None, None
    chat: Chat = [(opened, "in", random.choice(QUESTIONS)),
                                             (opened, "out", "Передал ваш вопрос людям")]

    def log(at: datetime, kind_: str = "status", to: str | None = None, who: str = "bot",
            text: str | None = None, from_: str | None = None) -> None:
        writer.add(TicketEvent, ticket_id=number, kind=kind_, from_status=from_, to_status=to,
                   who=who, text=text, at=at)

    log(opened, to="open", who=f"user:{user}", text=reason)
    fate = random.random()
    if fate < 0.03:  # withdrawn by the user before anyone answered
        at = opened + timedelta(seconds=lognormal(600, 1))
        if at < now:
            log(at, from_="open", to="closed", who=f"user:{user}")
            status = "closed"
    elif fate < 0.035:  # spam, closed by an agent
        at = opened + timedelta(seconds=lognormal(900, 1))
        if at < now:
            log(at, from_="open", to="closed", who=f"agent:{agent}")
            status, agent_id = "closed", agent
    elif fate < 0.038:  # forgotten: nobody ever answered
        pass
    else:
        at = opened + timedelta(seconds=lognormal(40 * 60, 1.3))
        if at < now:
            agent_id = agent
            log(at, from_="open", to="claimed", who=f"agent:{agent}")
            log(at, "reply", who=f"agent:{agent}", text="Здравствуйте! Сейчас помогу.")
            log(at, from_="claimed", to="waiting_user", who=f"agent:{agent}")
            chat.append((at, "out", "💬 ответ агента"))
            status = "waiting_user"
            status, rating = _resolve(log, chat, user, agent, kind, at, now)
    question = chat[0][2] if kind == "question" else \
        f"Заявка: {TYPED[kind]['ru']}. Аккаунт: G…{random.randrange(10_000):04d}."
    writer.add(Ticket, id=number, user_id=user, status=status, type=kind,
               question=question, context={"request_title": TYPED[kind]} if kind in TYPED
               else {}, agent_id=agent_id, rating=rating, created_at=opened, updated_at=opened,
               agents_chat_id=-1001234567890)
    for at, direction, text in chat:
        writer.add(Message, user_id=user, direction=direction, text=text, created_at=at)
    return len(chat)


Log = Callable[..., None]
Chat = list[tuple[datetime, str, str]]


def _resolve(log: Log, chat: Chat, user: int, agent: int, kind: str, answered: datetime,
             now: datetime) -> tuple[str, int | None]:
    """From the first answer on: a follow-up, the resolution, the rating (a low one
    reopens the ticket once), the comment; the ticket's final status and rating."""
    at = answered
    if random.random() < 0.4:  # the user writes back, the agent answers again
        at += timedelta(seconds=lognormal(1800, 1))
        if at >= now:
            return "waiting_user", None
        log(at, from_="waiting_user", to="claimed", who=f"user:{user}")
        chat.append((at, "in", "А можно подробнее?"))
        at += timedelta(seconds=lognormal(1800, 1.2))
        if at >= now:
            return "claimed", None
        log(at, "reply", who=f"agent:{agent}", text="Конечно, вот подробности.")
        log(at, from_="claimed", to="waiting_user", who=f"agent:{agent}")
        chat.append((at, "out", "💬 подробности"))
    rating = None
    for attempt in range(2):
        at += timedelta(seconds=lognormal(2 * 3600, 1.2))
        if at >= now:
            return "waiting_user" if attempt == 0 else "claimed", rating
        outcome = None if kind == "question" else random.choices(["done", "refused"], [8, 2])[0]
        log(at, from_="waiting_user" if attempt == 0 else "claimed", to="resolved",
            who=f"agent:{agent}", text=outcome)
        chat.append((at, "out", "Мы решили ваш вопрос? Оцените от 1 до 5"))
        if random.random() > 0.7:  # never rated: the bot closes it after three days
            if at + timedelta(days=3) < now:
                log(at + timedelta(days=3), from_="resolved", to="closed")
                return "closed", rating
            return "resolved", rating
        at += timedelta(seconds=lognormal(1200, 1.5))
        if at >= now:
            return "resolved", rating
        rating = random.choices([5, 4, 3, 2, 1], weights=[55, 25, 10, 6, 4])[0] \
            if attempt == 0 else random.choice([4, 5])
        log(at, "rating", who=f"user:{user}", text=str(rating))
        chat.append((at, "in", f"[{rating}]"))
        if random.random() < 0.25:
            log(at + timedelta(seconds=40), "comment", who=f"user:{user}",
                text=random.choice(COMMENTS))
            chat.append((at + timedelta(seconds=40), "in", "комментарий"))
        if rating >= 3:
            log(at, from_="resolved", to="closed", who=f"user:{user}")
            return "closed", rating
        log(at, from_="resolved", to="open", who=f"user:{user}")
        at += timedelta(seconds=lognormal(3600, 1))
        if at >= now:
            return "open", rating
        log(at, from_="open", to="claimed", who=f"agent:{agent}")
        log(at, "reply", who=f"agent:{agent}", text="Давайте попробуем ещё раз.")
        chat.append((at, "out", "💬 ещё раз"))
    return "closed", rating


def _conversations(writer: Writer, users: int, messages: int, days: int, now: datetime) -> int:
    """The bot's own conversations: questions it answered (or not), menus, feedback."""
    written = 0
    while written < messages:
        user = 10_000 + random.randrange(users)
        at = now - timedelta(seconds=random.random() * days * 86400)
        local_hour = at.astimezone(ZONE).hour
        if random.random() > HOUR_WEIGHTS[local_hour] / 9:  # people write in the evening
            continue
        question = random.choice(QUESTIONS)
        decision = random.choices(["answer", "suggest", "escalate"], weights=[55, 25, 20])[0]
        writer.add(Message, user_id=user, direction="in", text=question, created_at=at)
        writer.add(Message, user_id=user, direction="out", text="ответ бота", created_at=at)
        bot = {"user_id": user, "question": question, "article_id": "stellar-trustline",
               "at": at, "decision": None, "score": None}
        writer.add(SelfServiceEvent, **{**bot, "kind": "search", "decision": decision,
                                        "score": 0.87})
        written += 2
        if decision == "suggest" and random.random() < 0.5:
            writer.add(SelfServiceEvent, **bot, kind="chosen")
        if decision != "escalate" and random.random() < 0.35:
            helped = random.random() < 0.75
            writer.add(SelfServiceEvent, **bot, kind="helped" if helped else "not_helped")
            writer.add(Message, user_id=user, direction="in",
                       text="[👍 Помогло]" if helped else "[👎 Не помогло]", created_at=at)
            written += 1
        writer.flush_if_full()
    return written


def time_reports(store: Store, runs: int, now: datetime, days_back: int, label: str) -> None:
    today = now.astimezone(ZONE).date()
    first = None if days_back == 30 else today - timedelta(days=days_back - 1)
    period = period_for(first, None, today, ZONE)
    seconds, cpu = [], []
    with tempfile.TemporaryDirectory() as folder:
        html, csv = Path(folder) / "report.html", Path(folder) / "tickets.csv"
        for _ in range(runs):
            started, started_cpu = time.perf_counter(), time.process_time()
            made = make_report(store, period, now, html=html, csv=csv)
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        figures = made.report.now
        print(f"{label}: {period.first} – {period.last}: {figures.tickets:,} tickets "
              f"({made.tickets_listed:,} in the CSV), {figures.conversations:,} people, "
              f"HTML {html.stat().st_size / 1024:.0f} KiB, CSV {csv.stat().st_size / 1024:.0f} "
              f"KiB; seconds per run: {', '.join(f'{s:.2f}' for s in seconds)} "
              f"(CPU of this process: {', '.join(f'{s:.2f}' for s in cpu)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--users", type=int, help="people [default: a quarter of --tickets]")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-generate", action="store_true",
                        help="time the report on the data already there")
    args = parser.parse_args()
    random.seed(args.seed)
    now = datetime.now(UTC)
    store = Store(args.database_url)
    try:
        if not args.skip_generate:
            started = time.perf_counter()
            with store.engine.connect() as connection:
                if connection.execute(select(func.count()).select_from(Ticket)).scalar():
                    raise SystemExit("the database already has tickets: use an empty one, "
                                     "or --skip-generate to time the report on them")
            counts = generate(store, args.tickets, args.messages, args.days,
                              args.users or max(50, args.tickets // 4), now)
            print(f"generated in {time.perf_counter() - started:.0f} s: " +
                  ", ".join(f"{n:,} {table}" for table, n in counts.items()))
        time_reports(store, args.runs, now, 30, "last 30 days")
        time_reports(store, args.runs, now, args.days, f"last {args.days} days")
    finally:
        store.close()


if __name__ == "__main__":
    main()
