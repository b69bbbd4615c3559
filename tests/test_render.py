"""Articles become Telegram HTML that Telegram accepts, within its 4096-character limit."""

from navigator.render import fit_blocks, html_to_plain, markdown_blocks
from navigator.telegram_html import TEXT_LIMIT, visible_length


def test_inline_markdown_becomes_telegram_html():
    [block] = markdown_blocks("**Важно**: ключ `S...` не *показывайте*, см. "
                              "[Stellar](https://stellar.org) и [статью](other.md).")
    assert block == ('<b>Важно</b>: ключ <code>S...</code> не <i>показывайте</i>, см. '
                     '<a href="https://stellar.org">Stellar</a> и <i>статью</i>.')


def test_lists_headings_and_code_blocks():
    blocks = markdown_blocks("### Шаги\n- один\n- два\n\n1. первый\n\n```\n<script>\n```")
    assert blocks == ["<b>Шаги</b>", "• один\n• два", "1. первый", "<pre>&lt;script&gt;</pre>"]


def test_html_in_articles_is_escaped():
    assert markdown_blocks("a <b>b</b> & c") == ["a &lt;b&gt;b&lt;/b&gt; &amp; c"]


def test_long_articles_are_cut_at_a_block_boundary_within_the_limit():
    text = fit_blocks([f"<b>Абзац {i}</b> " + "слово " * 100 for i in range(100)])
    assert visible_length(text) <= TEXT_LIMIT
    assert text.endswith("…") and text.count("<b>") == text.count("</b>")


def test_an_article_whose_first_block_is_too_long_shows_its_beginning_not_just_an_ellipsis():
    code = "<pre>" + "строка кода\n" * 800 + "</pre>"
    text = fit_blocks([code, "<b>Дальше</b>"])
    assert visible_length(text) <= TEXT_LIMIT
    assert text.startswith("<pre>строка кода\n") and text.endswith("</pre>\n\n…")


def test_plain_text_for_terminals_and_logs():
    assert html_to_plain('<b>Итог</b> &amp; <a href="https://x.org">ссылка</a>') == \
        "Итог & ссылка (https://x.org)"
