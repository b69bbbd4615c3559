"""Validating what a user types (or presses) in answer to an `ask` step.

`parse_answer(step, text)` returns the value to store, or raises InvalidAnswer with the
key of the message that explains what is wrong. Forgiving where it is safe: spaces around
a Stellar account id, lower case letters in it, a decimal comma, "да"/"ага"/"yes".
"""

from __future__ import annotations

import math
import re
from typing import Any

from stellar_sdk import StrKey

from navigator.flows.definitions import Step

YES = {"да", "д", "ага", "угу", "конечно", "yes", "y", "yeah", "yep", "ok", "ок", "+", "1"}
NO = {"нет", "н", "неа", "no", "n", "nope", "-", "0"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KEY = re.compile(r"\b[GgSs][A-Za-z2-7]{55}\b")
MAX_TEXT = 1000
QUESTION_WORDS = {
    "что", "как", "где", "когда", "почему", "зачем", "кто", "какой", "какая", "какое",
    "какие", "каким", "сколько", "куда", "откуда", "чем", "можно", "ли", "подскажите",
    "скажите", "объясните", "помогите", "what", "how", "where", "when", "why", "who",
    "which", "can", "could", "is", "are", "do", "does", "should", "help",
}
# An answer typed inside a sentence has a few words around it ("мой адрес G…", "мне 25
# лет"); a longer text is rather something else the user wants to say.
ANSWER_IN_A_SENTENCE_WORDS = 8
_ACCOUNT_ATTEMPT = re.compile(r"(?<![A-Za-z0-9])(?:[GgMmSs][A-Za-z0-9]{9,}|[A-Z0-9]*[A-Z][A-Z0-9]*"
                              r"\d[A-Z0-9]*|[A-Z]{4,}[A-Z0-9]*)(?![A-Za-z0-9])")
_WORDS = re.compile(r"[\w+\-@.]+")


class InvalidAnswer(Exception):
    """The answer does not fit; `reason` names the message in templates/messages.yaml."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_answer(step: Step, text: str, language: str = "ru") -> Any:
    """The value of `text` as an answer to `step` (an `ask` step)."""
    text = " ".join(text.split())
    kind = step.ask_type
    if not text:
        raise InvalidAnswer("answer_empty")
    if kind == "text":
        if len(text) > MAX_TEXT:
            raise InvalidAnswer("answer_too_long")
        return text
    if kind == "number":
        return _number(step, text)
    if kind == "yesno":
        word = text.lower().strip(".!")
        if word in YES:
            return True
        if word in NO:
            return False
        raise InvalidAnswer("answer_yesno")
    if kind == "choice":
        return choice_value(step, text, language)
    if kind == "email":
        if not EMAIL.match(text):
            raise InvalidAnswer("answer_email")
        return text
    if kind == "stellar_account":
        return _stellar_account(text)
    if kind == "regex":
        if not re.fullmatch(step.pattern or "", text):
            raise InvalidAnswer("answer_pattern")
        return text
    raise InvalidAnswer("answer_empty")  # unreachable: types are checked when flows load


def choice_value(step: Step, text: str, language: str) -> str:
    """The value of the choice whose label or value the user typed (or its number)."""
    wanted = text.lower().strip(".!")
    for number, choice in enumerate(step.choices, start=1):
        labels = {choice.value.lower(), choice.label.get(language).lower(), str(number)}
        if wanted in labels:
            return choice.value
    raise InvalidAnswer("answer_choice")


def _stellar_account(text: str) -> str:
    """The public account id in `text`: pasted alone, with spaces, or inside a sentence."""
    candidates = [text.replace(" ", "").upper(), *(m.upper() for m in _KEY.findall(text))]
    for candidate in candidates:
        if StrKey.is_valid_ed25519_public_key(candidate):
            return candidate
    if any(c.startswith("S") and len(c) == 56 for c in candidates):
        raise InvalidAnswer("answer_stellar_secret")
    raise InvalidAnswer("answer_stellar_account")


def looks_like_question(text: str, step: Step | None = None) -> bool:
    """A message that is rather a question than an answer (the user wants to leave).

    Clearly a question: a question mark, or a question word first. With the `ask` step
    it answers, a short text that tries to give the expected answer (something like an
    account id, a number, an e-mail, yes or no, one of the choices) is an answer, even
    a wrong one inside a sentence ("мой адрес GABC123"): its retry text helps more than
    a search. Otherwise three words or more are a question.
    """
    words = text.lower().split()
    if "?" in text or (words and words[0].strip(",.!:") in QUESTION_WORDS):
        return True
    if step is not None and len(words) <= ANSWER_IN_A_SENTENCE_WORDS and \
            attempts_answer(step, text):
        return False
    return len(words) >= 3


def attempts_answer(step: Step, text: str) -> bool:
    """Whether `text` contains something shaped like the answer `step` expects."""
    kind = step.ask_type
    if kind == "stellar_account":
        return _ACCOUNT_ATTEMPT.search(text) is not None
    if kind == "number":
        return any(c.isdigit() for c in text)
    if kind == "email":
        return "@" in text
    words = {w.strip(".,!:;") for w in _WORDS.findall(text.lower())}
    if kind == "yesno":
        return bool(words & (YES | NO))
    if kind == "choice":
        labels = {label.lower() for choice in step.choices
                  for label in (choice.value, *choice.label.texts.values())}
        return bool(words & labels) or any(label in text.lower() for label in labels
                                           if " " in label)
    return True  # text, regex: any words are the answer


def _number(step: Step, text: str) -> float | int:
    try:
        value = float(text.replace(",", ".").replace(" ", ""))
    except ValueError:
        raise InvalidAnswer("answer_number") from None
    if not math.isfinite(value):  # "nan", "inf", "1e999": float() reads them, people don't
        raise InvalidAnswer("answer_number")
    if (step.minimum is not None and value < step.minimum) or \
            (step.maximum is not None and value > step.maximum):
        raise InvalidAnswer("answer_range")
    return int(value) if value.is_integer() else value
