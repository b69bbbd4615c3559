"""Delivering the outbox: lanes in parallel, each lane in order, within Telegram's limits.

A `Sender` (one per bot process) takes the oldest undelivered row of each lane
(navigator.outbox), waits for the `RateLimiter` (navigator.ratelimit), marks the row
`sending` (a lease, committed) and hands it to the transport's `deliver` function, which
raises `RetryAfter`, `Transient` or `Refused`. The outcome is recorded (sent, retried
later, or failed for good) in batches, in the transaction that claims the next rows.
Nothing here imports Telegram.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from navigator.events import NotifyAgents, SendText
from navigator.outbox import AGENTS_LANE, LEASE_S, Delivery, Outbox, Outcome, Sent
from navigator.ratelimit import RateLimiter

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
T = TypeVar("T")


class RetryAfter(Exception):
    """Telegram said 429: wait `seconds`, then send again."""

    def __init__(self, seconds: float, message: str = ""):
        super().__init__(message or f"flood control: retry after {seconds} s")
        self.seconds = seconds


class Transient(Exception):
    """A network error, a timeout, a 5xx, a chat that is unreachable for now: retry later.
    `wait` overrides the backoff (e.g. a misconfigured agents' chat is retried slowly)."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class Refused(Exception):
    """Telegram will never accept this message (blocked, chat gone, invalid): give up."""


Deliver = Callable[[Delivery], Awaitable[Sent]]
OnFailed = Callable[[Delivery, str], Awaitable[None]]
RunDb = Callable[..., Awaitable[Any]]


async def _run_inline(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


@dataclass
class SenderStats:
    """What this process's sender did since it started (for logs and benchmarks)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    rate_limited: int = 0


class Sender:
    """Delivers the outbox: lanes in parallel, each lane in order, within the limits.

    `deliver` does the Telegram call; `chat_of(lane)` names the chat a lane goes to (the
    rate limits depend on it); `run_db(fn, *args)` runs a blocking database call (the
    bot passes the store's writer thread); `on_failed(delivery, error)` hears of each delivery
    Telegram refused for good, before that is recorded (the bot tells the ticket's
    agents). `kick()` says new rows were committed.

    Each round is one transaction: record the deliveries that ended, claim what may go
    within `reserve_s` (each row then waits for its own slot within the rate limits).
    A delivery's end is recorded within `record_after_s` (with the next round, if new
    rows come first), so that under load one transaction records many of them; until
    then its chat's next row waits, and a crash would leave the row to be sent again,
    flagged `uncertain` (the window of the module docstring, that much longer). In the
    agents' chat it is recorded at once: agents reply to those messages by their id.

    A broadcast (a survey) has at most `broadcast_in_flight` rows in flight, claimed
    after every live row due: a live reply then waits behind no more than those few
    slots (ordering alone let a 500-user survey reserve the next seconds of the overall
    limit and delay an answer by 9 s in the end-to-end test).
    """

    def __init__(self, outbox: Outbox, deliver: Deliver, chat_of: Callable[[str], int | None],
                 *, limiter: RateLimiter | None = None, run_db: RunDb = _run_inline,
                 on_failed: OnFailed | None = None, max_in_flight: int = 64,
                 poll_s: float = 1.0, record_after_s: float = 0.02, reserve_s: float = 0.5,
                 clock: Callable[[], float] = time.time, broadcast_in_flight: int = 4):
        self.outbox = outbox
        self.deliver = deliver
        self.chat_of = chat_of
        self.limiter = limiter or RateLimiter()
        self.run_db = run_db
        self.on_failed = on_failed
        self.max_in_flight = max_in_flight
        self.poll_s = poll_s
        self.record_after_s = record_after_s
        self.reserve_s = reserve_s
        total = self.limiter.limits.total
        self._send_gap = self.limiter.limits.margin / total.rate if total.burst == 1 else 0.0
        self._next_send = 0.0
        self.clock = clock
        self.stats = SenderStats()
        self._wake = asyncio.Event()
        self._stopping = False
        self._busy: dict[str, asyncio.Task[None]] = {}  # lane -> its delivery in flight
        self.broadcast_in_flight = broadcast_in_flight
        self._broadcasting: set[str] = set()  # lanes whose delivery in flight is a broadcast
        # Deliveries that ended, with their lane, waiting to be recorded. The lane stays
        # busy until its outcome is committed, so its next row waits for it.
        self._ended: list[tuple[str, Outcome]] = []
        self._record_timer: asyncio.TimerHandle | None = None

    def kick(self) -> None:
        """New rows may be due: look now rather than at the next poll."""
        self._wake.set()

    async def throttle(self, chat_id: int) -> None:
        """Wait for, and take, one more message's room in `chat_id` (for extra calls a
        delivery makes, like creating a forum topic before posting in it)."""
        while (ready := self.limiter.try_take(chat_id, self.clock())) is not None:
            await asyncio.sleep(max(ready - self.clock(), 0.001))

    async def run(self) -> None:
        """Deliver until `stop()`; rows claimed by a dead predecessor are resumed first."""
        released = await self.run_db(self.outbox.release_orphans)
        if released:
            log.warning("resuming %d deliveries a stopped process left unacknowledged",
                        released)
        while not self._stopping:
            self._wake.clear()
            wait = await self._dispatch()
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.005))

    async def _dispatch(self) -> float:
        """Record the deliveries that ended and start those that may go now, in one
        transaction; returns how long to sleep before looking again."""
        now = self.clock()
        ended, self._ended = self._ended, []
        self._cancel_record_timer()
        settled = {lane for lane, _ in ended}
        busy = set(self._busy) - settled
        room = 0 if self._stopping else self.max_in_flight - len(busy)
        if room <= 0 and not ended:
            return self.poll_s
        limited: list[float] = []

        def choose(heads: list[tuple[int, str]]) -> list[int]:
            # Runs on the writer thread, inside the claiming transaction (the limiter
            # has its own lock; `busy` is a copy). Rows whose turn within the limits
            # comes in the next `reserve_s` are all taken: with Telegram's overall limit
            # only one message per round could go otherwise, whatever was waiting.
            free = [(row_id, lane, self.chat_of(lane)) for row_id, lane in heads
                    if lane not in busy][:max(room, 0)]
            limited_chats = [chat_id for _, _, chat_id in free if chat_id is not None]
            turns = iter(self.limiter.plan(limited_chats, self.clock(), self.reserve_s))
            chosen = []
            for row_id, _lane, chat_id in free:
                at, soon = next(turns) if chat_id is not None else (now, True)
                if soon:
                    chosen.append(row_id)
                else:
                    limited.append(at)
            return chosen

        broadcast = self.broadcast_in_flight - len(self._broadcasting - settled)
        try:
            claimed, due = await self.run_db(self.outbox.record_and_claim,
                                             [outcome for _, outcome in ended], now,
                                             max(room, 0) + len(busy), choose, LEASE_S,
                                             max(broadcast, 0))
        except BaseException:
            self._ended[:0] = ended  # not recorded: their lanes stay busy until they are
            raise
        for lane in settled:
            self._busy.pop(lane, None)
            self._broadcasting.discard(lane)
        if self._stopping:  # stop() came while claiming: nothing was sent, give them back
            for delivery in claimed:
                await self.run_db(self.outbox.release, delivery.id, uncertain=False)
            return self.poll_s
        for delivery in claimed:
            # Each message's room is taken now, in order, on the clock it will be sent by.
            chat_id = self.chat_of(delivery.lane)
            at = self.limiter.reserve(chat_id, self.clock())[0] if chat_id is not None \
                else now
            self._busy[delivery.lane] = asyncio.create_task(self._deliver(delivery, at))
            if isinstance(delivery.reply, SendText) and delivery.reply.broadcast:
                self._broadcasting.add(delivery.lane)
        wake_at = min([now + self.poll_s, *limited])
        if due is not None and due > now:
            wake_at = min(wake_at, due)
        return wake_at - self.clock()

    async def _deliver(self, delivery: Delivery, at: float) -> None:
        requested = False
        try:
            if (wait := at - self.clock()) > 0:
                await asyncio.sleep(wait)  # its slot within the rate limits
            # Slots are kept on the clock of the moment they were taken; a task that wakes
            # late must not go out right beside the next one: the overall limit is also
            # kept between the moments messages actually leave.
            while (wait := self._next_send - self.clock()) > 0:
                await asyncio.sleep(wait)
            self._next_send = self.clock() + self._send_gap
            requested = True
            outcome = await self._attempt(delivery)
            if outcome.status == "failed" and self.on_failed is not None:
                await self._report_failure(delivery, outcome.error or "")
        except asyncio.CancelledError:
            # Stopped mid-request: Telegram may or may not have the message.
            await self.run_db(self.outbox.release, delivery.id, uncertain=requested)
            self._busy.pop(delivery.lane, None)
            self._broadcasting.discard(delivery.lane)
            raise
        self._ended.append((delivery.lane, outcome))
        if delivery.lane == AGENTS_LANE:
            # At once: an agent may reply to this message, and its id is how the reply
            # finds its ticket.
            self.kick()
        elif self._record_timer is None:
            self._record_timer = asyncio.get_running_loop().call_later(self.record_after_s,
                                                                      self.kick)

    async def _report_failure(self, delivery: Delivery, error: str) -> None:
        assert self.on_failed is not None
        try:
            await self.on_failed(delivery, error)
        except Exception:  # the failure itself is still recorded
            log.exception("could not report the failed delivery of row %d", delivery.id)

    def _cancel_record_timer(self) -> None:
        if self._record_timer is not None:
            self._record_timer.cancel()
            self._record_timer = None

    async def _attempt(self, delivery: Delivery) -> Outcome:
        """One delivery: what happened, to be recorded (CancelledError if stopped)."""
        chat_id = self.chat_of(delivery.lane)
        try:
            sent = await self.deliver(delivery)
        except RetryAfter as exc:
            self.stats.rate_limited += 1
            until = self.clock() + exc.seconds
            # A 429 may be about this chat or about the bot as a whole: honour both.
            self.limiter.pause(None, until)
            if chat_id is not None:
                self.limiter.pause(chat_id, until)
            log.warning("flood control on %s: retrying row %d in %.0f s", delivery.lane,
                        delivery.id, exc.seconds)
            return Outcome(delivery.id, "pending", due_at=until, error=str(exc))
        except Refused as exc:
            self.stats.failed += 1
            log.warning("Telegram refused row %d for %s for good: %s", delivery.id,
                        delivery.lane, exc)
            return Outcome(delivery.id, "failed", error=str(exc))
        except Exception as exc:
            self.stats.retried += 1
            wait = exc.wait if isinstance(exc, Transient) and exc.wait is not None \
                else _backoff(delivery.attempts)
            if not isinstance(exc, Transient):
                log.exception("delivering row %d failed unexpectedly; retrying", delivery.id)
            else:
                log.warning("delivering row %d to %s failed (%s); retry in %.1f s",
                            delivery.id, delivery.lane, exc, wait)
            return Outcome(delivery.id, "pending", due_at=self.clock() + wait,
                           error=f"{type(exc).__name__}: {exc}")
        self.stats.sent += 1
        card = delivery.reply.ticket_id if isinstance(delivery.reply, NotifyAgents) else None
        return Outcome(delivery.id, "sent", sent, ticket_id=card)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking rows; let requests in flight finish (up to `timeout` s) and record
        their outcome. Anything unfinished stays in the outbox for the next start."""
        self._stopping = True
        self.kick()
        tasks = list(self._busy.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._cancel_record_timer()
        while self._ended:
            ended, self._ended = self._ended, []
            try:
                await self.run_db(self.outbox.record, [outcome for _, outcome in ended])
            except BaseException:
                self._ended[:0] = ended
                raise
            for lane, _ in ended:
                self._busy.pop(lane, None)


def _backoff(attempts: int) -> float:
    """1, 2, 4 ... seconds, capped at 5 minutes, with jitter so retries do not align."""
    base = min(MAX_BACKOFF_S, 2.0 ** max(attempts - 1, 0))
    return base * random.uniform(0.8, 1.2)
