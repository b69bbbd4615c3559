"""Finding and redacting secrets in text: Stellar secret keys and recovery phrases.

Whoever holds a Stellar secret seed or the recovery phrase of a wallet can empty it,
so neither may be kept anywhere, shown to agents or written to a log. The transports
take them out of every inbound text before anything stores or reads it; the engine then
warns the user (navigator.engine).

What counts, and why:

* **A secret key**: `S` and 55 more characters of the base32 alphabet (A-Z, 2-7), 56
  in all. A valid checksum is not required: a mistyped key is still a key, one wrong
  character away from the real one. Accepted as a key: the exact token in any case
  (`s…` lowercased by a phone, `Scz…` auto-capitalised) and with up to two characters
  outside the alphabet (0, 1, 8, 9 typed for O, I, B, g), one character more or less;
  a key glued to other letters when its own case sets it apart (`ключSCZ…`, `keySCZ…`);
  a key split by spaces, hyphens or line breaks; and any 56 characters with a valid
  checksum wherever they are. Public keys (`G…`), muxed accounts (`M…`, 69
  characters) and transaction hashes (64 hex digits, never an `S`) never match.
* **A recovery phrase**: at least 12 words of the BIP-39 English list (phrases have
  12, 15, 18, 21 or 24; a longer run is a phrase with words of the sentence around it),
  in any case, separated by spaces, commas, new lines, or numbered (`1. word 2) word`).
  One word in twelve may be mistyped (one letter off, or just its first four letters,
  which identify a BIP-39 word). Ordinary English uses many list words ("you", "have",
  "that", "make", "sure"...), so a run also breaks at a sentence's full stop, at a
  change of case inside a line ("that you have You must"), and where words repeat (a
  phrase of 24 random words repeats one at most now and then; a list like "About Cat
  About Dog" repeats them all the time), unless 12 to 24 of them pass the BIP-39
  checksum (a low-entropy phrase like "abandon abandon … about"). Measured on the
  English articles, the association's documents and the English prose of licences and
  package descriptions: benchmarks/secret_guard.py.

`redact(text, placeholders)` returns the text with each secret replaced by a
placeholder ("[секретный ключ скрыт]") and what kinds were found; `redact_json` does
the same to every string of a JSON value (a Telegram update).

Why one module of some 460 lines: it is one rule, "what counts as a secret, and what
stands in for it", and every edge (Telegram, the terminal, the logs, the stored data)
asks it the same question. The two recognisers share the token scanning and the
placeholders; apart, a fix to one would be made without seeing the other.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from mnemonic import Mnemonic
from stellar_sdk import StrKey

from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentText,
    ButtonPressed,
    Event,
    Redacted,
    UserCommand,
    UserText,
)

SECRET_KEY, RECOVERY_PHRASE = "secret_key", "recovery_phrase"
KEY_LENGTH = 56
PHRASE_WORDS = 12  # the shortest BIP-39 phrase
MAX_PHRASE_WORDS = 48  # one placeholder at most: 24 words and as many of the sentence
SHORTEST_SECRET = 47  # 12 words of 3 letters and 11 spaces; a key is longer still

# Secret keys --------------------------------------------------------------------------

_ALNUM = "A-Za-z0-9"
# A whole token of about a key's length starting with S (checked further in _key_like).
_KEY_TOKEN = re.compile(rf"(?<![{_ALNUM}])[Ss][{_ALNUM}]{{54,56}}(?![{_ALNUM}])")
# An upper-case key glued to lower-case letters or to anything that is not upper case.
_GLUED_KEY = re.compile(r"(?<![A-Z0-9])S[A-Z0-9]{54,56}(?![A-Z0-9])")
# Any 56 base32 characters from an S: a key if the checksum says so (overlapping).
_CHECKSUM_WINDOW = re.compile(r"(?=([Ss][A-Za-z2-7]{55}))")
# A key split into pieces by spaces, hyphens, line breaks: the pieces and what is between.
_FRAGMENT = re.compile(rf"[{_ALNUM}]+")
_KEY_PIECE = re.compile(rf"(?<![{_ALNUM}])[Ss][{_ALNUM}]{{0,53}}(?![{_ALNUM}])")
_FRAGMENT_GAP = re.compile(r"[ \t\r\n\-]{1,3}")
_NOT_BASE32 = set("0189")
_BASE32_DIGITS = set("234567")


def _letters_one_case(token: str) -> bool:
    """The letters after the first are all upper case or all lower case."""
    letters = [c for c in token[1:] if c.isalpha()]
    return all(c.isupper() for c in letters) or all(c.islower() for c in letters)


def _valid_seed(candidate: str) -> bool:
    # The version byte of a seed makes its second character A-D: most windows stop there.
    return len(candidate) == KEY_LENGTH and candidate[1] in "ABCDabcd" and \
        StrKey.is_valid_ed25519_secret_seed(candidate.upper())


def _key_like(token: str) -> bool:
    """A key as typed, maybe with a typo: one case, at most two characters outside
    base32, 55-57 characters long (checked by the patterns)."""
    if _valid_seed(token):
        return True
    wrong = sum(c in _NOT_BASE32 for c in token)
    return _letters_one_case(token) and wrong <= 2 and (len(token) == KEY_LENGTH or wrong == 0)


def _split_keys(text: str) -> Iterable[tuple[int, int]]:
    """Keys written in pieces: `SCZANGBA5YHT NYVVV3C7…`, `SCZA-NGBA-…`, a line break in
    the middle. A valid checksum is enough; otherwise the pieces must look like a key
    shown by a wallet: upper case, pieces of 3 or more characters (but the last), and
    digits 2-7 among them as random base32 has (prose has no 56 characters like that)."""
    for first in _KEY_PIECE.finditer(text):
        pieces = [first.group()]
        length, end = len(pieces[0]), first.end()
        while length < KEY_LENGTH - 1 and (gap := _FRAGMENT_GAP.match(text, end)) and \
                (following := _FRAGMENT.match(text, gap.end())):
            pieces.append(following.group())
            length, end = length + len(pieces[-1]), following.end()
        if len(pieces) < 2 or not KEY_LENGTH - 1 <= length <= KEY_LENGTH + 1:
            continue
        joined = "".join(pieces)
        if _valid_seed(joined) or (
                joined[1:] == joined[1:].upper() and
                all(len(piece) >= 3 for piece in pieces[:-1]) and
                sum(c in _BASE32_DIGITS for c in joined) >= 3 and
                sum(c in _NOT_BASE32 for c in joined) <= 2):
            yield first.start(), end


def _keys(text: str) -> Iterable[tuple[int, int]]:
    for pattern in (_KEY_TOKEN, _GLUED_KEY):
        for match in pattern.finditer(text):
            token, (start, end) = match.group(), match.span()
            if len(token) > KEY_LENGTH and _valid_seed(token[:KEY_LENGTH]):
                yield start, start + KEY_LENGTH  # a valid key with a character glued on
            elif _key_like(token):
                yield start, end
    for match in _CHECKSUM_WINDOW.finditer(text):
        if _valid_seed(match.group(1)):
            yield match.start(1), match.end(1)
    yield from _split_keys(text)


# Recovery phrases ---------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z]+")  # other letters are gaps, and a gap of them ends a run
# What may stand between two words of a phrase: spaces, new lines, commas, bullets,
# quotes, and one number of a numbered list ("1.", "2)", "(3)", "#4", "5 -").
_PHRASE_GAP = re.compile(
    r"[\s,;\-–—•·*|/\"'«»“”]*"
    r"(?:[(#\[]?\d{1,2}(?:[.):\]]|\s*-)?[\s,;\-–—•·*|/\"'«»“”]*)?")
_NEW_LINE = re.compile(r"\n|\d")  # a word after these may be capitalised on its own


@functools.cache
def _mnemonic() -> Mnemonic:
    return Mnemonic("english")


@functools.cache
def _wordlist() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """The BIP-39 English words, their first four letters, and every word with one
    letter left out (to recognise a word one letter off)."""
    words = frozenset(_mnemonic().wordlist)
    prefixes = frozenset(w[:4] for w in words if len(w) >= 4)
    shortened = frozenset(w[:i] + w[i + 1:] for w in words for i in range(len(w)))
    return words, prefixes, shortened


@functools.cache
def _word_index() -> dict[str, int]:
    return {word: number for number, word in enumerate(_mnemonic().wordlist)}


@functools.cache
def _full_words() -> dict[str, str]:
    """The BIP-39 word each four-letter start stands for (they are unique)."""
    return {w[:4]: w for w in _mnemonic().wordlist if len(w) > 4}


EXACT, SHORT, MISTYPED = "exact", "short", "mistyped"


@functools.lru_cache(maxsize=4096)
def _word_kind(word: str) -> str | None:
    """What a (lower-case) word is to a phrase: a BIP-39 word (EXACT), the four letters
    that identify one (SHORT), one letter off one, or the start of one with a wrong end
    (MISTYPED), or nothing (None)."""
    words, prefixes, shortened = _wordlist()
    if word in words:
        return EXACT
    if len(word) < 3:
        return None
    if word[:4] in prefixes:
        return SHORT if len(word) == 4 else MISTYPED if len(word) <= 8 else None
    if len(word) > 3 and word in shortened:  # a letter missing
        return MISTYPED
    variants = {word[:i] + word[i + 1:] for i in range(len(word))}
    if len(word) == 3:  # one letter wrong in a three-letter word ("axt" for "act")
        return MISTYPED if variants & shortened else None
    return MISTYPED if variants & words or variants & shortened else None  # extra, wrong


def _style(word: str) -> str:
    if word.islower():
        return "lower"
    if word.isupper():
        return "upper"
    if word[0].isupper() and word[1:].islower():
        return "title"
    return "mixed"


@dataclass
class _Run:
    """Consecutive phrase-like words: (start, end, not mistyped?) each."""

    words: list[tuple[int, int, bool]]
    style: str | None = None

    def phrase_spans(self, text: str) -> list[tuple[int, int]]:
        """Where phrases are in this run: windows of 12 or more words, at most one in
        twelve mistyped (never at an edge), with few repeated words or a valid
        checksum. Each window is the longest from its first word (up to
        MAX_PHRASE_WORDS), then the search goes on after it. Linear in the run's
        length (times MAX_PHRASE_WORDS): a message of one word repeated must not cost
        seconds."""
        words = self.words
        typed = [text[s:e].lower() for s, e, _ in words]
        mistyped_before = [0]
        for _, _, exact in words:
            mistyped_before.append(mistyped_before[-1] + (not exact))
        checksummed: list[int] | None = None  # the earliest end of a valid window from i
        spans, first = [], 0
        while first <= len(words) - PHRASE_WORDS:
            last = None
            reach = min(len(words), first + MAX_PHRASE_WORDS)
            varied = len(set(typed[first:reach])) >= PHRASE_WORDS - 2
            for end in range(reach - 1, first + PHRASE_WORDS - 2, -1) if words[first][2] \
                    else ():
                count = end - first + 1
                if not words[end][2] or \
                        mistyped_before[end + 1] - mistyped_before[first] > count // PHRASE_WORDS:
                    continue
                if varied and len(set(typed[first:end + 1])) >= count - 2:
                    last = end
                    break
                if checksummed is None:
                    checksummed = _checksummed_ends(typed)
                if checksummed[first] <= end:
                    last = end
                    break
            if last is None:
                first += 1
            else:
                spans.append((words[first][0], words[last][1]))
                first = last + 1
        return spans


def _checksummed_ends(words: list[str]) -> list[int]:
    """For each index i, the last index of the earliest-ending window of 12, 15, 18, 21
    or 24 words starting at i or later whose BIP-39 checksum is right (len(words) if
    none). Low-entropy phrases repeat words ("abandon abandon … about"); repetitive
    prose passes the checksum by chance once in 16 at most."""
    index = _word_index()
    full = _full_words()
    numbers = [index.get(full.get(w, w)) for w in words]
    ends = [len(words)] * (len(words) + 1)
    for start in range(len(words) - 1, -1, -1):
        ends[start] = ends[start + 1]
        for length in (12, 15, 18, 21, 24):
            window = numbers[start:start + length]
            if len(window) == length and None not in window and bip39_checksum_ok(window):
                ends[start] = min(ends[start], start + length - 1)
                break
    return ends


def bip39_checksum_ok(numbers: list[int | None]) -> bool:
    """BIP-39: the words' 11-bit numbers end with the first len/3 bits of the SHA-256
    of the bits before them."""
    bits = 0
    for number in numbers:
        bits = (bits << 11) | (number or 0)
    checksum_bits = len(numbers) // 3
    entropy = (bits >> checksum_bits).to_bytes(len(numbers) * 11 // 33 * 4, "big")
    return hashlib.sha256(entropy).digest()[0] >> (8 - checksum_bits) == \
        bits & ((1 << checksum_bits) - 1)


def _phrases(text: str) -> Iterable[tuple[int, int]]:
    words = [(match, _word_kind(match.group().lower())) for match in _WORD.finditer(text)]
    # Prose rarely has twelve list-like words in a row: then there is nothing to walk.
    streak = longest = 0
    for _, kind in words:
        streak = streak + 1 if kind else 0
        longest = max(longest, streak)
    if longest < PHRASE_WORDS:
        return
    runs: list[_Run] = []
    run = _Run([])
    previous_end = 0
    # The last word is capitalised at the start of a line (or of a numbered item), as
    # phones do: its own case says nothing, it may as well begin the next run.
    capitalised_start = False
    for match, kind in words:
        word, gap = match.group(), text[previous_end:match.start()]
        previous_end = match.end()
        style = _style(word)
        if kind is None or style == "mixed":
            runs.append(run)
            run, capitalised_start = _Run([]), False
            continue
        entry = (match.start(), match.end(), kind != MISTYPED)
        joined = bool(run.words) and _PHRASE_GAP.fullmatch(gap) is not None
        if not joined:
            runs.append(run)
            run = _Run([])
        if style == "title" and (not joined or _NEW_LINE.search(gap)):
            run.words.append(entry)
            capitalised_start = True
            continue
        if run.style is None:
            run.style = style
        elif style != run.style:  # "that you have You must": another sentence
            carried = [run.words.pop()] if capitalised_start else []
            runs.append(run)
            run = _Run(carried, style)
        run.words.append(entry)
        capitalised_start = False
    runs.append(run)
    for candidate in runs:
        if len(candidate.words) >= PHRASE_WORDS:
            yield from candidate.phrase_spans(text)


# Redacting ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A secret in a text: its kind and where it is (`text[start:end]`)."""

    kind: str
    start: int
    end: int


def find_secrets(text: str) -> list[Found]:
    """The secrets in `text`, in order, not overlapping (a key inside a phrase's span,
    or two readings of the same key, count once: the widest span wins)."""
    if len(text) < SHORTEST_SECRET:
        return []
    spans = [Found(SECRET_KEY, s, e) for s, e in _keys(text)]
    spans += [Found(RECOVERY_PHRASE, s, e) for s, e in _phrases(text)]
    spans.sort(key=lambda f: (f.start, -f.end))
    kept: list[Found] = []
    for found in spans:
        if kept and found.start < kept[-1].end:
            if found.end > kept[-1].end:
                kept[-1] = Found(kept[-1].kind, kept[-1].start, found.end)
            continue
        kept.append(found)
    return kept


@dataclass(frozen=True)
class Placeholders:
    """What a secret is replaced with, in one language (templates: secret_key_hidden,
    recovery_phrase_hidden)."""

    secret_key: str
    recovery_phrase: str

    def of(self, kind: str) -> str:
        return self.secret_key if kind == SECRET_KEY else self.recovery_phrase

    def only_placeholders(self, text: str) -> bool:
        """Nothing but placeholders (and punctuation) in `text`: the secret was all."""
        rest = text.replace(self.secret_key, "").replace(self.recovery_phrase, "")
        return not any(c.isalnum() for c in rest)


def placeholders_in(say: Callable[..., str], language: str) -> Placeholders:
    """The placeholders in `language`, from the templates (`say`: Texts.say)."""
    return Placeholders(say(language, "secret_key_hidden"),
                        say(language, "recovery_phrase_hidden"))


# For log lines, which people running the bot read (in English, like the code).
LOG_PLACEHOLDERS = Placeholders("[secret key hidden]", "[recovery phrase hidden]")


@dataclass(frozen=True)
class Redaction:
    """A text with its secrets replaced, and the kinds found (each once, in order)."""

    text: str
    kinds: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        """True if something was taken out."""
        return bool(self.kinds)


def redact(text: str, placeholders: Placeholders) -> Redaction:
    """`text` with every secret replaced by its placeholder."""
    found = find_secrets(text)
    if not found:
        return Redaction(text)
    parts, position = [], 0
    for secret in found:
        parts += [text[position:secret.start], placeholders.of(secret.kind)]
        position = secret.end
    parts.append(text[position:])
    return Redaction("".join(parts), tuple(dict.fromkeys(f.kind for f in found)))


def is_identifier(key: str) -> bool:
    """JSON fields that hold identifiers, never text (Telegram's `file_id`...)."""
    return key == "id" or key.endswith("_id")


def redact_json(value: Any, placeholders: Placeholders,
                skip: Callable[[str], bool] = is_identifier) -> tuple[Any, tuple[str, ...]]:
    """Every string in a JSON value (dicts, lists) redacted; values of keys `skip`
    says are identifiers are left alone. Returns the value (the same object when nothing
    was found) and the kinds found."""
    kinds: dict[str, None] = {}

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            redaction = redact(item, placeholders)
            kinds.update(dict.fromkeys(redaction.kinds))
            return redaction.text
        if isinstance(item, dict):
            return {k: v if isinstance(k, str) and skip(k) else walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    cleaned = walk(value)
    return (cleaned, tuple(kinds)) if kinds else (value, ())


_TEXT_OF = {UserText: "text", UserCommand: "args", AgentText: "text", AgentCommand: "args",
            ButtonPressed: "data", AgentButtonPressed: "data"}


def redact_event(event: Event, placeholders: Placeholders) -> Event:
    """`event` with the secrets in its text replaced; its `redacted` then says so (what
    an earlier guard found, at the transport, is kept). A button's data is only
    redacted: it comes from the bot's own buttons, a secret there is forged. Other
    events come back as they are."""
    field = _TEXT_OF.get(type(event))
    if field is None:
        return event
    redaction = redact(getattr(event, field), placeholders)
    if not redaction:
        return event
    if not hasattr(event, "redacted"):
        return replace(event, **{field: redaction.text})
    earlier: Redacted | None = event.redacted
    kinds = tuple(dict.fromkeys((*(earlier.kinds if earlier else ()), *redaction.kinds)))
    return replace(event, **{field: redaction.text},
                   redacted=Redacted(kinds, earlier.message_id if earlier else None))
