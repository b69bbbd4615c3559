"""YAML flows: the menus and short dialogues editors write (see flows/README.md).

A flow file holds one flow (a mapping with `id`) or several (`flows:` list). A flow has
an `id`, a `title` per language, a `start` step and `steps`, a mapping of step id to
step. Step kinds so far: `menu`, `message`, `article`, `handover`. Every problem is
reported as `file:line: message`; loading collects all of them before failing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from navigator.problems import ContentError, LineDict, LineList, Problem, load_yaml

LANGUAGES = ("ru", "en")
FALLBACK_LANGUAGE = "ru"
MAIN_FLOW = "main"
# Ids travel inside Telegram callback data (64 bytes at most), so they stay short.
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,23}$")

STEP_FIELDS: dict[str, dict[str, bool]] = {
    # kind -> {field: required}
    "menu": {"text": True, "options": True},
    "message": {"text": True, "options": False, "next": False},
    "article": {"article": True, "text": False, "next": False},
    "handover": {"type": False, "text": False},
}
COMMON_STEP_FIELDS = {"kind"}
OPTION_TARGETS = ("goto", "flow", "article", "handover")
FLOW_FIELDS = {"id", "title", "start", "steps"}

_templates = SandboxedEnvironment(autoescape=True)


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
        """The text in `language` as a sandboxed Jinja2 template, HTML-escaped values."""
        return _templates.from_string(self.get(language)).render(**context)


@dataclass(frozen=True)
class Option:
    """A menu button: its label and where it leads (`target` is one of OPTION_TARGETS)."""

    label: Localized
    target: str
    value: str
    line: int


@dataclass(frozen=True)
class Step:
    id: str
    kind: str
    path: Path
    line: int
    text: Localized | None = None
    options: tuple[Option, ...] = ()
    next: str | None = None
    article: str | None = None
    request_type: str = "question"


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

    def step(self, flow_id: str, step_id: str) -> Step | None:
        flow = self.flows.get(flow_id)
        return flow.steps.get(step_id) if flow else None

    def article_references(self) -> Iterable[tuple[str, Path, int]]:
        """Every article id a flow points at, with where it is written."""
        for flow in self.flows.values():
            for step in flow.steps.values():
                if step.article:
                    yield step.article, step.path, step.line
                for option in step.options:
                    if option.target == "article":
                        yield option.value, step.path, option.line


def load_flows(directory: Path) -> FlowSet:
    """Load every `*.yaml` / `*.yml` under `directory`; raise ContentError on any error."""
    flows, problems = check_flows(directory)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ContentError(errors)
    return flows


def check_flows(directory: Path) -> tuple[FlowSet, list[Problem]]:
    """Load what can be loaded and return it with every problem found (errors, warnings)."""
    flow_set = FlowSet()
    problems: list[Problem] = []
    files = sorted([*directory.rglob("*.yaml"), *directory.rglob("*.yml")])
    if not directory.is_dir():
        problems.append(Problem(directory, 0, "flows folder not found"))
    for path in files:
        try:
            document = load_yaml(path.read_text(encoding="utf-8"), path)
        except ContentError as exc:
            problems.extend(exc.problems)
            continue
        except UnicodeDecodeError as exc:
            problems.append(Problem(path, 1, f"not UTF-8 text: {exc.reason}"))
            continue
        for flow in _parse_file(document, path, problems):
            if flow.id in flow_set.flows:
                first = flow_set.flows[flow.id]
                problems.append(
                    Problem(path, flow.line, f"duplicate flow id {flow.id!r} "
                            f"(first defined at {first.path}:{first.line})")
                )
                continue
            flow_set.flows[flow.id] = flow
    _check_links(flow_set, problems)
    if not problems and MAIN_FLOW not in flow_set.flows:
        problems.append(Problem(directory, 0, f"no flow with id {MAIN_FLOW!r} (the main menu)"))
    flow_set.warnings = [p for p in problems if p.severity == "warning"]
    return flow_set, problems


def _parse_file(document: Any, path: Path, problems: list[Problem]) -> list[Flow]:
    if document is None:
        problems.append(Problem(path, 1, "empty flow file", "warning"))
        return []
    if isinstance(document, LineDict) and "flows" in document:
        items = document["flows"]
        if not isinstance(items, LineList):
            problems.append(Problem(path, document.line_of("flows"), "`flows` must be a list"))
            return []
    elif isinstance(document, LineDict):
        items = LineList([document])
        items.line, items.item_lines = document.line, [document.line]
    else:
        problems.append(Problem(path, 1, "a flow file holds a flow (mapping) or `flows:` list"))
        return []
    flows = []
    for index, item in enumerate(items):
        if not isinstance(item, LineDict):
            problems.append(Problem(path, items.line_of(index), "a flow must be a mapping"))
            continue
        flow = _parse_flow(item, path, problems)
        if flow:
            flows.append(flow)
    return flows


def _parse_flow(data: LineDict, path: Path, problems: list[Problem]) -> Flow | None:
    _check_fields(data, FLOW_FIELDS, path, problems, "flow")
    flow_id = data.get("id")
    if not isinstance(flow_id, str) or not ID_PATTERN.match(flow_id):
        problems.append(Problem(path, data.line_of("id"), _bad_id("flow id", flow_id)))
        return None
    steps_data = data.get("steps")
    if not isinstance(steps_data, LineDict) or not steps_data:
        problems.append(Problem(path, data.line_of("steps"), "`steps` must be a mapping "
                                "of step id to step"))
        return None
    steps: dict[str, Step] = {}
    for step_id, step_data in steps_data.items():
        line = steps_data.line_of(step_id)
        if not isinstance(step_id, str) or not ID_PATTERN.match(step_id):
            problems.append(Problem(path, line, _bad_id("step id", step_id)))
            continue
        step = _parse_step(step_id, step_data, path, line, problems)
        if step:
            steps[step_id] = step
    start = data.get("start", next(iter(steps_data), None))
    if start not in steps_data:
        problems.append(Problem(path, data.line_of("start"),
                                f"start step {start!r} is not among the steps"))
    title = None
    if "title" in data:
        title = _localized(data["title"], path, data.line_of("title"), problems)
    return Flow(flow_id, title or Localized({FALLBACK_LANGUAGE: flow_id}), str(start), steps,
                path, data.line)


def _parse_step(
    step_id: str, data: Any, path: Path, line: int, problems: list[Problem]
) -> Step | None:
    if not isinstance(data, LineDict):
        problems.append(Problem(path, line, f"step {step_id!r} must be a mapping"))
        return None
    kind = data.get("kind")
    if kind not in STEP_FIELDS:
        problems.append(Problem(path, data.line_of("kind"),
                                f"unknown step kind {kind!r}{_did_you_mean(kind, STEP_FIELDS)}"))
        return None
    fields = STEP_FIELDS[kind]
    _check_fields(data, set(fields) | COMMON_STEP_FIELDS, path, problems, f"{kind} step")
    for name, required in fields.items():
        if required and name not in data:
            problems.append(Problem(path, data.line, f"{kind} step {step_id!r} needs `{name}`"))
    text = None
    if "text" in data:
        text = _localized(data["text"], path, data.line_of("text"), problems)
    options = _parse_options(data.get("options"), path, data, problems) if "options" in data else ()
    request_type = data.get("type", "question")
    if not isinstance(request_type, str) or not ID_PATTERN.match(request_type):
        problems.append(Problem(path, data.line_of("type"), _bad_id("request type", request_type)))
    return Step(
        id=step_id, kind=kind, path=path, line=data.line, text=text, options=options,
        next=_optional_str(data, "next", path, problems),
        article=_optional_str(data, "article", path, problems),
        request_type=str(request_type),
    )


def _parse_options(
    items: Any, path: Path, step: LineDict, problems: list[Problem]
) -> tuple[Option, ...]:
    if not isinstance(items, LineList) or not items:
        problems.append(Problem(path, step.line_of("options"), "`options` must be a "
                                "non-empty list"))
        return ()
    options = []
    for index, item in enumerate(items):
        line = items.line_of(index)
        if not isinstance(item, LineDict):
            problems.append(Problem(path, line, "an option must be a mapping with `label` "
                                    f"and one of {', '.join(OPTION_TARGETS)}"))
            continue
        _check_fields(item, {"label", *OPTION_TARGETS}, path, problems, "option")
        targets = [t for t in OPTION_TARGETS if t in item]
        if len(targets) != 1:
            problems.append(Problem(path, line, "an option needs exactly one of "
                                    f"{', '.join(OPTION_TARGETS)} (found {len(targets)})"))
            continue
        label = _localized(item.get("label"), path, item.line_of("label"), problems)
        value = item[targets[0]]
        if not isinstance(value, str) or not value:
            problems.append(Problem(path, item.line_of(targets[0]),
                                    f"`{targets[0]}` must be a non-empty string"))
            continue
        if label:
            options.append(Option(label, targets[0], value, line))
    return tuple(options)


def _localized(value: Any, path: Path, line: int, problems: list[Problem]) -> Localized | None:
    lines: dict[str, int] = {}
    if isinstance(value, str):
        texts = {FALLBACK_LANGUAGE: value}
    elif isinstance(value, LineDict) and value:
        lines = {language: value.line_of(language) for language in value}
        texts = {}
        for language, text in value.items():
            if language not in LANGUAGES:
                problems.append(Problem(path, value.line_of(language), f"unknown language "
                                        f"{language!r}{_did_you_mean(language, LANGUAGES)}"))
            elif not isinstance(text, str):
                problems.append(Problem(path, value.line_of(language), "a text must be a string"))
            else:
                texts[language] = text
    else:
        problems.append(Problem(path, line, "expected a text or a mapping of language to text"))
        return None
    for language, text in texts.items():
        try:
            _templates.parse(text)
        except TemplateSyntaxError as exc:
            problems.append(Problem(path, lines.get(language, line) + max(exc.lineno - 1, 0),
                                    f"template error in {language!r} text: {exc.message}"))
    for language in LANGUAGES:
        if language not in texts:
            problems.append(Problem(path, line, f"missing {language!r} translation", "warning"))
    return Localized(texts) if texts else None


def _check_links(flow_set: FlowSet, problems: list[Problem]) -> None:
    for flow in flow_set.flows.values():
        for step in flow.steps.values():
            if step.next and step.next not in flow.steps:
                problems.append(Problem(step.path, step.line, f"`next` points at missing step "
                                        f"{step.next!r}{_did_you_mean(step.next, flow.steps)}"))
            for option in step.options:
                if option.target == "goto" and option.value not in flow.steps:
                    problems.append(Problem(step.path, option.line, f"`goto` points at missing "
                                            f"step {option.value!r}"
                                            f"{_did_you_mean(option.value, flow.steps)}"))
                if option.target == "flow" and option.value not in flow_set.flows:
                    problems.append(Problem(step.path, option.line, f"`flow` points at missing "
                                            f"flow {option.value!r}"
                                            f"{_did_you_mean(option.value, flow_set.flows)}"))


def _check_fields(
    data: LineDict, allowed: set[str], path: Path, problems: list[Problem], what: str
) -> None:
    for key in data:
        if key not in allowed:
            problems.append(Problem(path, data.line_of(key), f"unknown field {key!r} in {what}"
                                    f"{_did_you_mean(key, allowed)}"))


def _optional_str(data: LineDict, key: str, path: Path, problems: list[Problem]) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        problems.append(Problem(path, data.line_of(key), f"`{key}` must be a string"))
        return None
    return value


def _did_you_mean(word: Any, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _bad_id(what: str, value: Any) -> str:
    return (f"{what} {value!r} must be 1-24 characters of lowercase latin letters, digits, "
            "'-' or '_'")
