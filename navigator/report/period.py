"""The period a report covers: whole local days in the desk's time zone, and the period
of equal length right before it (every figure is shown beside its previous value)."""

from __future__ import annotations

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
