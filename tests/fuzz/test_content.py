"""What editors commit: flow YAML and Markdown articles with front matter. Whatever the
files hold, loading ends (never a hang) with what could be loaded and each problem as
`file:line: message` (never a traceback); and what loads without errors works: the
engine runs every menu of the flows, every article renders."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import hypothesis
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from navigator.answering import article_html
from navigator.events import ButtonPressed, UserCommand, UserRef, UserText
from navigator.flows import ASK_TYPES, FLOW_FIELDS, STEP_FIELDS, check_flows
from navigator.knowledge import FRONT_MATTER_FIELDS, load_knowledge
from navigator.render import html_to_plain

from .strategies import texts
from .world import FLOWS, World, check_replies, no_hang, share

# Far beyond what loading a file takes, even on a loaded machine (YAML nested a few
# hundred deep costs PyYAML seconds before it gives up): only a hang gets there. The
# tests use it instead of hypothesis's deadline, which a busy machine would trip.
HANG_S = 30



# Flow YAML -----------------------------------------------------------------------------

SHIPPED_FLOWS = {p.name: p.read_text(encoding="utf-8") for p in sorted(FLOWS.glob("*.yaml"))}
WORDS = sorted({*FLOW_FIELDS, *(f for fields in STEP_FIELDS.values() for f in fields),
                *STEP_FIELDS, *ASK_TYPES, "main", "menu", "ru", "en", "label", "goto", "url",
                "when", "value", "https://t.me/x", "{{ name }}", "{% if x %}", "<<"})

scalars = st.one_of(st.sampled_from(WORDS), texts(30), st.integers(-5, 10**20), st.booleans(),
                    st.none(), st.floats(allow_nan=True))
# (Empty lists and mappings are leaves: an extension that needs no `inner` makes
# hypothesis warn that it does not recurse.)
documents = st.recursive(
    scalars | st.just([]) | st.just({}), lambda inner: st.lists(inner, min_size=1, max_size=4)
    | st.dictionaries(st.one_of(st.sampled_from(WORDS), st.integers(0, 3), st.text(max_size=8)),
                      inner, min_size=1, max_size=5), max_leaves=25)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """`text` with a few lines deleted, doubled, swapped, re-indented or overwritten."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(("delete", "double", "swap", "indent", "dedent", "replace",
                                    "insert", "cut")))
        if how == "delete":
            del lines[at]
        elif how == "double":
            lines.insert(at, lines[at])
        elif how == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif how == "indent":
            lines[at] = draw(st.sampled_from(("  ", "\t", " "))) + lines[at]
        elif how == "dedent":
            lines[at] = lines[at].lstrip()
        elif how == "replace":
            head, colon, _ = lines[at].partition(":")
            lines[at] = head + colon + " " + draw(st.one_of(st.sampled_from(WORDS), texts(20)))
        elif how == "insert":
            position = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:position] + draw(st.sampled_from(
                ("{", "[", '"', "'", ":", "- ", "&a ", "*a", "!!python/object ", "#", "|", ">",
                 "? ", "%", "@", "`", "\ufeff"))) + lines[at][position:]
        else:
            lines = lines[:at]
    return "\n".join(lines)


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


EDITED = "edited.yaml"
# (file name, its text): a shipped file mutated (it replaces the shipped one), or a new one.
flow_files = st.one_of(
    st.sampled_from(sorted(SHIPPED_FLOWS)).flatmap(
        lambda name: st.tuples(st.just(name), mutated(SHIPPED_FLOWS[name]))),
    st.tuples(st.just(EDITED), st.one_of(
        documents.map(_dump),
        st.fixed_dictionaries({"id": st.sampled_from(("main", "extra")),
                               "title": scalars, "start": st.sampled_from(("menu", "a", "")),
                               "steps": st.dictionaries(st.sampled_from(("menu", "a", "b")),
                                                        documents, max_size=3)}).map(_dump),
        texts(400))),
)

ALIAS_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 12))


def check_problems(problems: list[Any], files: dict[Path, str], folder: Path) -> None:
    """Every problem names a file it is about, a line in it, and says something."""
    for problem in problems:
        assert problem.message.strip(), problem
        if problem.path == folder:
            continue  # about the folder: no flows at all, no main menu
        assert problem.path in files, problem
        assert 1 <= problem.line <= files[problem.path].count("\n") + 2, problem
        assert str(problem).startswith(f"{problem.path}:{problem.line}: "), problem


@share(0.5, deadline=None)
@given(file=flow_files, with_shipped=st.sampled_from((True, True, False)))
@example(file=(EDITED, "? [a, b]\n: 1\n"), with_shipped=False)  # a key that is a list
@example(file=(EDITED, "steps:\n  ? {a: 1}\n  : 2\n"), with_shipped=False)
@example(file=(EDITED, ALIAS_BOMB), with_shipped=False)
@example(file=(EDITED, "id: main\nsteps: &s {menu: {kind: goto, flow: *s}}\n"),
         with_shipped=False)
@example(file=(EDITED, "a: &a [*a]\n"), with_shipped=False)
@example(file=(EDITED, "[" * 500 + "]" * 500), with_shipped=False)
@example(file=(EDITED, "id: main\nsteps:\n  menu:\n    kind: menu\n    text: ' '\n"
               "    options:\n      - {label: '', goto: menu}\n"), with_shipped=False)
def test_any_flow_file_loads_or_names_its_problems(world: World, file, with_shipped):
    name, text = file
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        files = {folder / name: text}
        if with_shipped:
            files.update({folder / shipped: source for shipped, source in SHIPPED_FLOWS.items()
                          if shipped != name})
        for path, source in files.items():
            path.write_text(source, encoding="utf-8")
        with no_hang(HANG_S):
            flows, problems = check_flows(folder)
        check_problems(problems, files, folder)
        errors = any(p.severity == "error" for p in problems)
        hypothesis.event("flows: problems" if errors else "flows: loaded, every menu run")
        if not errors:
            run_every_menu(world, flows, folder / name)


def run_every_menu(world: World, flows: Any, edited: Path) -> None:
    """Loaded without errors, the flows work: /start, every button of every step of the
    edited file, an answer to whatever was asked; every reply can be sent."""
    users = iter(range(1, 10**6))
    with world.navigator(flows) as (navigator, _), no_hang(HANG_S):
        first = UserRef(next(users), "Анна", language_code="ru")
        check_replies(navigator.handle(UserCommand(first, "start")), {first.id})
        for flow, step in flows.steps():
            if step.path != edited:
                continue
            for index in range(len(step.options)):
                user = UserRef(next(users), "Анна", language_code="ru")
                for event in (UserCommand(user, "start"),
                              ButtonPressed(user, f"o|{flow.id}|{step.id}|{index}"),
                              UserText(user, "1"), UserText(user, "да")):
                    check_replies(navigator.handle(event), {user.id})


# Markdown articles ---------------------------------------------------------------------

MARKDOWN_LINES = ("# Заголовок", "## Раздел", "### Подраздел", "#### Мелкий", "```", "~~~",
                  "- пункт", "1. шаг", "> цитата", "[статья](other.md)", "[сайт](https://x.y)",
                  "**жирный** и *курсив* и `код`", "", "#", "##", "---", "текст <b>&amp;",
                  "[битая](missing.md)", "\x00", "\x001\x00", "*", "**", "`")

front_matter = st.one_of(
    st.fixed_dictionaries({}, optional={
        key: st.one_of(scalars, st.lists(scalars, max_size=3), documents)
        for key in sorted(FRONT_MATTER_FIELDS | {"extra"})}).map(_dump),
    texts(80),
    st.just(ALIAS_BOMB),
)


@st.composite
def articles(draw: st.DrawFn) -> str:
    body = "\n".join(draw(st.lists(st.one_of(st.sampled_from(MARKDOWN_LINES), texts(60)),
                                   max_size=12)))
    if draw(st.booleans()):
        closing = draw(st.sampled_from(("---\n", "---", "", "--- \n")))
        return f"---\n{draw(front_matter)}{closing}\n{body}"
    return body


@share(0.5, deadline=None)
@given(text=articles(), folder_name=st.sampled_from(("ru", "en", "drafts")))
@example(text="---\n? [a]\n: 1\n---\n# Статья\n", folder_name="ru")
@example(text=f"---\n{ALIAS_BOMB}---\n# Статья\n", folder_name="ru")
@example(text="---\ntitle: '   '\n---\nТекст\n", folder_name="ru")
@example(text="Текст \x001\x00 и [ссылка](https://x.y)\n", folder_name="ru")
def test_any_article_loads_or_names_its_problems(text, folder_name):
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        path = root / folder_name / "статья.md"
        path.parent.mkdir()
        path.write_text(text, encoding="utf-8")
        with no_hang(HANG_S):
            base = load_knowledge(root)
        check_problems(base.problems, {path: text}, root)
        hypothesis.event(f"articles loaded: {len(base.articles)}")
        for article in base.articles:
            assert article.title.strip() and isinstance(article.title, str), article
            assert isinstance(article.id, str) and article.id.strip(), article
            assert article.lang in ("ru", "en")
            assert all(isinstance(q, str) for q in (*article.questions, *article.tags))
            assert article.translation_of is None or isinstance(article.translation_of, str)
            assert all(section.text.strip() for section in article.sections)
            shown = article_html(article)
            assert html_to_plain(shown).strip()
