"""Agents' rewards: each agent's contribution in a month, counted from the ticket log,
and a proposed split of the month's pool (payouts.yaml `rewards.pool`).

Contribution (the month is the desk's local calendar month):
- answered: tickets the agent answered at least once that month;
- solved: tickets the agent resolved, marked done or refused, or approved for payout;
- rating: the ratings users gave that month, each credited to the agent who last
  resolved (or approved) that ticket before it was rated;
- first response: for tickets whose first answer came that month from this agent, the
  time from the ticket's opening to it (its median is shown; it does not change points).

The split (README, "Agents' rewards"): points = (answered x w_answered + solved x
w_solved) x rating / 5, where rating is the agent's mean rating, or 4 without ratings;
weights from `rewards.weights` (default 1 and 2). The pool is shared in proportion to
points among agents with points and a payout account (/myaccount), in stroops, the
remainder of the rounding going one stroop at a time to the largest fractions (then the
lowest agent id), so the amounts add up to the pool exactly.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from sqlalchemy import select

from navigator.desk.states import RESOLVED
from navigator.desk.tickets import AGENTS_LANGUAGE
from navigator.desk.timings import median
from navigator.payouts.approvals import APPROVED_WHY
from navigator.payouts.assets import format_amount, from_stroops, to_stroops
from navigator.payouts.batches import Payout
from navigator.payouts.building import BatchSpec, BuildResult, PayoutError, build_batch
from navigator.payouts.config import Grant, PayoutsConfig
from navigator.payouts.confirmation import check_pending
from navigator.payouts.horizon import Horizon
from navigator.payouts.ledger import EXPIRED, FAILED, REWARDS, Ledger, PayoutBatch
from navigator.store import Repository, Store
from navigator.store.models import Agent, Ticket, TicketEvent, as_utc
from navigator.texts import Texts

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
UNRATED = Fraction(4)  # an agent with no ratings counts as rated 4 of 5


@dataclass
class Contribution:
    agent_id: int
    name: str  # the pseudonym agents chose: never the account's name
    answered: set[int] = field(default_factory=set)  # ticket ids
    solved: set[int] = field(default_factory=set)
    ratings: list[int] = field(default_factory=list)
    first_responses: list[timedelta] = field(default_factory=list)
    account: str | None = None  # where rewards go (/myaccount)

    @property
    def rating(self) -> Fraction | None:
        return Fraction(sum(self.ratings), len(self.ratings)) if self.ratings else None

    def points(self, weights: dict[str, Decimal]) -> Fraction:
        work = (Fraction(weights["answered"]) * len(self.answered) +
                Fraction(weights["solved"]) * len(self.solved))
        rating = self.rating if self.rating is not None else UNRATED
        return work * rating / 5

    def row(self, weights: dict[str, Decimal], amount: Decimal | None, texts: Texts
            ) -> dict[str, object]:
        """The table's row (also `--json`); durations as the agents read them."""
        rating = self.rating
        return {"agent": self.name, "answered": len(self.answered), "solved": len(self.solved),
                "rating": f"{float(rating):.1f}" if rating is not None else "—",
                "rated": len(self.ratings),
                "first_response": texts.duration(median(self.first_responses), AGENTS_LANGUAGE),
                "points": f"{float(self.points(weights)):.2f}",
                "amount": format_amount(amount) if amount is not None else None,
                "account": self.account}


def month_bounds(month: str, zone: tzinfo) -> tuple[datetime, datetime]:
    """The start and end (UTC) of `month` ("2026-11") in the desk's time zone."""
    match = _MONTH.match(month.strip())
    if not match:
        raise ValueError(f"month {month!r}: write it as YYYY-MM, e.g. 2026-11")
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def contributions(repo: Repository, start: datetime, end: datetime) -> list[Contribution]:
    """Every agent who did something between `start` and `end`, by agent id."""
    events = repo.ticket_events_between(start, end)
    agents: dict[int, Contribution] = {}

    def of(who: str) -> Contribution | None:
        if not who.startswith("agent:"):
            return None
        agent_id = int(who.removeprefix("agent:"))
        if agent_id not in agents:
            agents[agent_id] = Contribution(agent_id, "")
        return agents[agent_id]

    for event in events:
        agent = of(event.who)
        if agent is not None and event.kind == "reply":
            agent.answered.add(event.ticket_id)
        if agent is not None and _solves(event):
            agent.solved.add(event.ticket_id)
    rated = {e.ticket_id for e in events if e.kind == "rating"}
    answered = {e.ticket_id for e in events if e.kind == "reply"}
    logs = _logs(repo, rated | answered, end)
    for ticket_id in rated:
        credited = None
        for event in logs[ticket_id]:
            if _solves(event) and event.who.startswith("agent:"):
                credited = event.who
            if event.kind == "rating" and start <= as_utc(event.at) and \
                    (event.text or "").isdigit() and credited is not None:
                agent = of(credited)
                if agent is not None:
                    agent.ratings.append(int(event.text or 0))
    opened = dict(repo.session.execute(
        select(Ticket.id, Ticket.created_at).where(Ticket.id.in_(answered))).all())
    for ticket_id in answered:
        first = next((e for e in logs[ticket_id] if e.kind == "reply"), None)
        if first is not None and start <= as_utc(first.at) and (agent := of(first.who)):
            agent.first_responses.append(as_utc(first.at) - as_utc(opened[ticket_id]))
    ledger = Ledger(repo.session)
    for agent in agents.values():
        row = repo.session.get(Agent, agent.agent_id)
        agent.name = (row.pseudonym if row and row.pseudonym else
                      f"без псевдонима (id {agent.agent_id})")
        agent.account = ledger.payout_account(agent.agent_id)
    return [agents[k] for k in sorted(agents)]


def _solves(event: TicketEvent) -> bool:
    if event.kind == "status":
        return event.to_status == RESOLVED or event.text == APPROVED_WHY
    return event.kind == "payout" and event.text == APPROVED_WHY


def _logs(repo: Repository, ticket_ids: set[int], end: datetime
          ) -> dict[int, list[TicketEvent]]:
    """The log of each ticket up to `end`, in one query."""
    logs: dict[int, list[TicketEvent]] = defaultdict(list)
    if ticket_ids:
        for event in repo.session.scalars(
                select(TicketEvent).where(TicketEvent.ticket_id.in_(ticket_ids),
                                          TicketEvent.at < end).order_by(TicketEvent.id)):
            logs[event.ticket_id].append(event)
    return logs


def split_pool(agents: list[Contribution], pool: Decimal, weights: dict[str, Decimal]
               ) -> dict[int, Decimal]:
    """The pool in proportion to points among agents with points and an account, in
    whole stroops that add up to the pool exactly (largest remainders)."""
    eligible = {a.agent_id: a.points(weights) for a in agents
                if a.account and a.points(weights) > 0}
    total_points = sum(eligible.values(), Fraction(0))
    if not eligible:
        return {}
    total = to_stroops(pool)
    exact = {agent_id: total * points / total_points for agent_id, points in eligible.items()}
    stroops = {agent_id: int(share) for agent_id, share in exact.items()}  # floor: >= 0
    left = total - sum(stroops.values())
    by_remainder = sorted(exact, key=lambda a: (-(exact[a] - stroops[a]), a))
    for agent_id in by_remainder[:left]:
        stroops[agent_id] += 1
    return {agent_id: from_stroops(amount) for agent_id, amount in stroops.items()}


def proposal(repo: Repository, config: PayoutsConfig, month: str, zone: tzinfo
             ) -> tuple[list[Contribution], dict[int, Decimal]]:
    """The month's contributions and the proposed split (none while the pool is unset)."""
    rewards = config.rewards
    start, end = month_bounds(month, zone)
    agents = contributions(repo, start, end)
    if rewards is None or rewards.pool is None:
        return agents, {}
    return agents, split_pool(agents, rewards.pool.amount, rewards.weights)


async def build_rewards(store: Store, horizon: Horizon, config: PayoutsConfig, texts: Texts,
                        month: str, now: datetime, zone: tzinfo, out_dir: Path
                        ) -> tuple[BuildResult, list[Contribution], dict[int, Decimal]]:
    """The unsigned batch paying the month's split. Pending batches are settled first,
    so one of this month's that failed or expired is replaced. Raises PayoutError if the
    month's rewards are pending or paid already, ContentError if the pool is not set,
    HorizonUnavailable; nothing is marked then."""
    config.require("rewards")
    rewards = config.rewards
    assert rewards is not None and rewards.pool is not None
    pool = rewards.pool
    await check_pending(store, horizon, config, now, texts)
    with store.transaction() as repo:
        if (earlier := earlier_batch(repo, month)) is not None:
            raise PayoutError(f"rewards for {month} are already in batch #{earlier.id} "
                              f"({earlier.status})")
        agents, shares = proposal(repo, config, month, zone)
    payouts = [Payout(a.agent_id, a.account or "", (Grant(pool.asset, shares[a.agent_id]),),
                      None, a.name) for a in agents if a.agent_id in shares]
    spec = BatchSpec(REWARDS, month, rewards.account, rewards.memo, payouts, None)
    result = await build_batch(
        store, horizon, config, texts, spec, now, zone, out_dir,
        lambda repo, batch, _built: record_items(repo, batch, agents, shares, month))
    return result, agents, shares


def earlier_batch(repo: Repository, month: str) -> PayoutBatch | None:
    """A batch of this month's rewards that is pending or paid (one that failed or
    expired may be built again)."""
    return next((b for b in Ledger(repo.session).batches(REWARDS, label=month)
                 if b.status not in (FAILED, EXPIRED)), None)


def record_items(repo: Repository, batch: PayoutBatch, agents: list[Contribution],
                 shares: dict[int, Decimal], month: str) -> None:
    """The batch's items (who gets what); an earlier failed or expired batch of the
    month is replaced by it."""
    if (earlier := earlier_batch(repo, month)) is not None and earlier.id != batch.id:
        raise PayoutError(f"rewards for {month} are already in batch #{earlier.id} "
                          f"({earlier.status})")
    batch.items = [{"agent_id": a.agent_id, "name": a.name, "account": a.account,
                    "amount": str(shares[a.agent_id])} for a in agents if a.agent_id in shares]
    for old in Ledger(repo.session).batches(REWARDS, label=month):
        if old.id != batch.id and old.replaced_by is None:
            old.replaced_by = batch.id
