"""Every text fits Telegram's limits, counted as Telegram counts them, and a long one is
split where a reader would split it: paragraphs, then lines, sentences, words; never
inside a tag, an entity, an emoji or a flag, and every part is HTML Telegram accepts.

Well-formedness is checked by the fake Bot API's parser (a port of Telegram's own), not
by the code under test.
"""

from __future__ import annotations

import html

from hypothesis import given, settings
from hypothesis import strategies as st

from navigator.events import AgentsText, Button, NotifyAgents, SendText
from navigator.telegram_html import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    excerpt,
    fit_replies,
    framed_parts,
    split_html,
    split_plain,
    visible_length,
    visible_text,
)
from tests.e2e.fakebot import parse_html

FLAG = "🇲🇪"  # two code points, one grapheme
FAMILY = "👨‍👩‍👧"  # five code points joined by zero-width joiners


def telegram_accepts(part: str, limit: int) -> bool:
    text, _ = parse_html(part)  # raises on HTML Telegram refuses
    return 0 < len(text.strip()) <= limit


# --------------------------------------------------------------------------- counting


def test_length_is_counted_on_the_visible_text_in_characters():
    assert visible_length("<b>Привет</b>, <a href=\"https://mtla.me\">мир</a>") == 11
    assert visible_length("a &lt; b &amp;&amp; c &gt; d &quot;x&quot; &#39;y&#39;") == 22
    assert visible_length("👍" * 990) == 990  # 1980 UTF-16 units, 990 characters
    assert visible_length("&nbsp;") == 6  # Telegram does not know the name: it stays text
    assert visible_text("<i>a &lt;b&gt;</i> &#x1F1F2;&#x1F1EA;") == "a <b> " + FLAG


def test_a_990_emoji_caption_fits_a_caption():
    assert visible_length("🎉" * 990) <= CAPTION_LIMIT


# --------------------------------------------------------------------------- splitting


def test_a_text_that_fits_is_one_part_unchanged():
    text = "<b>Короткий</b> ответ &amp; всё"
    assert split_html(text, 100) == [text]
    assert split_html("  \n ", 100) == []


def test_a_long_text_is_cut_at_paragraphs_when_they_leave_parts_at_least_half_full():
    paragraphs = [(f"Абзац {n}. " + "Слово за словом. " * 10).strip() for n in range(10)]
    parts = split_html("\n\n".join(paragraphs), 400)
    assert all(visible_length(p) <= 400 for p in parts)
    # Each part ends where a paragraph ends: two paragraphs (about 180 characters each) fit.
    assert parts[0] == "\n\n".join(paragraphs[:2])
    assert [p.count("Абзац") for p in parts] == [2, 2, 2, 2, 2]


def test_without_paragraphs_a_long_text_is_cut_after_a_sentence():
    text = " ".join(f"Предложение номер {n} заканчивается здесь." for n in range(40))
    parts = split_html(text, 300)
    assert all(p.endswith("здесь.") for p in parts)
    assert " ".join(parts) == text


def test_a_text_without_spaces_is_cut_between_graphemes_not_inside_a_flag():
    parts = split_plain(FLAG * 100 + FAMILY * 30, 51)
    assert "".join(parts) == FLAG * 100 + FAMILY * 30
    assert all(len(p) <= 51 for p in parts)
    for part in parts:  # every part is whole flags, then whole families
        rest = part.replace(FLAG, "").replace(FAMILY, "")
        assert rest == "", repr(part)


def test_tags_open_at_a_cut_are_closed_and_opened_again():
    text = '<b>Жирный <a href="https://mtla.me/a?b=1&amp;c=2">ссылка ' + "слово " * 60 + \
        "</a> конец</b>"
    parts = split_html(text, 100)
    assert len(parts) > 2
    for part in parts:
        assert telegram_accepts(part, 100)
        assert part.startswith("<b>") and part.endswith("</b>")
    assert parts[1].startswith('<b><a href="https://mtla.me/a?b=1&amp;c=2">')


def test_an_entity_is_never_cut():
    parts = split_html("&lt;" * 50, 7)
    assert parts == ["&lt;" * 7] * 7 + ["&lt;"]


def test_a_code_block_is_split_into_code_blocks():
    code = "<pre><code class=\"language-python\">" + "x = 1\n" * 200 + "</code></pre>"
    parts = split_html(code, 500)
    for part in parts:
        _, entities = parse_html(part)
        assert entities[0]["type"] == "pre" and entities[0]["language"] == "python"


def test_excerpt_keeps_the_beginning_and_marks_the_cut():
    assert excerpt("Короткий вопрос", 100) == "Короткий вопрос"
    cut = excerpt("Как получить эйрдроп, если у меня уже есть кошелёк Stellar?", 30)
    assert cut == "Как получить эйрдроп, если у…" and len(cut) <= 30
    assert excerpt("№12 · " + FLAG * 100, 128) == "№12 · " + FLAG * 60 + "…"


def test_framed_parts_leave_room_for_the_frame_on_every_part():
    def sign(text: str, part: int, parts: int) -> str:
        marker = f" · часть {part}/{parts}" if parts > 1 else ""
        return f"💬 <b>Мария</b>, поддержка · заявка №12{marker}:\n{html.escape(text)}"

    assert framed_parts("Коротко.", sign) == [sign("Коротко.", 1, 1)]
    answer = "Первая мысль & вторая < третья. " * 150  # 4,800 characters
    parts = framed_parts(answer, sign)
    assert len(parts) == 2
    assert all(visible_length(p) <= TEXT_LIMIT and telegram_accepts(p, TEXT_LIMIT)
               for p in parts)
    assert parts[0].startswith("💬 <b>Мария</b>, поддержка · заявка №12 · часть 1/2:\n")
    assert parts[1].startswith("💬 <b>Мария</b>, поддержка · заявка №12 · часть 2/2:\n")


def test_fit_replies_splits_what_is_still_too_long_buttons_on_the_last_part():
    long = "Строка ответа.\n" * 400  # 6,000 characters
    menu = (Button("Меню", "menu"),)
    fitted = fit_replies([SendText(7, long, menu, image="https://x.org/a.png"),
                          NotifyAgents(3, long, menu, opening=True), AgentsText(long),
                          SendText(7, "коротко", menu)])
    assert [type(r).__name__ for r in fitted] == ["SendText", "SendText", "NotifyAgents",
                                                   "NotifyAgents", "AgentsText", "AgentsText",
                                                   "SendText"]
    assert [r.buttons for r in fitted[:2]] == [(), menu]
    assert [r.image for r in fitted[:2]] == ["https://x.org/a.png", None]
    assert all(r.opening for r in fitted[2:4]) and fitted[2].buttons == ()
    assert all(visible_length(r.text) <= TEXT_LIMIT for r in fitted)


# --------------------------------------------------------------------------- properties

# Text as users and agents write it: Cyrillic and Latin words, punctuation, the characters
# HTML escapes, emoji with modifiers, flags, line and paragraph breaks.
_WORDS = st.sampled_from(["слово", "word", "Монтелиберо", "a<b", "x&y", '"кавычки"',
                          "👍🏽", FLAG, FAMILY, "é", "тест.", "вопрос?", "!", "—", "…"])
_GAPS = st.sampled_from([" ", " ", " ", "\n", "\n\n", "  ", ""])
_TEXT = st.lists(st.tuples(_WORDS, _GAPS), max_size=300).map(
    lambda pairs: "".join(word + gap for word, gap in pairs))
_TAGS = st.sampled_from([("<b>", "</b>"), ("<i>", "</i>"), ("<code>", "</code>"),
                         ('<a href="https://mtla.me/?a=1&amp;b=2">', "</a>"),
                         ("<blockquote>", "</blockquote>"), ("<pre>", "</pre>"),
                         ('<span class="tg-spoiler">', "</span>")])


@st.composite
def telegram_html(draw: st.DrawFn) -> str:
    """Escaped text with tags around some of its stretches (nested at most twice)."""
    pieces = []
    for _ in range(draw(st.integers(1, 6))):
        text = html.escape(draw(_TEXT), quote=False)
        for _ in range(draw(st.integers(0, 2))):
            opening, closing = draw(_TAGS)
            text = f"{opening}{text}{closing}"
        pieces.append(text)
    return "".join(pieces)


@settings(max_examples=150, deadline=None)
@given(telegram_html(), st.integers(20, 600))
def test_every_part_fits_and_is_html_telegram_accepts(text: str, limit: int):
    parts = split_html(text, limit)
    for part in parts:
        assert visible_length(part) <= limit
        assert telegram_accepts(part, limit)


@settings(max_examples=150, deadline=None)
@given(telegram_html(), st.integers(20, 600))
def test_splitting_loses_nothing_but_whitespace_at_the_cuts(text: str, limit: int):
    whole = "".join(visible_text(text).split())
    assert "".join("".join(visible_text(p).split()) for p in split_html(text, limit)) == whole


@settings(max_examples=150, deadline=None)
@given(_TEXT, st.integers(10, 300))
def test_plain_parts_are_whole_graphemes(text: str, limit: int):
    import regex

    graphemes = set(regex.findall(r"\X", text))
    for part in split_plain(text, limit):
        assert len(part) <= limit
        assert set(regex.findall(r"\X", part)) <= graphemes | {" "}
