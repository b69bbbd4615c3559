"""Telegram's sending limits as bookkeeping: when may the next message to a chat go.

Pure arithmetic on a given clock (GCRA), no I/O: the outbox's `Sender` asks it before
each delivery, and tells it of a 429's retry_after.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """At most `burst` messages at once, then one every 1/`rate` seconds."""

    rate: float  # messages per second, sustained
    burst: int = 1


@dataclass(frozen=True)
class Limits:
    """Telegram's limits: about 30 messages/s in total, 1/s in a private chat (short
    bursts allowed), 20/min in a group. `margin` spaces messages a little wider so
    network jitter never makes Telegram see them closer than the limit."""

    total: Limit = Limit(30.0)
    private: Limit = Limit(1.0, burst=3)
    group: Limit = Limit(20 / 60)
    margin: float = 1.05


class RateLimiter:
    """Per-chat and overall limits (GCRA: a token bucket kept as one timestamp each).

    Pure bookkeeping on a given clock: `ready_at` says when a message to a chat may go,
    `take` records one that goes now, `pause` honours a 429's retry_after.
    """

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()
        self._tat: dict[int | None, float] = {}  # chat id (None: all) -> theoretical time
        self._paused: dict[int | None, float] = {}
        self._lock = threading.Lock()  # the sender uses it from the loop and the db thread

    def _limit(self, chat_id: int | None) -> Limit:
        if chat_id is None:
            return self.limits.total
        return self.limits.private if chat_id > 0 else self.limits.group

    def _bucket_ready(self, key: int | None) -> float:
        limit = self._limit(key)
        interval = self.limits.margin / limit.rate
        return self._tat.get(key, 0.0) - (limit.burst - 1) * interval

    def ready_at(self, chat_id: int, now: float) -> float:
        """The earliest time (>= now) a message to `chat_id` may be sent."""
        with self._lock:
            return self._ready_at(chat_id, now)

    def _ready_at(self, chat_id: int, now: float) -> float:
        return max(now, self._bucket_ready(None), self._bucket_ready(chat_id),
                   self._paused.get(None, 0.0), self._paused.get(chat_id, 0.0))

    def take(self, chat_id: int, now: float) -> None:
        """Count a message to `chat_id` sent at `now` (call when ready_at(...) <= now)."""
        with self._lock:
            self._take(chat_id, now)

    def _take(self, chat_id: int, now: float) -> None:
        for key in (None, chat_id):
            interval = self.limits.margin / self._limit(key).rate
            self._tat[key] = max(self._tat.get(key, 0.0), now) + interval
        if len(self._tat) > 10_000:  # forget chats whose buckets are full again
            self._tat = {k: v for k, v in self._tat.items() if k is None or v > now}

    def try_take(self, chat_id: int, now: float) -> float | None:
        """Take room for a message now if there is some (None); else say when there is."""
        with self._lock:
            ready = self._ready_at(chat_id, now)
            if ready > now:
                return ready
            self._take(chat_id, now)
            return None

    def reserve(self, chat_id: int, now: float, within: float = math.inf
                ) -> tuple[float, bool]:
        """The earliest time a message to `chat_id` may go, and whether its room was
        taken: it is when that time is no later than `now + within`. Several messages
        can so be scheduled at once, each in its own slot."""
        with self._lock:
            return self._reserve(chat_id, now, within)

    def _reserve(self, chat_id: int, now: float, within: float) -> tuple[float, bool]:
        ready = self._ready_at(chat_id, now)
        if ready > now + within:
            return ready, False
        self._take(chat_id, ready)
        return ready, True

    def plan(self, chat_ids: Sequence[int], now: float, within: float
             ) -> list[tuple[float, bool]]:
        """What `reserve` would say for messages to `chat_ids`, one after another in this
        order, without taking any room."""
        with self._lock:
            kept = self._tat
            self._tat = {key: kept[key] for key in {None, *chat_ids} if key in kept}
            try:
                return [self._reserve(chat_id, now, within) for chat_id in chat_ids]
            finally:
                self._tat = kept

    def pause(self, chat_id: int | None, until: float) -> None:
        """Send nothing to `chat_id` (None: to anyone) before `until`."""
        with self._lock:
            self._paused[chat_id] = max(self._paused.get(chat_id, 0.0), until)
