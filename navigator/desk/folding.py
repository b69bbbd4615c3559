"""A flooding user's messages to their ticket, folded for the agents.

Messages over the flood limit (navigator.flood) are not relayed one by one: the ticket
counts them (`folded`, and the range of their message ids), and the agents get one line
for them, «…и ещё 57 сообщений за 1 мин», with a button that shows them from storage
(`/messages`). The line goes out on the first Tick after the user paused (FOLD_QUIET;
every FOLD_AT_MOST while a long flood lasts), or right before the user's next message
that is relayed, so the agents read everything in order. Nothing is dropped: every
message stays in `messages`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update

from navigator import buttons
from navigator.desk.states import AGENTS_LANGUAGE
from navigator.desk.timings import waited
from navigator.events import Button, NotifyAgents, Reply
from navigator.store import Repository
from navigator.store.models import Message, Ticket, as_utc
from navigator.texts import Texts

FOLD_QUIET = timedelta(seconds=10)  # the user paused this long: the flood is over
FOLD_AT_MOST = timedelta(minutes=5)  # a longer flood is reported every this often
MESSAGES_PER_POST = 10  # each cut to MESSAGE_CHARS: a post stays far below 4096 characters
MESSAGE_CHARS = 300
MESSAGES_SHOWN = 50  # at most, newest; Telegram lets the bot post 20 a minute in a group
LAST_ID = 2**31 - 1  # above any message id (a 32-bit integer column in PostgreSQL)


def fold(repo: Repository, ticket: Ticket, message: Message) -> None:
    """Count a stored message into the ticket's fold instead of relaying it."""
    repo.session.flush()  # the message's id
    if not ticket.folded:
        ticket.folded_from = message.id
    ticket.folded_to = message.id
    ticket.folded = (ticket.folded or 0) + 1


def fold_line(repo: Repository, texts: Texts, ticket: Ticket) -> list[Reply]:
    """The agents' one line for the ticket's folded messages (none if there are none).
    They then count as told; of two processes telling at once, one does."""
    count, first, last = ticket.folded, ticket.folded_from, ticket.folded_to
    if not count or first is None or last is None:
        return []
    claimed = repo.session.execute(
        update(Ticket).where(Ticket.id == ticket.id, Ticket.folded == count)
        .values(folded=0, folded_from=None, folded_to=None))
    if claimed.rowcount != 1:
        return []
    started, ended = repo.session.get(Message, first), repo.session.get(Message, last)
    over_a_minute = started is not None and ended is not None and \
        as_utc(ended.created_at) - as_utc(started.created_at) >= timedelta(minutes=1)
    text = texts.say(AGENTS_LANGUAGE, "agents_folded", ticket=ticket.id, count=count,
                     span=waited(started.created_at, as_utc(ended.created_at))
                     if over_a_minute else None)
    button = Button(texts.say(AGENTS_LANGUAGE, "agents_button_messages"),
                    buttons.agent_action("messages", ticket.id, first, last))
    return [NotifyAgents(ticket.id, text.strip(), (button,))]


def report_folds(repo: Repository, texts: Texts, now: datetime) -> list[Reply]:
    """On a Tick: the line for every ticket whose user paused (nothing folded for
    FOLD_QUIET), or has flooded for FOLD_AT_MOST already: one line per flood, and one
    every few minutes while a long one lasts."""
    replies: list[Reply] = []
    for ticket in repo.tickets_with_folds():
        first = repo.session.get(Message, ticket.folded_from or 0)
        last = repo.session.get(Message, ticket.folded_to or 0)
        if first is None or last is None or now - as_utc(last.created_at) >= FOLD_QUIET or \
                now - as_utc(first.created_at) >= FOLD_AT_MOST:
            replies += fold_line(repo, texts, ticket)
    return replies


def show_messages(repo: Repository, texts: Texts, ticket: Ticket, args: str) -> list[Reply]:
    """`/messages` in a ticket (or its fold line's button): the user's messages from
    storage, the last MESSAGES_SHOWN, or those of one fold ("FIRST LAST" message ids),
    in posts of MESSAGES_PER_POST."""
    # Typed by hand too: a number past SQLite's 64 bits must not reach the query.
    bounds = [min(int(word), LAST_ID) for word in args.split() if word.isdecimal()]
    first, last = (bounds[0], bounds[1]) if len(bounds) == 2 else (0, LAST_ID)
    messages = [m for m in repo.inbound_messages(ticket.user_id, first, last, MESSAGES_SHOWN)
                if m.text]
    if not messages:
        return [NotifyAgents(ticket.id, texts.say(AGENTS_LANGUAGE, "agents_messages_none",
                                                  ticket=ticket.id))]
    parts = [messages[i:i + MESSAGES_PER_POST]
             for i in range(0, len(messages), MESSAGES_PER_POST)]
    return [NotifyAgents(ticket.id, texts.say(
        AGENTS_LANGUAGE, "agents_messages", ticket=ticket.id, part=number, parts=len(parts),
        limit=MESSAGE_CHARS, messages=[m.text for m in part]).strip())
        for number, part in enumerate(parts, start=1)]
