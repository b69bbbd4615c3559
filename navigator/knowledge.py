"""Markdown articles: front matter, title, sections, links, and the checks editors run.

One article per `.md` file under the knowledge root. Front matter is optional YAML
between `---` lines: title, questions, tags, lang, id, translation_of, sources. Without
a title the first `#` heading is used, else the file name. `##`/`###` sections are the
retrieval unit; the article is the answering unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from navigator.languages import LANGUAGES
from navigator.problems import ContentError, LineDict, Problem, load_yaml

FRONT_MATTER_FIELDS = {"title", "questions", "tags", "lang", "id", "translation_of", "sources"}
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


@dataclass(frozen=True)
class Section:
    """A `##`/`###` part of an article (or its intro, with an empty heading path)."""

    headings: tuple[str, ...]
    text: str
    line: int


@dataclass(frozen=True)
class Article:
    id: str
    path: str  # relative to the knowledge root, with `/` separators
    lang: str
    title: str
    body: str
    sections: tuple[Section, ...]
    questions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    translation_of: str | None = None


@dataclass
class KnowledgeBase:
    """The loaded articles plus the problems of the files that could not be loaded."""

    root: Path
    articles: list[Article] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def get(self, article_id: str, language: str = "ru") -> Article | None:
        """The article with this id in `language`, else in Russian, else in any language."""
        matches = [a for a in self.articles if a.id == article_id]
        for wanted in (language, "ru"):
            for article in matches:
                if article.lang == wanted:
                    return article
        return matches[0] if matches else None

    def by_path(self, path: str) -> Article | None:
        return next((a for a in self.articles if a.path == path), None)


def load_knowledge(root: Path) -> KnowledgeBase:
    """Load every article under `root`. Broken files are reported and skipped, never fatal."""
    base = KnowledgeBase(root)
    if not root.is_dir():
        base.problems.append(Problem(root, 0, "knowledge folder not found"))
        return base
    seen: dict[tuple[str, str], Article] = {}
    for path in sorted(root.rglob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        try:
            article, warnings = parse_article(path, root)
        except ContentError as exc:
            base.problems.extend(exc.problems)
            continue
        base.problems.extend(warnings)
        key = (article.id, article.lang)
        if key in seen:
            base.problems.append(Problem(path, 1, f"duplicate article id {article.id!r} "
                                         f"({article.lang}); first in {seen[key].path}"))
            continue
        seen[key] = article
        base.articles.append(article)
    base.problems.extend(_broken_links(base))
    return base


def parse_article(path: Path, root: Path) -> tuple[Article, list[Problem]]:
    """Parse one Markdown file; raise ContentError when it cannot be used at all."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ContentError([Problem(path, 1, f"not UTF-8 text: {exc.reason}")]) from None
    meta, body, body_line = _split_front_matter(text, path)
    warnings: list[Problem] = []
    for key in meta:
        if key not in FRONT_MATTER_FIELDS:
            warnings.append(Problem(path, meta.line_of(key), f"unknown front matter field "
                                    f"{key!r}", "warning"))
    relative = PurePosixPath(path.relative_to(root).as_posix())
    lang = _text(meta, "lang", path) or \
        (relative.parts[0] if relative.parts[0] in LANGUAGES else "ru")
    if lang not in LANGUAGES:
        raise ContentError([Problem(path, meta.line_of("lang"), f"unknown lang {lang!r}; "
                                    f"expected one of {', '.join(LANGUAGES)}")])
    sections, first_heading = _sections(body, body_line)
    # A title is shown as a heading and a button label, which can't be blank.
    title = _text(meta, "title", path) or (first_heading or "").strip() or \
        path.stem.replace("-", " ").replace("_", " ").strip() or relative.as_posix()
    article = Article(
        id=_text(meta, "id", path) or relative.with_suffix("").as_posix(),
        path=relative.as_posix(),
        lang=lang,
        title=title,
        body=body,
        sections=sections,
        questions=_strings(meta, "questions", path),
        tags=_strings(meta, "tags", path),
        sources=_strings(meta, "sources", path),
        translation_of=_text(meta, "translation_of", path),
    )
    return article, warnings


def _split_front_matter(text: str, path: Path) -> tuple[LineDict, str, int]:
    """Return (front matter, body, line where the body starts)."""
    lines = text.splitlines(keepends=True)
    empty = LineDict()
    empty.line, empty.key_lines = 1, {}
    if not lines or lines[0].strip() != "---":
        return empty, text, 1
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            meta = load_yaml("".join(lines[1:index]), path, first_line=2)
            if meta is None:
                return empty, "".join(lines[index + 1:]), index + 2
            if not isinstance(meta, LineDict):
                raise ContentError([Problem(path, 2, "front matter must be a YAML mapping")])
            return meta, "".join(lines[index + 1:]), index + 2
    raise ContentError([Problem(path, 1, "front matter starts with `---` but never ends")])


def _sections(body: str, first_line: int) -> tuple[tuple[Section, ...], str | None]:
    """Split the body on `##`/`###` headings (not inside code fences)."""
    sections: list[Section] = []
    title: str | None = None
    path: list[str] = []
    buffer: list[str] = []
    start = first_line
    in_fence = False

    def flush() -> None:
        text = "".join(buffer).strip()
        if text:
            sections.append(Section(tuple(path), text, start))

    for offset, line in enumerate(body.splitlines(keepends=True)):
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading and len(heading.group(1)) == 1 and title is None:
            title = heading.group(2)
            continue
        if heading and len(heading.group(1)) in (2, 3):
            flush()
            buffer = []
            start = first_line + offset
            level = len(heading.group(1))
            path = [*path[: level - 2], heading.group(2)][: level - 1]
            continue
        buffer.append(line)
    flush()
    return tuple(sections), title


def _text(meta: LineDict, key: str, path: Path) -> str | None:
    """A front matter field that holds one text (a number is read as text); None if it
    is missing or blank."""
    value: Any = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ContentError([Problem(path, meta.line_of(key), f"`{key}` must be a text")])
    return str(value).strip() or None


def _strings(meta: LineDict, key: str, path: Path) -> tuple[str, ...]:
    value: Any = meta.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v) for v in value)
    raise ContentError([Problem(path, meta.line_of(key), f"`{key}` must be a list of strings")])


def _broken_links(base: KnowledgeBase) -> list[Problem]:
    problems = []
    for article in base.articles:
        path = base.root / article.path
        text = path.read_text(encoding="utf-8")
        for match in _LINK.finditer(text):
            target = match.group(2).split("#", 1)[0]
            if not target or "://" in target or target.startswith(("mailto:", "tg:")):
                continue
            if not (path.parent / target).exists():
                line = text.count("\n", 0, match.start()) + 1
                problems.append(Problem(path, line, f"link to missing file {target!r}"))
    return problems
