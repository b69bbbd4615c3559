"""The period a report covers: whole local days in the desk's time zone, and the period
of equal length right before it (every figure is shown beside its previous value)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_DAYS = 30


class PeriodError(ValueError):
    """A period that cannot be reported on (said in the user's terms)."""


@dataclass(frozen=True)
class Period:
    """Local days `first` to `last`, both included, in `zone`."""

    first: date
    last: date
    zone: ZoneInfo

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        """The first day's local midnight, in UTC (what the store holds)."""
        return self._midnight(self.first)

    @property
    def end(self) -> datetime:
        """The local midnight after the last day, in UTC: the period is [start, end)."""
        return self._midnight(self.last + timedelta(days=1))

    def previous(self) -> Period:
        """The same number of days right before this period."""
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1),
                      self.zone)

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.days)]

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(), self.zone).astimezone(UTC)


def period_for(first: date | None, last: date | None, today: date, zone: ZoneInfo,
               days: int = DEFAULT_DAYS) -> Period:
    """The period from the command line: both ends given, or one of them and `days`
    around it, or the last `days` days up to `today` (included)."""
    if last is None:
        last = today if first is None else max(first, today)
    if first is None:
        first = last - timedelta(days=days - 1)
    if first > last:
        raise PeriodError(f"the period starts ({first}) after it ends ({last})")
    return Period(first, last, zone)


BOT_MAX_DAYS = 366  # a year of a busy desk renders in ~20 s: well within a delivery's lease
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")


def period_in_words(words: str, today: date, zone: ZoneInfo) -> Period:
    """The period an agent asks for with `/report`: nothing (the last 30 days), a number
    of days up to `today` ("90"), a month ("2026-11"), a day ("2026-11-03") or two days
    ("2026-11-01 2026-11-15"). A month or range is cut at `today`: there are no figures
    for days to come. Anything else, or more than BOT_MAX_DAYS days: PeriodError."""
    parts = words.split()
    if not parts:
        return period_for(None, None, today, zone)
    if len(parts) == 1 and parts[0].isdecimal() and len(parts[0]) <= 4:
        days = int(parts[0])
        if not 1 <= days <= BOT_MAX_DAYS:
            raise PeriodError(f"from 1 to {BOT_MAX_DAYS} days")
        return period_for(None, None, today, zone, days)
    try:
        if len(parts) == 1 and (month := _MONTH.fullmatch(parts[0])):
            first = date(int(month.group(1)), int(month.group(2)), 1)
            last = (first + timedelta(days=31)).replace(day=1) - timedelta(days=1)
        elif len(parts) in (1, 2):
            first, last = date.fromisoformat(parts[0]), date.fromisoformat(parts[-1])
        else:
            raise PeriodError(f"not a period: {words!r}")
    except ValueError as exc:  # PeriodError included
        raise PeriodError(f"not a period: {words!r}") from exc
    if first > today:
        raise PeriodError(f"the period starts ({first}) after today ({today})")
    period = period_for(first, min(last, today), today, zone)
    if period.days > BOT_MAX_DAYS:
        raise PeriodError(f"from 1 to {BOT_MAX_DAYS} days")
    return period
