"""Problems found in what editors commit, reported as `file:line: message`.

Shared by flows, knowledge and `navigator check`, so every problem looks the same.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.path}:{self.line}: {prefix}{self.message}"


class ContentError(Exception):
    """Content that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class LineDict(dict):
    """A YAML mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A YAML sequence that remembers its line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):  # `? [a, b]`: PyYAML's own loader refuses it too
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "a key must be a plain value, not a list or a mapping", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


_UNCLOSED = {
    "while scanning a quoted scalar": "a quoted text",
    "while parsing a flow sequence": "a [ list",
    "while parsing a flow mapping": "a { mapping",
}


# Aliases (`*name`) let a few lines stand for a document of billions of values (the
# "billion laughs"): building, walking or printing it would never end. A document that
# stands for this many more characters and values than the file has is refused.
MAX_ALIAS_EXPANSION = 1_000_000


def load_yaml(text: str, path: Path, first_line: int = 1) -> Any:
    """Parse YAML keeping line numbers; a syntax error becomes a ContentError at its line.

    `first_line` is the file line where `text` starts (front matter starts at line 2).
    """
    loader: _LineLoader | None = None
    try:
        loader = _LineLoader(text)  # a SafeLoader subclass; refuses control characters
        node = loader.get_single_node()
        if node is not None and (bomb := _alias_bomb(node, len(text) + MAX_ALIAS_EXPANSION)):
            raise ContentError([Problem(path, bomb.start_mark.line + first_line,
                                        "aliases (*name) make this YAML too big to read")])
        value = loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise ContentError([Problem(path, first_line, "YAML nested too deeply")]) from None
    except yaml.MarkedYAMLError as exc:
        reason = exc.problem or str(exc)
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark and exc.context in _UNCLOSED and "end" in reason:
            # An unclosed quote or bracket: where it opens is where the editor must look.
            mark = exc.context_mark
            reason = f"{_UNCLOSED[exc.context]} opens here and never closes"
        line = (mark.line if mark else 0) + first_line
        raise ContentError([Problem(path, line, f"YAML syntax error: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise ContentError([Problem(path, first_line, f"YAML error: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if first_line != 1:
        _shift_lines(value, first_line - 1, set())
    return value


def _alias_bomb(root: yaml.Node, limit: int) -> yaml.Node | None:
    """The node where aliases blow the document up past `limit` characters and values
    (the first such node whose parts are each within it), or None. Each node is sized
    once, however many aliases use it."""
    sizes: dict[int, int] = {}
    nodes: dict[int, yaml.Node] = {}
    started: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack[-1]
        if id(node) in sizes:
            stack.pop()
            continue
        parts = _parts(node)
        if id(node) not in started:  # first visit: size the parts first
            started.add(id(node))
            stack.extend(p for p in parts if id(p) not in started)  # not a cycle
            continue
        stack.pop()
        nodes[id(node)] = node
        sizes[id(node)] = 1 + len(node.value) if isinstance(node, yaml.ScalarNode) else \
            1 + sum(sizes.get(id(p), 0) for p in parts)
    too_big = [n for key, n in nodes.items() if sizes[key] > limit and
               all(sizes.get(id(p), 0) <= limit for p in _parts(n))]
    return min(too_big, key=lambda n: n.start_mark.index, default=None)


def _parts(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


def _shift_lines(value: Any, offset: int, seen: set[int]) -> None:
    """Move every recorded line by `offset` (for YAML embedded further down a file);
    a value that aliases share is moved once."""
    if id(value) in seen or not isinstance(value, LineDict | LineList):
        return
    seen.add(id(value))
    if isinstance(value, LineDict):
        value.line += offset
        value.key_lines = {k: v + offset for k, v in value.key_lines.items()}
        for item in value.values():
            _shift_lines(item, offset, seen)
    else:
        value.line += offset
        value.item_lines = [v + offset for v in value.item_lines]
        for item in value:
            _shift_lines(item, offset, seen)


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest of `choices`, or an empty string."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
