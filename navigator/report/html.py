"""The report as one self-contained HTML file: Jinja2 templates with inline SVG charts
and an inline stylesheet (navigator/templates/report/), no scripts, nothing fetched.
It opens from a Telegram document or an e-mail attachment, and prints.

The words are in templates/report/labels.yaml (Russian, English); this module only
formats numbers, durations and dates the way each language writes them.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from importlib import resources
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from navigator.report.figures import Report

TEMPLATES = "templates/report"


def render_html(report: Report, language: str = "ru") -> str:
    """The report in `language` ("ru" or "en")."""
    folder = resources.files("navigator") / TEMPLATES
    labels = yaml.safe_load((folder / "labels.yaml").read_text(encoding="utf-8"))
    words = {key: variants.get(language, variants["ru"]) for key, variants in labels.items()}
    environment = Environment(loader=FileSystemLoader(str(folder)),
                              autoescape=select_autoescape(default=True),
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              extensions=["jinja2.ext.do"])
    formats = Formats(language, words)
    environment.filters.update(num=formats.number, dur=formats.duration, day=formats.day,
                               moment=formats.moment, plural=formats.plural,
                               pct=formats.percent, fmt=lambda text, **v: text.format(**v))
    environment.globals.update(share=share, nice_max=nice_max)
    return environment.get_template("report.html").render(r=report, t=words,
                                                         zone=report.period.zone)


def share(part: int, whole: int) -> float | None:
    """part / whole, or None when there is no whole to divide."""
    return part / whole if whole else None


def nice_max(value: float) -> float:
    """The top of a chart's scale: `value` rounded up to a round number (1, 2, 2.5, 3, 4,
    5, 6 or 8 times a power of ten), so the scale's half and top read easily."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 3, 4, 5, 6, 8, 10)
                if step * power >= value)


class Formats:
    """Numbers, shares, durations and dates as a reader of `language` writes them."""

    def __init__(self, language: str, words: dict[str, Any]):
        self.russian = language == "ru"
        self.words = words

    def number(self, value: float | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        text = f"{value:,.{digits}f}"
        if self.russian:  # 12 345,6: a thin no-break space between thousands, a comma
            text = text.replace(",", "\u202f").replace(".", ",")
        return text

    def percent(self, value: float | None) -> str:
        return "—" if value is None else f"{self.number(value * 100)}%"

    def duration(self, seconds: float | None) -> str:
        """2 ч 10 мин, 3 дн 4 ч, 25 мин (whole minutes; "—" for none)."""
        if seconds is None:
            return "—"
        units = self.words["units"]
        minutes = max(0, int(seconds // 60))
        days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
        if days:
            return f"{days} {units['d']} {hours} {units['h']}" if hours else \
                f"{days} {units['d']}"
        if hours:
            return f"{hours} {units['h']} {minutes} {units['min']}"
        return f"{minutes} {units['min']}"

    def day(self, value: date, short: bool = False) -> str:
        """1 ноября 2026 (or 01.11 / 1 Nov when `short`)."""
        if short:
            return value.strftime("%d.%m") if self.russian else \
                f"{value.day} {self.words['months'][value.month - 1][:3]}"
        return f"{value.day} {self.words['months'][value.month - 1]} {value.year}"

    def moment(self, value: datetime, zone: Any) -> str:
        """A moment in the desk's time zone: 21.11.2026 14:05 / 21 Nov 2026 14:05."""
        local = value.astimezone(zone)
        return local.strftime("%d.%m.%Y %H:%M") if self.russian else \
            f"{self.day(local.date(), short=True)} {local.year} {local:%H:%M}"

    def plural(self, count: int, forms: str) -> str:
        """The form of a noun for `count`: forms "день|дня|дней" (English: "day|days|days")."""
        one, few, many = forms.split("|")
        if not self.russian:
            return one if count == 1 else few
        if count % 10 == 1 and count % 100 != 11:
            return one
        if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
            return few
        return many
