"""What users type in answer to `ask` steps: checked, forgiving where it is safe."""

from __future__ import annotations

from pathlib import Path

import pytest
from stellar_sdk import Keypair

from navigator.flows import Choice, Localized, Step
from navigator.flows.answers import InvalidAnswer, looks_like_question, parse_answer

ACCOUNT = Keypair.random().public_key


def ask(ask_type: str, **fields) -> Step:
    return Step(id="q", kind="ask", path=Path("f.yaml"), line=1, var="v", ask_type=ask_type,
                **fields)


@pytest.mark.parametrize("typed", [ACCOUNT, f"  {ACCOUNT}  ", ACCOUNT.lower(),
                                   f"{ACCOUNT[:20]} {ACCOUNT[20:]}",
                                   f"мой адрес {ACCOUNT}, спасибо"])
def test_a_stellar_account_is_accepted_however_it_is_pasted(typed):
    assert parse_answer(ask("stellar_account"), typed) == ACCOUNT


@pytest.mark.parametrize("typed", ["GABC", ACCOUNT[:-1] + ("A" if ACCOUNT[-1] != "A" else "B"),
                                   "M" + ACCOUNT[1:], "не знаю где его взять"])
def test_a_wrong_stellar_account_is_refused(typed):
    with pytest.raises(InvalidAnswer) as refused:
        parse_answer(ask("stellar_account"), typed)
    assert refused.value.reason == "answer_stellar_account"


def test_a_pasted_secret_key_gets_its_own_warning():
    with pytest.raises(InvalidAnswer) as refused:
        parse_answer(ask("stellar_account"), Keypair.random().secret)
    assert refused.value.reason == "answer_stellar_secret"


@pytest.mark.parametrize(("typed", "value"), [("да", True), ("Ага!", True), ("yes", True),
                                              ("нет", False), ("No", False), ("неа", False)])
def test_yes_and_no_in_both_languages(typed, value):
    assert parse_answer(ask("yesno"), typed) is value


def test_a_choice_by_label_value_or_number():
    step = ask("choice", choices=(Choice("settle", Localized({"ru": "Переезд", "en": "Moving"})),
                                  Choice("join", Localized({"ru": "Вступить"}))))
    assert parse_answer(step, "переезд") == "settle"
    assert parse_answer(step, "Moving", "en") == "settle"
    assert parse_answer(step, "2") == "join"
    with pytest.raises(InvalidAnswer, match="answer_choice"):
        parse_answer(step, "что-то третье")


def test_numbers_take_a_decimal_comma_and_respect_limits():
    step = ask("number", minimum=1, maximum=10)
    assert parse_answer(step, "3,5") == 3.5
    assert parse_answer(step, "7") == 7
    with pytest.raises(InvalidAnswer, match="answer_range"):
        parse_answer(step, "11")
    with pytest.raises(InvalidAnswer, match="answer_number"):
        parse_answer(step, "семь")


def test_email_regex_and_text():
    assert parse_answer(ask("email"), "anna@example.com") == "anna@example.com"
    with pytest.raises(InvalidAnswer, match="answer_email"):
        parse_answer(ask("email"), "anna at example")
    assert parse_answer(ask("regex", pattern=r"\+382\d{8}"), "+38267123456") == "+38267123456"
    with pytest.raises(InvalidAnswer, match="answer_pattern"):
        parse_answer(ask("regex", pattern=r"\+382\d{8}"), "12345")
    with pytest.raises(InvalidAnswer, match="answer_empty"):
        parse_answer(ask("text"), "   ")
    with pytest.raises(InvalidAnswer, match="answer_too_long"):
        parse_answer(ask("text"), "слово " * 300)


def test_a_question_is_told_apart_from_a_short_answer():
    assert looks_like_question("а где взять адрес?")
    assert looks_like_question("как создать кошелёк")
    assert not looks_like_question("GABC")
    assert not looks_like_question("нет")
