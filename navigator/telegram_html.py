"""Telegram HTML as Telegram reads it: how long a message is, and how a long text becomes
several messages that each fit.

Telegram counts its limits on the text *after entity parsing* (tags removed, entities
decoded), in characters: Unicode code points, not bytes and not UTF-16 units. The Bot
API documents sendMessage's `text` as "1-4096 characters after entities parsing" and a
caption as "0-1024 characters after entities parsing"
(https://core.telegram.org/bots/api#sendmessage); TDLib, which the Bot API server runs,
refuses a bot's text when `utf8_length(text) > message_text_length_max` and a caption
when `utf8_length(caption) > message_caption_length_max` (td/telegram/MessageContent.cpp),
and `utf8_length` counts code points (tdutils/td/utils/utf8.h). So 990 emoji make a
caption that fits, although they are 1980 UTF-16 units (the unit of entity offsets, not
of the limits). Leading and trailing whitespace is trimmed before the count; counting
it here only errs on the safe side.

Entities are decoded the way Telegram's HTML parser does (td/telegram/MessageEntity.cpp,
`decode_html_entity`): only `&lt;` `&gt;` `&amp;` `&quot;` by name, and numeric ones
(`&#39;`, `&#x1F600;`); any other `&name;` stays as it is, and counts as such.

`visible_length(html)` is the one measure every limit check uses. `split_html` and
`split_plain` cut a long text into parts that each fit, at the best boundary the room
allows, never inside a tag, an entity or a grapheme (an emoji with its modifiers, a
flag); `framed_parts` does it for a text inside a signature or a header; `excerpt`
keeps the beginning of a text (a topic name: `TOPIC_NAME_LIMIT`, counted the same way).
`fit_replies` is the last guard: any reply still too long is split before it is queued.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import regex

from navigator.events import AgentsText, NotifyAgents, Reply, SendText

TEXT_LIMIT = 4096  # a message's text
CAPTION_LIMIT = 1024  # a photo's or a document's caption
TOPIC_NAME_LIMIT = 128  # a forum topic's name (createForumTopic: "1-128 characters")

# A tag as Telegram delimits one: `<`, a name up to a space or `>`, attributes whose
# quoted values may hold `>`, then `>`. A `<` that starts no tag is left as text here
# (Telegram would refuse it; our own HTML never has one: every value is escaped).
_TAG = re.compile(r"""<(/?)([^\s>]*)((?:"[^"]*"|'[^']*'|[^>"'])*)>""")
_ENTITY = re.compile(r"&(?:#x([0-9a-fA-F]+)|#([0-9]+)|([a-zA-Z]+));?")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_GRAPHEME = regex.compile(r"\X")
# The end of a sentence: its punctuation, maybe followed by closing quotes or brackets.
_SENTENCE_END = re.compile(r"[.!?…][»”\"')\]]*$")


def _entity(match: re.Match[str]) -> str | None:
    """What Telegram makes of `&...`: the character, or None to keep it literally."""
    hex_digits, digits, name = match.groups()
    if name is not None:
        return _NAMED.get(name)
    # Telegram reads at most 7 decimal / 6 hex digits (fewer than 10 characters with `&#`).
    number = match.group(0).rstrip(";")
    if len(number) >= 10:
        return None
    value = int(hex_digits, 16) if hex_digits is not None else int(digits)
    return chr(value) if 0 < value < 0x10FFFF else None


def _decode(text: str) -> str:
    if "&" not in text:
        return text
    return _ENTITY.sub(lambda m: _entity(m) or m.group(0), text)


def visible_text(html_text: str) -> str:
    """The text Telegram shows for `html_text`: tags removed, entities decoded."""
    return _decode(_TAG.sub("", html_text))


def visible_length(html_text: str) -> int:
    """The length Telegram's limits count for `html_text` (see the module docstring)."""
    return len(visible_text(html_text))


# Splitting --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    """An indivisible bit of HTML: a tag, or one grapheme of text with its source."""

    raw: str
    text: str = ""  # what Telegram shows ("" for a tag)
    tag: str = ""  # a tag's name
    closing: bool = False

    @property
    def blank(self) -> bool:
        return not self.tag and not self.text.strip()


# How good a place to cut is, best last.
_GRAPHEME_CUT, _WORD, _SENTENCE, _LINE, _PARAGRAPH = range(5)
MIN_FILL = 0.5  # a part is cut at a better boundary only if it is at least this full


def _pieces(html_text: str, limit: int) -> list[_Piece]:
    pieces: list[_Piece] = []
    position = 0
    for tag in _TAG.finditer(html_text):
        pieces += _text_pieces(html_text[position:tag.start()], limit)
        pieces.append(_Piece(tag.group(0), tag=tag.group(2).lower(), closing=bool(tag.group(1))))
        position = tag.end()
    pieces += _text_pieces(html_text[position:], limit)
    return pieces


def _text_pieces(source: str, limit: int) -> list[_Piece]:
    """Graphemes of a run of text, each with the HTML it came from (an entity is never
    cut). A pathological grapheme longer than `limit` (thousands of combining marks)
    falls apart into its characters, so every piece fits somewhere."""
    raws: list[str] = []  # the source of each decoded character
    position = 0
    for match in _ENTITY.finditer(source):
        raws += source[position:match.start()]
        if _entity(match) is None:  # kept literally: ordinary text
            raws += match.group(0)
        else:
            raws.append(match.group(0))
        position = match.end()
    raws += source[position:]
    text = "".join(_decode(raw) for raw in raws)
    pieces = []
    index = 0
    for grapheme in _GRAPHEME.findall(text):
        raw = "".join(raws[index:index + len(grapheme)])
        if len(grapheme) > limit:
            pieces += [_Piece(r, _decode(r)) for r in raws[index:index + len(grapheme)]]
        else:
            pieces.append(_Piece(raw, grapheme))
        index += len(grapheme)
    return pieces


def _breaks(pieces: list[_Piece]) -> list[tuple[int, int]]:
    """(index, quality) of every place a part may end: before a run of whitespace (which
    the cut drops), rated by what the run is (a blank line, a line break...) and by what
    precedes it (the end of a sentence)."""
    found = []
    before = ""  # the last visible non-blank text
    index = 0
    while index < len(pieces):
        piece = pieces[index]
        if not piece.blank:
            if not piece.tag:
                before = piece.text
            index += 1
            continue
        run, end = "", index
        while end < len(pieces) and (pieces[end].blank or pieces[end].tag):
            run += pieces[end].text
            end += 1
        if before:
            if run.count("\n") >= 2:
                quality = _PARAGRAPH
            elif "\n" in run:
                quality = _LINE
            elif _SENTENCE_END.search(before):
                quality = _SENTENCE
            else:
                quality = _WORD
            found.append((index, quality))
        index = end
    return found


def split_html(html_text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """`html_text` as messages of at most `limit` characters each (as Telegram counts).

    Each part is cut at the best boundary in its room: a blank line, else a line break,
    the end of a sentence, a space; a part is cut at a lesser boundary only when the
    better ones would leave it less than half full, and between two graphemes when every
    boundary would. Never inside a tag or an entity. Tags open at a cut are
    closed at the end of the part and opened again at the start of the next, so each
    part is well-formed on its own; the whitespace at a cut is dropped. A text that
    fits comes back unchanged, as the only part; a blank one gives no parts.
    """
    if limit < 1:
        raise ValueError(f"a part must hold at least one character, not {limit}")
    if visible_length(html_text) <= limit:
        return [html_text] if visible_text(html_text).strip() else []
    pieces = _pieces(html_text, limit)
    offsets = [0]
    for piece in pieces:
        offsets.append(offsets[-1] + len(piece.text))
    breaks = _breaks(pieces)
    break_at = [index for index, _ in breaks]
    parts: list[str] = []
    open_tags: list[_Piece] = []
    start = _skip_blank(pieces, 0, open_tags)
    while start < len(pieces):
        reopened = [tag.raw for tag in open_tags]
        # The furthest the part could reach, then the best place to cut within it.
        reach = bisect.bisect_right(offsets, offsets[start] + limit) - 1
        end = len(pieces) if reach >= len(pieces) else \
            _best_cut(breaks, break_at, start, reach, offsets, limit)
        body = []
        for piece in _without_trailing_blanks(pieces[start:end]):
            body.append(piece.raw)
            _track(open_tags, piece)
        if "".join(p.text for p in pieces[start:end]).strip():
            closing = [f"</{tag.tag}>" for tag in reversed(open_tags)]
            parts.append("".join([*reopened, *body, *closing]))
        start = _skip_blank(pieces, end, open_tags)
    return parts


def _best_cut(breaks: list[tuple[int, int]], break_at: list[int], start: int, reach: int,
              offsets: list[int], limit: int) -> int:
    """Where a part that starts at `start` and may go up to `reach` should end."""
    first = bisect.bisect_right(break_at, start)
    last = bisect.bisect_right(break_at, reach)
    room = breaks[first:last]
    full_enough = offsets[start] + limit * MIN_FILL
    for quality in (_PARAGRAPH, _LINE, _SENTENCE, _WORD):
        candidates = [i for i, q in room if q == quality and offsets[i] >= full_enough]
        if candidates:
            return candidates[-1]
    return max(reach, start + 1)  # no boundary worth it: between two graphemes


def _without_trailing_blanks(pieces: list[_Piece]) -> list[_Piece]:
    """The pieces without the whitespace at their end (tags among it are kept)."""
    end = len(pieces)
    while end and (pieces[end - 1].blank or pieces[end - 1].tag):
        end -= 1
    return pieces[:end] + [p for p in pieces[end:] if p.tag]


def _skip_blank(pieces: list[_Piece], index: int, open_tags: list[_Piece]) -> int:
    """Past the whitespace (and the tags among it) where a part starts; tags closed there
    were closed at the end of the previous part, tags opened there open the next."""
    while index < len(pieces) and (pieces[index].blank or pieces[index].tag):
        _track(open_tags, pieces[index])
        index += 1
    return index


def _track(open_tags: list[_Piece], piece: _Piece) -> None:
    if not piece.tag:
        return
    if not piece.closing:
        open_tags.append(piece)
    elif open_tags and open_tags[-1].tag == piece.tag:
        open_tags.pop()


def split_plain(text: str, limit: int) -> list[str]:
    """A plain text (not HTML) as parts of at most `limit` characters, cut like
    `split_html` cuts; the parts are plain text too."""
    return [visible_text(part) for part in split_html(html.escape(text, quote=False), limit)]


def excerpt(text: str, limit: int) -> str:
    """The beginning of a plain text, at most `limit` characters, cut at a boundary and
    ending with "…" when it was cut."""
    if len(text) <= limit:
        return text
    parts = split_plain(text, max(limit - 1, 1))
    return (parts[0].rstrip() if parts else "") + "…"


def framed_parts(text: str, frame: Callable[[str, int, int], str],
                 limit: int = TEXT_LIMIT) -> list[str]:
    """A plain `text` inside a frame (a signature, a header: `frame(text, part, parts)`
    renders it) as messages of at most `limit` characters: the whole text in one if it
    fits, else the text split (split_plain) with room for the frame, each part framed."""
    whole = frame(text, 1, 1)
    if visible_length(whole) <= limit:
        return [whole]
    # The frame's own size, with part numbers as wide as they could be.
    room = limit - (visible_length(frame("x", 999, 999)) - 1)
    parts = split_plain(text, room)
    return [frame(part, number, len(parts)) for number, part in enumerate(parts, 1)]


def fit_replies(replies: list[Reply]) -> list[Reply]:
    """Replies whose text Telegram would refuse as too long, split into several (the
    desk frames and splits what it knows is long; this catches everything else). The
    buttons go with the last part, an image with the first."""
    fitted: list[Reply] = []
    for reply in replies:
        if not isinstance(reply, SendText | NotifyAgents | AgentsText) or \
                visible_length(reply.text) <= TEXT_LIMIT:
            fitted.append(reply)
            continue
        parts = split_html(reply.text)
        for number, part in enumerate(parts, 1):
            changes: dict[str, Any] = {"text": part}
            if number < len(parts) and not isinstance(reply, AgentsText):
                changes["buttons"] = ()
            if number > 1 and isinstance(reply, SendText):
                changes["image"] = None
            fitted.append(replace(reply, **changes))
    return fitted
