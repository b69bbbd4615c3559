"""What a flow is: flows, steps, options, texts in several languages (the language
editors write is documented in flows/README.md; loading it is navigator.flows.loading)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Template
from jinja2.sandbox import SandboxedEnvironment

from navigator.languages import FALLBACK_LANGUAGE
from navigator.problems import Problem

MAIN_FLOW = "main"
# Ids travel inside Telegram callback data (64 bytes at most), so they stay short.
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")
VARIABLE_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")

ASK_TYPES = ("text", "number", "choice", "yesno", "email", "stellar_account", "regex")
# kind -> {field: required}
STEP_FIELDS: dict[str, dict[str, bool]] = {
    "message": {"text": True, "options": False, "next": False, "links": False, "image": False},
    "menu": {"text": True, "options": True, "links": False, "image": False},
    "ask": {"text": True, "var": True, "type": False, "choices": False, "pattern": False,
            "min": False, "max": False, "retry": False, "next": False},
    "branch": {"cases": True, "else": False},
    "set": {"vars": True, "next": False},
    "article": {"article": True, "text": False, "next": False},
    "search": {"text": False, "next": False},
    "handover": {"type": False, "text": False, "question": False, "once": False,
                 "unique_by": False, "duplicate": False},
    "goto": {"flow": True, "step": False},
    "call": {"flow": True, "next": False},
    "end": {"text": False},
}
COMMON_STEP_FIELDS = {"kind"}
OPTION_TARGETS = ("goto", "flow", "article", "handover", "url")
FLOW_FIELDS = {"id", "title", "start", "steps"}

templates = SandboxedEnvironment(autoescape=True)


# Compiling a text costs about a millisecond, rendering it microseconds, and every menu
# click renders a step's text: each distinct text is compiled once. Templates render
# the same from any thread.
@functools.lru_cache(maxsize=4096)
def template(source: str) -> Template:
    """`source` as a sandboxed, autoescaped Jinja2 template, compiled once."""
    return templates.from_string(source)


@functools.lru_cache(maxsize=4096)
def expression(source: str) -> Any:
    """`source` as a sandboxed Jinja2 expression (a branch condition), compiled once."""
    return templates.compile_expression(source)


@dataclass(frozen=True)
class Localized:
    """A text in several languages; a missing language falls back to Russian."""

    texts: dict[str, str]

    def get(self, language: str) -> str:
        if language in self.texts:
            return self.texts[language]
        if FALLBACK_LANGUAGE in self.texts:
            return self.texts[FALLBACK_LANGUAGE]
        return next(iter(self.texts.values()), "")

    def render(self, language: str, /, **context: Any) -> str:
        """The text in `language` as a sandboxed Jinja2 template, values HTML-escaped."""
        return template(self.get(language)).render(**context)


@dataclass(frozen=True)
class Option:
    """A menu button: its label and where it leads (`target` is one of OPTION_TARGETS)."""

    label: Localized
    target: str
    value: str
    line: int


@dataclass(frozen=True)
class Choice:
    """One answer of a `choice` question: the value stored and the button label."""

    value: str
    label: Localized


@dataclass(frozen=True)
class Case:
    """A `branch` case: a sandboxed Jinja2 condition and the step it leads to."""

    when: str
    goto: str
    line: int


@dataclass(frozen=True)
class Step:
    """One step of a flow. Which fields matter depends on `kind` (see STEP_FIELDS)."""

    id: str
    kind: str
    path: Path
    line: int
    text: Localized | None = None
    options: tuple[Option, ...] = ()
    links: tuple[Option, ...] = ()
    image: str | None = None
    next: str | None = None
    article: str | None = None
    # ask
    var: str | None = None
    ask_type: str = "text"
    choices: tuple[Choice, ...] = ()
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    retry: Localized | None = None
    # branch / set
    cases: tuple[Case, ...] = ()
    otherwise: str | None = None
    assignments: tuple[tuple[str, str], ...] = ()
    # handover
    request_type: str = "question"
    question: Localized | None = None
    once: bool = False
    unique_by: tuple[str, ...] = ()
    duplicate: Localized | None = None
    # goto / call
    flow: str | None = None
    target_step: str | None = None
    field_lines: dict[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, name: str) -> int:
        return self.field_lines.get(name, self.line)

    @property
    def waits_for_user(self) -> bool:
        """True if running this step stops and waits for the user (a way out of loops)."""
        if self.kind in ("menu", "ask", "search", "handover", "end"):
            return True
        if self.kind in ("message", "article"):
            return bool(self.options) or not self.next
        return False


@dataclass(frozen=True)
class Flow:
    id: str
    title: Localized
    start: str
    steps: dict[str, Step]
    path: Path
    line: int


@dataclass
class FlowSet:
    """All flows, by id. `main` is the main menu that /start and /menu show."""

    flows: dict[str, Flow] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)

    def step(self, flow_id: str | None, step_id: str | None) -> Step | None:
        flow = self.flows.get(flow_id or "")
        return flow.steps.get(step_id or "") if flow else None

    def steps(self) -> Iterator[tuple[Flow, Step]]:
        for flow in self.flows.values():
            for step in flow.steps.values():
                yield flow, step

    def article_references(self) -> Iterable[tuple[str, Path, int]]:
        """Every article id a flow points at, with where it is written."""
        for _, step in self.steps():
            if step.article:
                yield step.article, step.path, step.line_of("article")
            for option in step.options:
                if option.target == "article":
                    yield option.value, step.path, option.line
