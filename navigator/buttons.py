"""What the bot's buttons carry: the callback-data protocol, built and read only here.

A pressed button comes back as its data, at most 64 bytes (Telegram's limit), so the
data names what to do in a few characters, fields separated by "|":

    o|flow|step|i    option i of a menu step         c|flow|step|i   answer i of an ask step
    a|token          show an article                 fb|y|token      "helped" (fb|n: did not)
    menu             the main menu                   r               back to the flow
    h|why            hand the question to a human    forget|yes      /forgetme confirmed (|no)
    rate|ticket|n    rate a solved ticket 1-5        unsolved|ticket "not solved after all"
    nocomment|ticket no comment on the rating        action|ticket…  the agents' card buttons
    sv|survey|n      a survey's score 1-5            sv|skip         no comment on the score

`why` says why a person is offered (desk.OPENING_REASONS; plain `h` is the user asking):
the report counts hand-overs by it.

Flow and step ids are at most 24 characters (navigator.flows.definitions.ID_PATTERN) and
an article is named by a 12-character token, so every button fits. The labelled
buttons every part of the bot offers (menu, exit, human, back) are built here too.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from navigator.events import Button
from navigator.flows.definitions import MAIN_FLOW

if TYPE_CHECKING:
    from navigator.turn import Turn

MENU, RESUME, HUMAN = "menu", "r", "h"
OPTION, CHOICE, ARTICLE, FEEDBACK = "o", "c", "a", "fb"
RATE, NOT_SOLVED, NO_COMMENT, FORGET = "rate", "unsolved", "nocomment", "forget"
SURVEY, SURVEY_SKIP = "sv", "skip"
# Buttons about a ticket (its rating), /forgetme's and a survey's: they work however
# long the user was away.
ANYTIME = (RATE, NOT_SOLVED, NO_COMMENT, FORGET, SURVEY)
LIMIT = 64  # bytes of callback data Telegram keeps


def article_token(article_id: str) -> str:
    """A short stable token for an article id (ids can be long paths)."""
    return hashlib.sha1(article_id.encode("utf-8")).hexdigest()[:12]


# Building ---------------------------------------------------------------------------------

def option(flow_id: str, step_id: str, index: int) -> str:
    return f"{OPTION}|{flow_id}|{step_id}|{index}"


def choice(flow_id: str, step_id: str, index: int) -> str:
    return f"{CHOICE}|{flow_id}|{step_id}|{index}"


def article(article_id: str) -> str:
    return f"{ARTICLE}|{article_token(article_id)}"


def feedback(helped: bool, article_id: str) -> str:
    return f"{FEEDBACK}|{'y' if helped else 'n'}|{article_token(article_id)}"


def rating(ticket_id: int, stars: int) -> str:
    return f"{RATE}|{ticket_id}|{stars}"


def not_solved(ticket_id: int) -> str:
    return f"{NOT_SOLVED}|{ticket_id}"


def no_comment(ticket_id: int) -> str:
    return f"{NO_COMMENT}|{ticket_id}"


def forget(confirmed: bool) -> str:
    return f"{FORGET}|{'yes' if confirmed else 'no'}"


def survey_score(survey_id: int, score: int) -> str:
    return f"{SURVEY}|{survey_id}|{score}"


def survey_skip() -> str:
    return f"{SURVEY}|{SURVEY_SKIP}"


def agent_action(action: str, ticket_id: int, *args: object) -> str:
    """A button of an agents' card: `action` (a command name) on a ticket."""
    return "|".join(map(str, (action, ticket_id, *args)))


# Reading (whatever a press carries: data can be forged) -----------------------------------

def kind_of(data: str) -> tuple[str, str]:
    """(kind, the rest): "o|main|start|2" -> ("o", "main|start|2")."""
    kind, _, rest = data.partition("|")
    return kind, rest


def step_button(rest: str) -> tuple[str, str, int] | None:
    """(flow, step, index) of an option's or an answer's button; None if malformed."""
    try:
        flow_id, step_id, index = rest.split("|")
        return flow_id, step_id, int(index)
    except ValueError:
        return None


def feedback_of(rest: str) -> tuple[bool, str]:
    """(helped, article token) of a feedback button."""
    helped, _, token = rest.partition("|")
    return helped == "y", token


def rating_of(rest: str) -> tuple[int, int] | None:
    """(ticket, stars) of a rating button; None if malformed."""
    number, _, stars = rest.partition("|")
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if number.isdecimal() and stars.isdecimal():
        return int(number), int(stars)
    return None


def ticket_of(rest: str) -> int | None:
    """The ticket of a "not solved" button; None if malformed."""
    return int(rest) if rest.isdecimal() else None


def survey_score_of(rest: str) -> tuple[int, int] | None:
    """(survey, score 1-5) of a survey's score button; None if malformed."""
    number, _, score = rest.partition("|")
    if number.isdecimal() and score.isdecimal() and 1 <= int(score) <= 5:
        return int(number), int(score)
    return None


def agent_action_of(data: str) -> tuple[str, str, str]:
    """(action, ticket number as sent, the rest) of an agents' card button."""
    action, _, rest = data.partition("|")
    number, _, args = rest.partition("|")
    return action, number, args


# The buttons every part of the bot offers ----------------------------------------------

def menu(turn: Turn) -> Button:
    return Button(turn.say("button_menu"), MENU)


def exit_flow(turn: Turn) -> Button:
    return Button(turn.say("button_exit"), MENU)


def human(turn: Turn, why: str | None = None) -> Button:
    """A person, please; `why`: why the bot offers one (desk.OPENING_REASONS)."""
    return Button(turn.say("button_human"), f"{HUMAN}|{why}" if why else HUMAN)


def resume(turn: Turn) -> Button:
    """Back to where the user is in a flow (a submenu of the main flow is just "back")."""
    if turn.conversation.flow_id == MAIN_FLOW:
        return Button(turn.say("button_back"), RESUME)
    return Button(turn.say("button_resume", title=turn.flow_title()), RESUME)
