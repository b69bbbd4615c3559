"""The usefulness survey: the programme's first number (at least 4 of 5).

`start` asks every user who talked to the bot since a day (and did not say `/survey
off`) one question with 1-5 buttons: the questions are broadcast replies (the outbox
sends them only from what live replies leave). A user is asked at most once per survey
(a unique key), and one survey is open at a time. A score invites an optional comment:
the user's next text within `COMMENT_WINDOW` (the same way a rating's comment works).
`status` counts it; the report shows the answers given in its period.

Decisions only: plain functions over the repository that return replies or figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from navigator import buttons
from navigator.events import Button, Reply, SendText
from navigator.outbox import BROADCAST
from navigator.store import Repository
from navigator.store.models import Message, OutboxMessage, Survey, SurveyAnswer, User, as_utc
from navigator.texts import Texts
from navigator.turn import Turn

COMMENT_WINDOW = timedelta(hours=2)
_PENDING_COMMENT = "_survey_comment"  # in the conversation's variables: {survey, until}


class SurveyError(ValueError):
    """What stops a survey command, said for the person who typed it."""


@dataclass(frozen=True)
class SurveyStatus:
    survey: Survey
    asked: int  # people the question was sent to (queued in the outbox)
    waiting: int  # of them, still waiting in the outbox (sent live replies first)
    failed: int  # Telegram refused for good (the user blocked the bot)
    answered: int
    mean: float | None
    scores: dict[int, int]  # score -> answers
    comments: int


def open_survey(repo: Repository) -> Survey | None:
    return repo.session.scalars(select(Survey).where(Survey.closed_at.is_(None))
                                .order_by(Survey.id.desc())).first()


def start(repo: Repository, texts: Texts, question: str | None, since: datetime,
          now: datetime) -> tuple[Survey, list[Reply]]:
    """Open a survey and ask every user who wrote to the bot since `since` and did not
    opt out. `question` None: the shipped question, in each user's language."""
    current = open_survey(repo)
    if current is not None:
        raise SurveyError(f"survey {current.id} is still open (since "
                          f"{as_utc(current.started_at):%Y-%m-%d %H:%M} UTC): "
                          "close it first with `navigator survey close`")
    survey = Survey(question=(question or "").strip(), since=since, started_at=now)
    repo.session.add(survey)
    repo.session.flush()
    talked = select(Message.user_id).where(Message.direction == "in",
                                           Message.created_at >= since).distinct()
    users = repo.session.scalars(select(User).where(User.id.in_(talked),
                                                    User.no_surveys.is_(False))
                                 .order_by(User.id)).all()
    repo.session.add_all(SurveyAnswer(survey_id=survey.id, user_id=user.id, asked_at=now)
                         for user in users)
    replies: list[Reply] = [SendText(
        user.id, texts.say(user.language, "survey_ask", question=survey.question).strip(),
        score_buttons(survey.id), broadcast=True) for user in users]
    return survey, replies


def score_buttons(survey_id: int) -> tuple[Button, ...]:
    return tuple(Button(str(n), buttons.survey_score(survey_id, n)) for n in range(1, 6))


def on_button(turn: Turn, texts: Texts, rest: str) -> None:
    """A survey button: a score (`<survey>|<1-5>`) or "skip" (no comment)."""
    if rest == buttons.SURVEY_SKIP:
        forget_comment(turn)
        turn.send(texts.say(turn.language, "survey_comment_skipped"))
        return
    if (pressed := buttons.survey_score_of(rest)) is None:
        return
    number, score = pressed
    answer = turn.repo.session.scalars(select(SurveyAnswer).where(
        SurveyAnswer.survey_id == number, SurveyAnswer.user_id == turn.user.id)).first()
    survey = turn.repo.session.get(Survey, number)
    if answer is None or survey is None or survey.closed_at is not None:
        turn.send(texts.say(turn.language, "survey_closed"))
        return
    # Pressing again changes the score: a slip of the finger is corrected, not counted twice.
    answer.score, answer.answered_at = score, turn.now
    until = (turn.now + COMMENT_WINDOW).isoformat()
    turn.conversation.variables = {**turn.conversation.variables,
                                   _PENDING_COMMENT: {"survey": survey.id, "until": until}}
    turn.send(texts.say(turn.language, "survey_thanks", score=score),
              [Button(texts.say(turn.language, "button_skip_comment"), buttons.survey_skip())])


def forget_comment(turn: Turn) -> None:
    """The user moved on (a command, another button): their next text is not a comment."""
    variables = turn.conversation.variables
    if _PENDING_COMMENT in variables:
        turn.conversation.variables = {k: v for k, v in variables.items()
                                       if k != _PENDING_COMMENT}


def take_comment(turn: Turn, texts: Texts, text: str) -> bool:
    """If the user was invited to comment on their score (and still may), `text` is that
    comment: kept with the answer. True if it was."""
    pending = turn.conversation.variables.get(_PENDING_COMMENT)
    if not pending:
        return False
    forget_comment(turn)
    if not text or turn.now > datetime.fromisoformat(pending["until"]):
        return False
    answer = turn.repo.session.scalars(select(SurveyAnswer).where(
        SurveyAnswer.survey_id == pending.get("survey"),
        SurveyAnswer.user_id == turn.user.id)).first()
    if answer is None:
        return False
    answer.comment = text
    turn.send(texts.say(turn.language, "survey_comment_thanks"))
    return True


def opt(turn: Turn, texts: Texts, words: str) -> None:
    """`/survey off`: never ask this user again; `/survey on`: ask again."""
    word = words.strip().lower()
    if word in ("off", "on"):
        turn.user.no_surveys = word == "off"
        turn.send(texts.say(turn.language, f"survey_{word}"))
    else:
        turn.send(texts.say(turn.language, "survey_usage",
                            off=bool(turn.user.no_surveys)))


def close(repo: Repository, now: datetime) -> Survey:
    survey = open_survey(repo)
    if survey is None:
        raise SurveyError("no survey is open")
    survey.closed_at = now
    return survey


def status(repo: Repository) -> SurveyStatus | None:
    """The latest survey (open or not) and its figures; None before the first."""
    survey = repo.session.scalars(select(Survey).order_by(Survey.id.desc())).first()
    if survey is None:
        return None
    answers = select(SurveyAnswer).where(SurveyAnswer.survey_id == survey.id).subquery()
    asked = repo.session.scalar(select(func.count()).select_from(answers)) or 0
    scores = dict(repo.session.execute(
        select(answers.c.score, func.count()).where(answers.c.score.is_not(None))
        .group_by(answers.c.score)).all())
    comments = repo.session.scalar(select(func.count()).select_from(answers)
                                   .where(answers.c.comment.is_not(None),
                                          answers.c.comment != "")) or 0
    # Broadcasts are surveys' questions, and a survey is sent long before the next one.
    outbox = dict(repo.session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.priority == BROADCAST,
               OutboxMessage.user_id.in_(select(answers.c.user_id)))
        .group_by(OutboxMessage.status)).all())
    answered = sum(scores.values())
    mean = sum(s * n for s, n in scores.items()) / answered if answered else None
    return SurveyStatus(survey, asked, outbox.get("pending", 0) + outbox.get("sending", 0),
                        outbox.get("failed", 0), answered, mean, scores, comments)
