"""Markdown articles: front matter optional, sections as retrieval units, clear errors."""

from __future__ import annotations

from pathlib import Path

from navigator.knowledge import load_knowledge
from tests.conftest import SHIPPED_KNOWLEDGE


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_shipped_base_loads_cleanly_with_sources_on_every_article():
    base = load_knowledge(SHIPPED_KNOWLEDGE)
    assert base.problems == []
    russian = [a for a in base.articles if a.lang == "ru"]
    assert len(russian) >= 10
    assert all(a.sources and a.questions for a in base.articles)
    assert base.get("stellar-wallet-create", "en").lang == "en"
    english = {a.translation_of for a in base.articles if a.lang == "en"}
    assert english == {a.id for a in russian}, "every Russian article has its English twin"


def test_an_article_without_a_translation_is_shown_in_russian(tmp_path):
    write(tmp_path, "ru/court.md", "---\nid: court\ntitle: Суд\n---\nТекст.\n")
    assert load_knowledge(tmp_path).get("court", "en").lang == "ru"


def test_front_matter_gives_title_questions_and_id(tmp_path):
    write(tmp_path, "ru/wallet.md", "---\nid: wallet\ntitle: Кошелёк\nquestions:\n"
          "  - как завести кошелёк\ntags: [stellar]\nsources: [Stellar docs]\n---\n"
          "Вступление.\n\n## Установка\nСкачайте приложение.\n\n### На телефоне\nИз магазина.\n")
    [article] = load_knowledge(tmp_path).articles
    assert (article.id, article.title, article.lang) == ("wallet", "Кошелёк", "ru")
    assert article.questions == ("как завести кошелёк",)
    assert [s.headings for s in article.sections] == [(), ("Установка",),
                                                      ("Установка", "На телефоне")]
    assert article.sections[1].line == 11


def test_without_front_matter_the_title_is_the_first_heading_or_the_file_name(tmp_path):
    write(tmp_path, "guides/first.md", "# Первые шаги\n\nТекст.\n")
    write(tmp_path, "en/trust-lines.md", "Just text.\n")
    base = load_knowledge(tmp_path)
    titles = {a.id: (a.title, a.lang) for a in base.articles}
    assert titles == {"guides/first": ("Первые шаги", "ru"),
                      "en/trust-lines": ("trust lines", "en")}


def test_headings_inside_code_blocks_are_not_sections(tmp_path):
    write(tmp_path, "a.md", "# A\n\n```\n## не заголовок\n```\n\n## Настоящий\nтекст\n")
    [article] = load_knowledge(tmp_path).articles
    assert [s.headings for s in article.sections] == [(), ("Настоящий",)]


def test_broken_front_matter_is_reported_at_its_line_and_the_rest_still_loads(tmp_path):
    write(tmp_path, "good.md", "# Хорошая статья\n")
    write(tmp_path, "bad.md", "---\ntitle: Плохая\nquestions: [не закрыто\n---\n# Плохая\n")
    write(tmp_path, "open.md", "---\ntitle: Без конца\n")
    base = load_knowledge(tmp_path)
    assert [a.title for a in base.articles] == ["Хорошая статья"]
    messages = sorted(str(p).replace(f"{tmp_path}/", "") for p in base.problems)
    assert messages[0] == "bad.md:3: YAML syntax error: a [ list opens here and never closes"
    assert messages[1] == "open.md:1: front matter starts with `---` but never ends"


def test_duplicate_ids_and_broken_links_are_problems(tmp_path):
    write(tmp_path, "one.md", "---\nid: same\n---\n# Один\nСм. [другую](missing.md).\n")
    write(tmp_path, "two.md", "---\nid: same\n---\n# Два\n")
    problems = [str(p) for p in load_knowledge(tmp_path).problems]
    assert any("duplicate article id 'same'" in p for p in problems)
    assert any("one.md:5: link to missing file 'missing.md'" in p for p in problems)
