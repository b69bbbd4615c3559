"""The desk under stress: many users, agents answering with random delays, and the bot
killed with SIGKILL and restarted several times. Nothing may be lost.

`navigator run` runs as a real process (polling, SQLite, the real model) against the
project's fake Bot API server (tests/e2e/fakebot.py), exactly as in production. Users
arrive at random over `--arrive-over` seconds, each with one request:

* most ask a question from knowledge/questions.jsonl (in and out of scope) and wait for
  the bot's answer;
* `--handover` of them write /human and a question, wait for an agent's signed answer,
  and rate it when asked (`--low-rating` of the ratings are 1-2, which reopens the
  ticket; the agents answer again, and the user then rates 5).

Agents (`--agents`, each with a pseudonym) watch the agents' chat: for each new ticket
one of them answers after a random delay (`--agent-delay`), by replying to the card,
then resolves it; a reopened ticket is answered and resolved again.

While this runs the bot is killed `--kills` times at random moments and started again
at once. At the end it prints:

* tickets opened and solved (closed with a rating), requests lost: a question the bot
  never answered, a user's question that never reached the agents, an agent's answer or
  a rating request that never reached the user, or a rating never stored;
* duplicated deliveries: messages Telegram (the fake) accepted beyond the outbox rows
  the bot recorded as sent — the at-least-once window of a kill during a request — and
  the outbox rows flagged `uncertain`; with `--forum`, topics created per ticket;
* first-response and resolution percentiles from the ticket log.

    python benchmarks/desk_simulation.py                       # 1,000 users, 5 kills
    python benchmarks/desk_simulation.py --users 100 --kills 2 --arrive-over 30

Needs the test extras (aiohttp). The agents' chat runs at `--group-rate` messages per
minute (Telegram allows 20): the simulation compresses an afternoon into minutes.

Measured 2026-11-21 on 2 shared cores (load average 1-4), defaults (1,000 users, 5 kills):

    seed 7, plain group:   163 tickets opened, 163 solved, 837/837 answered, lost 0,
                           duplicated deliveries 0 (0 uncertain), first response p50 20.6 s
    seed 7, same, later:   161 / 161, lost 0, duplicated 1 of 2,226 (1 uncertain)
    seed 11, --forum:      154 / 154, lost 0, duplicated 2 of 2,144 (2 uncertain),
                           154 topics for 154 tickets
    seed 3, final main:    133 / 133, lost 0, duplicated 3 of 1,994 (4 uncertain)

Every duplicate is a row flagged uncertain: a kill landed while a request was in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.bot_process import BotProcess  # noqa: E402
from tests.e2e.fakebot import FakeChat, FakeTelegram, FakeUser  # noqa: E402

CARD = re.compile(r"Заявка №(\d+)")
WAIT_S = 600.0  # how long a user waits for any one answer before counting it lost


@dataclass
class Outcome:
    """What happened to one user's request."""

    kind: str  # "faq" or "ticket"
    question: str
    answered: bool = False  # faq: the bot answered; ticket: the agent's answer arrived
    reached_agents: bool = False
    rating_asked: int = 0
    rated: list[int] = field(default_factory=list)
    lost: str = ""  # why, if lost


class Inboxes:
    """Routes what the bot sends (as the fake server records it) to whoever waits."""

    def __init__(self, fake: FakeTelegram):
        self.fake = fake
        self.seen = 0
        self.queues: dict[int, asyncio.Queue[dict[str, Any]]] = {}

    def queue(self, chat_id: int) -> asyncio.Queue[dict[str, Any]]:
        return self.queues.setdefault(chat_id, asyncio.Queue())

    async def watch(self) -> None:
        while True:
            calls = self.fake.calls
            for call in calls[self.seen:len(calls)]:
                if call.method == "sendMessage" and call.ok:
                    self.queue(int(call.result["chat"]["id"])).put_nowait(call.result)
            self.seen = len(calls)
            await asyncio.sleep(0.02)

    async def next_message(self, chat_id: int, timeout: float = WAIT_S,
                           matching: re.Pattern[str] | None = None,
                           with_data: str | None = None) -> dict[str, Any] | None:
        """The next message to `chat_id` whose text matches / which has a button whose
        callback data starts with `with_data`; None after `timeout`."""
        deadline = time.monotonic() + timeout
        queue = self.queue(chat_id)
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                return None
            if matching is not None and not matching.search(message.get("text", "")):
                continue
            if with_data is not None and not any(
                    b.get("callback_data", "").startswith(with_data)
                    for row in message.get("reply_markup", {}).get("inline_keyboard", [])
                    for b in row):
                continue
            return message
        return None


class Simulation:
    def __init__(self, args: argparse.Namespace, fake: FakeTelegram, agents_chat: FakeChat,
                 agents: list[FakeUser], questions: list[tuple[str, bool]]):
        self.args = args
        self.fake = fake
        self.agents_chat = agents_chat
        self.agents = agents
        self.in_scope = [q for q, inside in questions if inside]
        self.out_of_scope = [q for q, inside in questions if not inside]
        self.inboxes = Inboxes(fake)
        self.outcomes: list[Outcome] = []
        self.cards: dict[int, dict[str, Any]] = {}  # ticket id -> its card message
        self.answers_sent: dict[int, int] = {}  # ticket id -> answers an agent wrote
        self.rng = random.Random(args.seed)
        self.work: set[asyncio.Task[None]] = set()  # agents' answers in progress

    # Users ------------------------------------------------------------------------------

    async def user(self, number: int) -> None:
        person = self.fake.add_user(f"Участник {number}", language_code="ru")
        if self.rng.random() < self.args.handover:
            await self.ticket_user(person, number)
        else:
            await self.faq_user(person)

    async def faq_user(self, person: FakeUser) -> None:
        question = self.rng.choice(self.in_scope if self.rng.random() < 0.85
                                   else self.out_of_scope)
        outcome = Outcome("faq", question)
        self.outcomes.append(outcome)
        await self.fake.user_sends(person, question)
        answer = await self.inboxes.next_message(person.id)
        outcome.answered = answer is not None
        if answer is None:
            outcome.lost = "the bot never answered the question"

    async def ticket_user(self, person: FakeUser, number: int) -> None:
        question = f"{self.rng.choice(self.out_of_scope)} (вопрос участника {number})"
        outcome = Outcome("ticket", question)
        self.outcomes.append(outcome)
        await self.fake.user_sends(person, "/human")
        if await self.inboxes.next_message(person.id) is None:
            outcome.lost = "no answer to /human"
            return
        await self.fake.user_sends(person, question)
        for round_ in range(2):
            answer = await self.inboxes.next_message(person.id, matching=re.compile(
                rf"Ответ по заявке №\d+ для участника {number}\b"))
            if answer is None:
                outcome.lost = "the agent's answer never arrived"
                return
            outcome.answered = True
            asked = await self.inboxes.next_message(person.id, with_data="rate|")
            if asked is None:
                outcome.lost = "the rating request never arrived"
                return
            outcome.rating_asked += 1
            low = round_ == 0 and self.rng.random() < self.args.low_rating
            rating = self.rng.choice([1, 2]) if low else self.rng.choice([4, 5, 5])
            ticket = asked["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split("|")[1]
            await asyncio.sleep(self.rng.uniform(1, 5))
            await self.fake.user_presses(person, asked, f"rate|{ticket}|{rating}")
            if await self.inboxes.next_message(person.id) is None:
                outcome.lost = "the rating was never acknowledged"
                return
            outcome.rated.append(rating)
            if not low:
                return

    # Agents -----------------------------------------------------------------------------

    async def agents_desk(self) -> None:
        """Watch the agents' chat: answer new tickets and tickets reopened by a rating."""
        for agent in self.agents:
            await self.fake.agent_says(self.agents_chat, agent, f"/myname {agent.first_name}")
        while True:
            message = await self.inboxes.next_message(self.agents_chat.id, timeout=3600)
            if message is None:
                continue
            text = message.get("text", "")
            card = CARD.search(text)
            if card and text.startswith("🆕"):
                ticket = int(card.group(1))
                self.cards[ticket] = message
                self.assign(ticket)
            elif "снова открыта" in text and (card := re.search(r"№(\d+)", text)):
                ticket = int(card.group(1))
                self.assign(ticket)
            if card:
                self.reached_agents(text)

    def assign(self, ticket: int) -> None:
        task = asyncio.create_task(self.answer(ticket, self.rng.choice(self.agents)))
        self.work.add(task)
        task.add_done_callback(self.work.discard)

    def reached_agents(self, text: str) -> None:
        for outcome in self.outcomes:
            if outcome.kind == "ticket" and not outcome.reached_agents and outcome.question in text:
                outcome.reached_agents = True

    async def answer(self, ticket: int, agent: FakeUser) -> None:
        card = self.cards[ticket]
        await asyncio.sleep(self.rng.uniform(*self.args.agent_delay))
        number = re.search(r"вопрос участника (\d+)", card.get("text", ""))
        self.answers_sent[ticket] = self.answers_sent.get(ticket, 0) + 1
        await self.fake.agent_says(
            self.agents_chat, agent,
            f"Ответ по заявке №{ticket} для участника {number.group(1) if number else '?'}: "
            f"вот что нужно сделать (ответ {self.answers_sent[ticket]}).", **self.where(card))
        await asyncio.sleep(self.rng.uniform(1, 5))
        await self.fake.agent_says(self.agents_chat, agent, "/resolve", **self.where(card))

    def where(self, card: dict[str, Any]) -> dict[str, Any]:
        """How an agent writes about a ticket: in its forum topic, or replying to its card."""
        if self.agents_chat.is_forum:
            return {"thread_id": card["message_thread_id"]}
        return {"reply_to": card}


async def killer(bot: BotProcess, args: argparse.Namespace, rng: random.Random,
                 kills: list[float], started: float) -> None:
    """Kill the bot at random moments spread over the arrivals, restart it at once."""
    moments = sorted(rng.uniform(0.1, 1.0) * args.arrive_over * 1.3 for _ in range(args.kills))
    for moment in moments:
        await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
        bot.kill()
        kills.append(time.monotonic() - started)
        print(f"  {kills[-1]:6.1f} s: killed (SIGKILL); restarting", flush=True)
        await bot.start()
        print(f"  {time.monotonic() - started:6.1f} s: polling again", flush=True)


def percentiles(seconds: list[float]) -> str:
    if len(seconds) < 2:
        return "n/a"
    q = statistics.quantiles(seconds, n=100)
    return f"p50 {q[49]:.1f} s, p90 {q[89]:.1f} s, p99 {q[98]:.1f} s (n={len(seconds)})"


def database_figures(bot: BotProcess) -> dict[str, Any]:
    from sqlalchemy import func, select

    from navigator.desk import ticket_timings
    from navigator.store import Store
    from navigator.store.models import InboxUpdate, OutboxMessage, Ticket

    store = Store(bot.database_url)
    try:
        with store.transaction() as repo:
            statuses = dict(repo.session.execute(
                select(Ticket.status, func.count()).group_by(Ticket.status)).all())
            rated = repo.session.scalar(select(func.count()).select_from(Ticket).where(
                Ticket.rating.is_not(None)))
            outbox = dict(repo.session.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
            uncertain = repo.session.scalar(select(func.count()).select_from(OutboxMessage)
                                            .where(OutboxMessage.uncertain.is_(True)))
            timings = ticket_timings(repo, datetime(2000, 1, 1, tzinfo=UTC))
            inbox = dict(repo.session.execute(
                select(InboxUpdate.status, func.count()).group_by(InboxUpdate.status)).all())
    finally:
        store.close()
    return {"tickets": statuses, "rated": rated, "outbox": outbox, "uncertain": uncertain,
            "inbox": inbox,
            "first": [t.first_answer.total_seconds() for t in timings if t.first_answer],
            "resolution": [t.resolution.total_seconds() for t in timings if t.resolution]}


async def main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    questions = [(q["q"], q.get("kind") == "in") for q in
                 (json.loads(line) for line in
                  (ROOT / "knowledge" / "questions.jsonl").read_text().splitlines() if line)]
    fake = FakeTelegram()
    await fake.start()
    agents = [fake.add_user(name, language_code="ru") for name in
              ("Мария", "Олег", "Светлана", "Никола")[:args.agents]]
    agents_chat = fake.add_supergroup("MTL Support agents", members=agents, forum=args.forum)
    data = Path(args.data or tempfile.mkdtemp(prefix="navigator-desk-sim-"))
    settings: dict[str, Any] = {"agents_chat_id": agents_chat.id,
                                "telegram_group_rate": args.group_rate}
    if args.index:
        settings["index_dir"] = args.index
    bot = BotProcess(fake, data, **settings)
    sim = Simulation(args, fake, agents_chat, agents, questions)
    watcher = asyncio.create_task(sim.inboxes.watch())
    print(f"{args.users} users over {args.arrive_over:.0f} s, {args.handover:.0%} to a "
          f"person, {args.agents} agents, {args.kills} kills; data in {data}", flush=True)
    print(f"load average before: {os.getloadavg()[0]:.2f} (cpus: {os.cpu_count()}); "
          "starting the bot…", flush=True)
    await bot.start()
    desk = asyncio.create_task(sim.agents_desk())
    started = time.monotonic()
    kills: list[float] = []
    killing = asyncio.create_task(killer(bot, args, rng, kills, started))
    users = []
    for number in range(1, args.users + 1):
        await asyncio.sleep(rng.expovariate(args.users / args.arrive_over))
        users.append(asyncio.create_task(sim.user(number)))
    await asyncio.gather(*users)
    await killing
    finished = time.monotonic() - started
    # Let the last updates be handled and their replies delivered, then stop cleanly.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        figures = database_figures(bot)
        if not fake.pending_updates and "pending" not in figures["inbox"] and \
                set(figures["outbox"]) <= {"sent", "failed", "cancelled"}:
            break
        await asyncio.sleep(1)
    await bot.stop()
    desk.cancel()
    watcher.cancel()
    figures = database_figures(bot)
    await fake.stop()

    tickets = [o for o in sim.outcomes if o.kind == "ticket"]
    faq = [o for o in sim.outcomes if o.kind == "faq"]
    lost = [o for o in sim.outcomes if o.lost] + [
        o for o in tickets if not o.lost and not o.reached_agents]
    final_ratings = sum(1 for o in tickets if o.rated and o.rated[-1] >= 3)
    unstored_ratings = max(0, final_ratings - figures["tickets"].get("closed", 0))
    accepted = sum(1 for c in fake.calls if c.method == "sendMessage" and c.ok)
    topics = sum(1 for c in fake.calls if c.method == "createForumTopic" and c.ok)
    sent_rows = figures["outbox"].get("sent", 0)
    opened = sum(figures["tickets"].values())
    solved = figures["tickets"].get("closed", 0)
    print(f"\nfinished in {finished:.0f} s; {len(kills)} kills at "
          f"{', '.join(f'{k:.0f}' for k in kills)} s; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"requests: {len(sim.outcomes)} ({len(faq)} questions for the bot, "
          f"{len(tickets)} for a person)")
    print(f"bot answers: {sum(o.answered for o in faq)} of {len(faq)}")
    print(f"tickets opened: {opened}; solved (closed with a rating): {solved}; by status "
          f"{figures['tickets']}; rated {figures['rated']}; ratings asked "
          f"{sum(o.rating_asked for o in tickets)}, given {sum(len(o.rated) for o in tickets)}"
          f" (low: {sum(1 for o in tickets for r in o.rated if r <= 2)})")
    print(f"lost: {len(lost) + unstored_ratings}"
          f"{f' ({unstored_ratings} ratings not stored)' if unstored_ratings else ''}")
    for o in lost[:10]:
        print(f"  - {o.kind}: {o.lost or 'never reached the agents'}: {o.question[:60]}")
    print(f"duplicated deliveries: {accepted - sent_rows} (Telegram accepted {accepted} "
          f"messages; outbox rows sent {sent_rows}; rows flagged uncertain "
          f"{figures['uncertain']}); outbox {figures['outbox']}; inbox {figures['inbox']}")
    if args.forum:
        print(f"forum topics created: {topics} for {opened} tickets")
    print(f"first response: {percentiles(figures['first'])}")
    print(f"resolution:     {percentiles(figures['resolution'])}")
    return 1 if lost or unstored_ratings else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--arrive-over", type=float, default=240.0, help="seconds")
    parser.add_argument("--handover", type=float, default=0.15,
                        help="share of users who ask for a person")
    parser.add_argument("--low-rating", type=float, default=0.1)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--agent-delay", type=float, nargs=2, default=(2.0, 30.0),
                        metavar=("MIN", "MAX"), help="seconds before an agent answers")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--group-rate", type=float, default=600.0,
                        help="messages per minute in the agents' chat (Telegram: 20)")
    parser.add_argument("--forum", action="store_true",
                        help="the agents' chat is a forum: a topic per ticket")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--index", help="an existing index folder (else built on start)")
    parser.add_argument("--data", help="the bot's data folder (default: a new temp folder)")
    sys.exit(asyncio.run(main(parser.parse_args())))
