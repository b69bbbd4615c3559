"""Answers to `ask` steps: whatever a user types, the answer is a value that keeps its
type's promise (a number within its bounds, an account id that is valid and was in the
text, one of the choices...) or a refusal that names its message; and what a person
would type as a right answer is accepted."""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from stellar_sdk import StrKey

from navigator.flows import Choice, Localized, Step
from navigator.flows.answers import MAX_TEXT, NO, YES, InvalidAnswer, parse_answer

from .strategies import texts

MESSAGES = yaml.safe_load((Path(__file__).resolve().parents[2] / "navigator" / "templates" /
                           "messages.yaml").read_text(encoding="utf-8"))


def ask(ask_type: str, **fields) -> Step:
    return Step(id="q", kind="ask", path=Path("f.yaml"), line=1, var="v", ask_type=ask_type,
                **fields)


BOUNDED = ask("number", minimum=-10.0, maximum=1000.5)
UNBOUNDED = ask("number")
CHOICE = ask("choice", choices=(Choice("red", Localized({"ru": "Красный", "en": "Red"})),
                                Choice("7", Localized({"ru": "Семь"})),
                                Choice("зелёный", Localized({"ru": "зелёный"}))))
CODE = ask("regex", pattern=r"[A-Z]{3}-\d{2,4}")
STEPS = [BOUNDED, UNBOUNDED, CHOICE, CODE, ask("text"), ask("yesno"), ask("email"),
         ask("stellar_account")]

public_keys = st.binary(min_size=32, max_size=32).map(StrKey.encode_ed25519_public_key)
secret_keys = st.binary(min_size=32, max_size=32).map(StrKey.encode_ed25519_secret_seed)


def answer_or_reason(step: Step, text: str, language: str = "ru") -> tuple[str, object]:
    try:
        return "value", parse_answer(step, text, language)
    except InvalidAnswer as refused:
        assert refused.reason in MESSAGES, refused.reason
        return "refused", refused.reason


@given(step=st.sampled_from(STEPS), text=st.one_of(texts(), texts(1200)),
       language=st.sampled_from(("ru", "en")))
@example(step=BOUNDED, text="nan", language="ru")
@example(step=UNBOUNDED, text="inf", language="ru")
@example(step=UNBOUNDED, text="1e999", language="ru")
def test_an_accepted_answer_keeps_its_types_promise(step, text, language):
    outcome, value = answer_or_reason(step, text, language)
    if outcome == "refused":
        return
    typed = " ".join(text.split())
    if step.ask_type == "number":
        assert isinstance(value, int | float) and not isinstance(value, bool)
        assert math.isfinite(value), (text, value)
        assert (step.minimum is None or value >= step.minimum) and \
            (step.maximum is None or value <= step.maximum), (text, value)
        assert isinstance(value, int) or not float(value).is_integer()
    elif step.ask_type == "stellar_account":
        assert StrKey.is_valid_ed25519_public_key(value)
        assert value in typed.upper().replace(" ", ""), (text, value)
    elif step.ask_type == "choice":
        assert value in {c.value for c in step.choices}
    elif step.ask_type == "yesno":
        assert isinstance(value, bool)
    elif step.ask_type == "email":
        assert value == typed and value.count("@") == 1 and not re.search(r"\s", value)
    elif step.ask_type == "regex":
        assert re.fullmatch(step.pattern or "", value)
    else:
        assert value == typed and 0 < len(value) <= MAX_TEXT


@st.composite
def typed_numbers(draw: st.DrawFn) -> tuple[str, float]:
    """A number within BOUNDED's range as people type it: `12`, `-3`, `1,5`, `1 000`."""
    whole = draw(st.integers(-10, 1000))
    fraction = draw(st.sampled_from(("", "5", "25", "0")))
    if whole == 1000 and fraction:
        fraction = "5"
    sign = "-" if whole < 0 else ""
    digits = str(abs(whole))
    if len(digits) == 4 and draw(st.booleans()):
        digits = f"{digits[0]} {digits[1:]}"
    separator = draw(st.sampled_from((",", ".")))
    text = f"{sign}{digits}{separator + fraction if fraction else ''}"
    value = float(f"{sign}{abs(whole)}.{fraction or 0}")
    return text, value


@given(typed=typed_numbers(), around=st.sampled_from(("{}", " {} ", "{}\n")))
def test_a_number_within_bounds_is_accepted_with_a_comma_or_a_point(typed, around):
    text, value = typed
    if value < BOUNDED.minimum:  # "-10,5"
        return
    assert parse_answer(BOUNDED, around.format(text)) == value


@given(key=public_keys, before=st.sampled_from(("", "мой адрес ", "вот: ", "Адрес — ")),
       after=st.sampled_from(("", ", спасибо", ". Жду!", " 🙏")), lower=st.booleans())
def test_an_account_id_is_found_inside_a_sentence(key, before, after, lower):
    typed = key.lower() if lower else key
    assert parse_answer(ask("stellar_account"), f"{before}{typed}{after}") == key


@given(key=secret_keys, before=st.sampled_from(("", "мой ключ ", "вот ")))
def test_a_secret_key_is_never_taken_for_an_account(key, before):
    assert answer_or_reason(ask("stellar_account"), f"{before}{key}") == \
        ("refused", "answer_stellar_secret")


@given(word=st.sampled_from(sorted(YES | NO)), case=st.sampled_from((str.lower, str.upper,
                                                                     str.capitalize)),
       end=st.sampled_from(("", "!", ".", " ")))
def test_yes_and_no_are_understood_in_any_case(word, case, end):
    assert parse_answer(ask("yesno"), case(word) + end) is (word in YES)


@given(number=st.integers(1, 3), case=st.sampled_from((str.lower, str.upper)),
       by=st.sampled_from(("number", "label", "value")))
def test_a_choice_is_understood_by_its_number_label_or_value(number, case, by):
    choice = CHOICE.choices[number - 1]
    typed = {"number": str(number), "label": choice.label.get("ru"), "value": choice.value}[by]
    assert parse_answer(CHOICE, case(typed)) == choice.value
