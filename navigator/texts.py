"""What the bot says: Jinja2 templates in navigator/templates, per language.

Rendering is sandboxed and autoescaped: user names and questions can never inject
Telegram HTML (or forge an agent card).
"""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from typing import Any

import yaml
from jinja2 import FileSystemLoader
from jinja2.sandbox import SandboxedEnvironment

from navigator.languages import FALLBACK_LANGUAGE
from navigator.telegram_html import excerpt


class Texts:
    """`texts.say(language, key, **values)` renders one user-facing message."""

    def __init__(self) -> None:
        folder = resources.files("navigator") / "templates"
        self._env = SandboxedEnvironment(autoescape=True, loader=FileSystemLoader(str(folder)),
                                         trim_blocks=True, keep_trailing_newline=False)
        # `{{ text | excerpt(200) }}`: cut at a word, never inside an emoji or a flag.
        self._env.filters["excerpt"] = excerpt
        # `{{ waited | duration("ru") }}`: 5 мин, 2 ч 10 мин, 3 дн (the `duration` message).
        self._env.filters["duration"] = self._duration
        messages = yaml.safe_load((folder / "messages.yaml").read_text(encoding="utf-8"))
        self._messages = {
            key: {language: self._env.from_string(text) for language, text in variants.items()}
            for key, variants in messages.items()
        }

    def say(self, language: str, key: str, **values: Any) -> str:
        variants = self._messages[key]
        template = variants.get(language) or variants[FALLBACK_LANGUAGE]
        return template.render(**values)

    def _duration(self, span: timedelta | None, language: str) -> str:
        minutes = None if span is None else max(0, int(span.total_seconds() // 60))
        return self.say(language, "duration", minutes=minutes)

    def render(self, template_name: str, **values: Any) -> str:
        """Render a template file (an agent card, a report) from navigator/templates."""
        return self._env.get_template(template_name).render(**values).strip()
