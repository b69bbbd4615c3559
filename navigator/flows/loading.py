"""Loading flows from YAML (the language is documented in flows/README.md).

A flow file holds one flow (a mapping with `id`) or several (`flows:` list). A flow has
an `id`, a `title` per language, a `start` step and `steps`, a mapping of step id to
step. Loading collects every problem as `file:line: message` before failing; the graph
checks (dangling links, unreachable steps, loops with no way out) live in
navigator.flows.checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError

from navigator.flows.checks import check_graph
from navigator.flows.definitions import (
    ASK_TYPES,
    COMMON_STEP_FIELDS,
    FLOW_FIELDS,
    ID_PATTERN,
    MAIN_FLOW,
    OPTION_TARGETS,
    STEP_FIELDS,
    VARIABLE_PATTERN,
    Case,
    Choice,
    Flow,
    FlowSet,
    Localized,
    Option,
    Step,
    templates,
)
from navigator.languages import FALLBACK_LANGUAGE, LANGUAGES
from navigator.problems import ContentError, LineDict, LineList, Problem, did_you_mean, load_yaml


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
    if not directory.is_dir():
        return flow_set, [Problem(directory, 0, "flows folder not found")]
    for path in sorted([*directory.rglob("*.yaml"), *directory.rglob("*.yml")]):
        try:
            document = load_yaml(path.read_text(encoding="utf-8"), path)
        except ContentError as exc:
            problems.extend(exc.problems)
            continue
        except UnicodeDecodeError as exc:
            problems.append(Problem(path, 1, f"not UTF-8 text: {exc.reason}"))
            continue
        for flow in _Parser(path, problems).file(document):
            if flow.id in flow_set.flows:
                first = flow_set.flows[flow.id]
                problems.append(Problem(path, flow.line, f"duplicate flow id {flow.id!r} "
                                        f"(first defined at {first.path}:{first.line})"))
                continue
            flow_set.flows[flow.id] = flow
    problems.extend(check_graph(flow_set))
    if not any(p.severity == "error" for p in problems) and MAIN_FLOW not in flow_set.flows:
        problems.append(Problem(directory, 0, f"no flow with id {MAIN_FLOW!r} (the main menu)"))
    flow_set.warnings = [p for p in problems if p.severity == "warning"]
    return flow_set, problems


class _Parser:
    """Turns the YAML of one file into Flow objects, noting every problem with its line."""

    def __init__(self, path: Path, problems: list[Problem]):
        self.path = path
        self.problems = problems

    def problem(self, line: int, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(self.path, line, message, severity))  # type: ignore[arg-type]

    def file(self, document: Any) -> list[Flow]:
        if document is None:
            self.problem(1, "empty flow file", "warning")
            return []
        if isinstance(document, LineDict) and "flows" in document:
            items = document["flows"]
            if not isinstance(items, LineList):
                self.problem(document.line_of("flows"), "`flows` must be a list")
                return []
        elif isinstance(document, LineDict):
            items = LineList([document])
            items.line, items.item_lines = document.line, [document.line]
        else:
            self.problem(1, "a flow file holds a flow (mapping) or a `flows:` list")
            return []
        flows = []
        for index, item in enumerate(items):
            if not isinstance(item, LineDict):
                self.problem(items.line_of(index), "a flow must be a mapping")
            elif flow := self.flow(item):
                flows.append(flow)
        return flows

    def flow(self, data: LineDict) -> Flow | None:
        self.fields(data, FLOW_FIELDS, "flow")
        flow_id = data.get("id")
        if not isinstance(flow_id, str) or not ID_PATTERN.match(flow_id):
            self.problem(data.line_of("id"), _bad_id("flow id", flow_id))
            return None
        steps_data = data.get("steps")
        if not isinstance(steps_data, LineDict) or not steps_data:
            self.problem(data.line_of("steps"), "`steps` must be a mapping of step id to step")
            return None
        steps: dict[str, Step] = {}
        for step_id, step_data in steps_data.items():
            line = steps_data.line_of(step_id)
            if not isinstance(step_id, str) or not ID_PATTERN.match(step_id):
                self.problem(line, _bad_id("step id", step_id))
            elif step := self.step(step_id, step_data, line):
                steps[step_id] = step
        start = data.get("start", next(iter(steps_data), None))
        if start not in steps_data:
            self.problem(data.line_of("start"), f"start step {start!r} is not among the steps"
                         f"{did_you_mean(start, steps_data)}")
        title = self.text(data["title"], data.line_of("title")) if "title" in data else None
        return Flow(flow_id, title or Localized({FALLBACK_LANGUAGE: flow_id}), str(start), steps,
                    self.path, data.line)

    def step(self, step_id: str, data: Any, line: int) -> Step | None:
        if not isinstance(data, LineDict):
            self.problem(line, f"step {step_id!r} must be a mapping")
            return None
        kind = data.get("kind")
        if kind not in STEP_FIELDS:
            self.problem(data.line_of("kind"), f"unknown step kind {kind!r}"
                         f"{did_you_mean(kind, STEP_FIELDS)}; known: {', '.join(STEP_FIELDS)}")
            return None
        allowed = STEP_FIELDS[kind]
        self.fields(data, set(allowed) | COMMON_STEP_FIELDS, f"{kind} step")
        for name, required in allowed.items():
            if required and name not in data:
                self.problem(data.line, f"{kind} step {step_id!r} needs `{name}`")
        values: dict[str, Any] = {}
        if "text" in data:
            values["text"] = self.text(data["text"], data.line_of("text"))
        if "options" in data:
            values["options"] = self.options(data["options"], data.line_of("options"), kind)
        if "links" in data:
            values["links"] = self.options(data["links"], data.line_of("links"), "links")
        for name in ("next", "article", "image", "pattern"):
            values[name] = self.string(data, name)
        if kind == "ask":
            values.update(self.ask(data))
        elif kind == "branch":
            values["cases"] = self.cases(data.get("cases"), data.line_of("cases"))
            values["otherwise"] = self.string(data, "else")
        elif kind == "set":
            values["assignments"] = self.assignments(data.get("vars"), data.line_of("vars"))
        elif kind == "handover":
            values.update(self.handover(data))
        elif kind in ("goto", "call"):
            values["flow"] = self.string(data, "flow")
            values["target_step"] = self.string(data, "step")
        return Step(id=step_id, kind=kind, path=self.path, line=data.line,
                    field_lines=dict(data.key_lines),
                    **{k: v for k, v in values.items() if v is not None})

    def ask(self, data: LineDict) -> dict[str, Any]:
        values: dict[str, Any] = {}
        var = data.get("var")
        if not isinstance(var, str) or not VARIABLE_PATTERN.match(var):
            self.problem(data.line_of("var"), f"`var` {var!r} must be a lowercase name "
                         "(latin letters, digits, _)")
        else:
            values["var"] = var
        ask_type = data.get("type", "text")
        if ask_type not in ASK_TYPES:
            self.problem(data.line_of("type"), f"unknown answer type {ask_type!r}"
                         f"{did_you_mean(ask_type, ASK_TYPES)}; known: {', '.join(ASK_TYPES)}")
        else:
            values["ask_type"] = ask_type
        if ask_type == "choice":
            values["choices"] = self.choices(data.get("choices"), data.line_of("choices"))
        elif "choices" in data:
            self.problem(data.line_of("choices"), "`choices` only goes with `type: choice`")
        if ask_type == "regex":
            pattern = data.get("pattern")
            try:
                re.compile(str(pattern))
            except re.error as exc:
                self.problem(data.line_of("pattern"), f"bad regular expression: {exc}")
            if pattern is None:
                self.problem(data.line, "`type: regex` needs a `pattern`")
        for name, key in (("min", "minimum"), ("max", "maximum")):
            if name in data:
                if isinstance(data[name], int | float) and not isinstance(data[name], bool):
                    values[key] = float(data[name])
                else:
                    self.problem(data.line_of(name), f"`{name}` must be a number")
        if "retry" in data:
            values["retry"] = self.text(data["retry"], data.line_of("retry"))
        return values

    def handover(self, data: LineDict) -> dict[str, Any]:
        values: dict[str, Any] = {}
        request_type = data.get("type", "question")
        if not isinstance(request_type, str) or not ID_PATTERN.match(request_type):
            self.problem(data.line_of("type"), _bad_id("request type", request_type))
        else:
            values["request_type"] = request_type
        for name in ("question", "duplicate"):
            if name in data:
                values[name] = self.text(data[name], data.line_of(name))
        once = data.get("once", False)
        if not isinstance(once, bool):
            self.problem(data.line_of("once"), "`once` must be true or false")
        values["once"] = bool(once)
        unique_by = data.get("unique_by", [])
        if isinstance(unique_by, str):
            unique_by = [unique_by]
        if not isinstance(unique_by, list) or not all(isinstance(v, str) for v in unique_by):
            self.problem(data.line_of("unique_by"), "`unique_by` must be a variable name or "
                         "a list of them")
        else:
            values["unique_by"] = tuple(unique_by)
        return values

    def items(self, items: Any, line: int, what: str) -> Iterator[tuple[Any, int]]:
        """Each item of a YAML list with its line; a problem if it is not a non-empty list."""
        if not isinstance(items, LineList) or not items:
            self.problem(line, f"expected a non-empty list of {what}")
            return
        for index, item in enumerate(items):
            yield item, items.line_of(index)

    def options(self, items: Any, line: int, kind: str) -> tuple[Option, ...]:
        targets = ("url",) if kind == "links" else OPTION_TARGETS
        options = []
        for item, item_line in self.items(items, line, "buttons"):
            if not isinstance(item, LineDict):
                self.problem(item_line, f"a button is a mapping with `label` and one of "
                             f"{', '.join(targets)}")
                continue
            self.fields(item, {"label", *targets}, "button")
            found = [t for t in targets if t in item]
            if len(found) != 1:
                self.problem(item_line, f"a button needs exactly one of {', '.join(targets)} "
                             f"(found {len(found)})")
                continue
            value = item[found[0]]
            if not isinstance(value, str) or not value:
                self.problem(item.line_of(found[0]), f"`{found[0]}` must be a non-empty string")
                continue
            if found[0] == "url" and not re.match(r"^(https?|tg)://", value):
                self.problem(item.line_of("url"), "a link must start with https://, http:// "
                             "or tg://")
                continue
            if label := self.text(item.get("label"), item.line_of("label")):
                options.append(Option(label, found[0], value, item_line))
        return tuple(options)

    def choices(self, items: Any, line: int) -> tuple[Choice, ...]:
        choices = []
        for item, item_line in self.items(items, line, "`choices` (`type: choice` needs them)"):
            if isinstance(item, LineDict):
                self.fields(item, {"value", "label"}, "choice")
                value = item.get("value")
                label = self.text(item.get("label", value), item.line_of("label"))
            else:
                value, label = item, self.text(item, item_line)
            if not isinstance(value, str | int) or label is None:
                self.problem(item_line, "a choice is a text, or a mapping with `value` and "
                             "`label`")
                continue
            choices.append(Choice(str(value), label))
        return tuple(choices)

    def cases(self, items: Any, line: int) -> tuple[Case, ...]:
        cases = []
        for item, item_line in self.items(items, line, "cases (`when` + `goto`)"):
            if not isinstance(item, LineDict) or not {"when", "goto"} <= set(item):
                self.problem(item_line, "a case needs `when` (a condition) and `goto` (a step)")
                continue
            self.fields(item, {"when", "goto"}, "case")
            when = str(item["when"])
            try:
                templates.compile_expression(when)
            except TemplateSyntaxError as exc:
                self.problem(item.line_of("when"), f"bad condition {when!r}: {exc.message}")
                continue
            cases.append(Case(when, str(item["goto"]), item.line_of("goto")))
        return tuple(cases)

    def assignments(self, items: Any, line: int) -> tuple[tuple[str, str], ...]:
        if not isinstance(items, LineDict) or not items:
            self.problem(line, "`vars` must be a mapping of variable name to value")
            return ()
        result = []
        for name, value in items.items():
            if not isinstance(name, str) or not VARIABLE_PATTERN.match(name):
                self.problem(items.line_of(name), f"bad variable name {name!r}")
                continue
            text = str(value)
            try:
                templates.parse(text)
            except TemplateSyntaxError as exc:
                self.problem(items.line_of(name), f"template error in {name!r}: {exc.message}")
                continue
            result.append((name, text))
        return tuple(result)

    def text(self, value: Any, line: int) -> Localized | None:
        lines: dict[str, int] = {}
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            texts = {FALLBACK_LANGUAGE: str(value)}
        elif isinstance(value, LineDict) and value:
            texts = {}
            lines = {language: value.line_of(language) for language in value}
            for language, text in value.items():
                if language not in LANGUAGES:
                    self.problem(value.line_of(language), f"unknown language {language!r}"
                                 f"{did_you_mean(language, LANGUAGES)}")
                elif not isinstance(text, str):
                    self.problem(value.line_of(language), "a text must be a string")
                else:
                    texts[language] = text
        else:
            self.problem(line, "expected a text or a mapping of language to text")
            return None
        for language, text in texts.items():
            if not text.strip():  # Telegram refuses an empty message or button
                self.problem(lines.get(language, line), f"the {language!r} text is empty")
            try:
                templates.parse(text)
            except TemplateSyntaxError as exc:
                self.problem(lines.get(language, line) + max(exc.lineno - 1, 0),
                             f"template error in {language!r} text: {exc.message}")
        for language in LANGUAGES:
            if language not in texts:
                self.problem(line, f"missing {language!r} translation", "warning")
        return Localized(texts) if texts else None

    def string(self, data: LineDict, key: str) -> str | None:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            self.problem(data.line_of(key), f"`{key}` must be a string")
            return None
        return value

    def fields(self, data: LineDict, allowed: set[str], what: str) -> None:
        for key in data:
            if key not in allowed:
                self.problem(data.line_of(key), f"unknown field {key!r} in {what}"
                             f"{did_you_mean(key, allowed)}")


def _bad_id(what: str, value: Any) -> str:
    return (f"{what} {value!r} must be 1-24 characters of lowercase latin letters, digits, "
            "'-' or '_'")
