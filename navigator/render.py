"""Markdown articles -> Telegram HTML, and Telegram HTML -> plain text for terminals and logs.

Telegram accepts only a few tags (b, i, u, s, code, pre, a, blockquote) and 4096
characters per message (counted as navigator.telegram_html counts them), so articles are
converted block by block and cut at a block boundary, never inside a tag.
"""

from __future__ import annotations

import html
import re

from navigator.telegram_html import TEXT_LIMIT, split_html, visible_length

_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^(\s*)(\d+)[.)]\s+(.*)$")
_TAG = re.compile(r"<[^>]+>")


def inline_html(text: str) -> str:
    """Escape `text` and turn inline Markdown (code, bold, italic, links) into HTML."""
    text = text.replace("\x00", "")  # marks the placeholders below
    placeholders: list[str] = []

    def keep(fragment: str) -> str:
        placeholders.append(fragment)
        return f"\x00{len(placeholders) - 1}\x00"

    text = re.sub(r"`([^`]+)`", lambda m: keep(f"<code>{html.escape(m.group(1))}</code>"), text)
    text = _LINK.sub(lambda m: keep(_link(m.group(1), m.group(2))), text)
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*|__(.+?)__", lambda m: f"<b>{m.group(1) or m.group(2)}</b>", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: placeholders[int(m.group(1))], text)


def _link(label: str, target: str) -> str:
    escaped = html.escape(label, quote=False)
    if re.match(r"^(https?://|tg://|mailto:)", target):
        return f'<a href="{html.escape(target)}">{escaped}</a>'
    # A link to another article: Telegram cannot open it, the title is enough.
    return f"<i>{escaped}</i>"


def markdown_blocks(markdown: str) -> list[str]:
    """Convert Markdown to a list of Telegram-HTML blocks (paragraphs, lists, code)."""
    blocks: list[str] = []
    paragraph: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            blocks.append("\n".join(paragraph))
            paragraph.clear()

    for raw in markdown.splitlines():
        if raw.strip().startswith(("```", "~~~")):
            if code is None:
                flush()
                code = []
            else:
                blocks.append(f"<pre>{html.escape(chr(10).join(code))}</pre>")
                code = None
            continue
        if code is not None:
            code.append(raw)
            continue
        line = raw.rstrip()
        if not line.strip():
            flush()
            continue
        if heading := _HEADING.match(line.strip()):
            flush()
            blocks.append(f"<b>{inline_html(heading.group(1))}</b>")
        elif bullet := _BULLET.match(line):
            indent = "  " * (len(bullet.group(1)) // 2)
            paragraph.append(f"{indent}• {inline_html(bullet.group(2))}")
        elif numbered := _NUMBERED.match(line):
            indent = "  " * (len(numbered.group(1)) // 2)
            paragraph.append(f"{indent}{numbered.group(2)}. {inline_html(numbered.group(3))}")
        elif line.startswith(">"):
            paragraph.append(f"<blockquote>{inline_html(line.lstrip('> '))}</blockquote>")
        else:
            paragraph.append(inline_html(line.strip()))
    if code is not None:
        blocks.append(f"<pre>{html.escape(chr(10).join(code))}</pre>")
    flush()
    return blocks


def fit_blocks(blocks: list[str], limit: int = TEXT_LIMIT) -> str:
    """Join blocks with blank lines, stopping at a block boundary so that the text, with
    "…" marking the cut, stays within `limit` characters. A first block too long on its
    own is cut inside (split_html's boundaries)."""
    out: list[str] = []
    size = 0
    for block in blocks:
        extra = visible_length(block) + (2 if out else 0)
        if size + extra > limit - 3:  # room for "\n\n…"
            if not out:
                out += split_html(block, limit - 3)[:1]
            out.append("…")
            break
        out.append(block)
        size += extra
    return "\n\n".join(out)


def html_to_plain(text: str) -> str:
    """Telegram HTML -> plain text (for the terminal, logs and hand-over context)."""
    text = re.sub(r'<a href="([^"]*)">(.*?)</a>', lambda m: f"{m.group(2)} ({m.group(1)})", text)
    return html.unescape(_TAG.sub("", text))
