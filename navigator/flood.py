"""Flood: a user sending messages faster than a person writes them.

A message (a text, a command, a button press) that comes when the user already sent
`per_minute` within the last minute is over the limit. It is stored like any other
(`messages`; in an open ticket it joins the ticket's fold, navigator.desk.folding), but
the bot does not act on it: no answer, no menu, no relay to the agents one by one. The
user gets one polite notice per flood episode; the episode goes on while over-limit
messages come less than a minute apart.

Counted from the `messages` table and the user's row, not process memory, so every bot
process serving the user sees the same count.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from navigator import desk
from navigator.store import Repository
from navigator.store.models import Message, as_utc
from navigator.texts import Texts
from navigator.turn import Turn

WINDOW = timedelta(minutes=1)


def over_limit(repo: Repository, user_id: int, now: datetime, per_minute: int | None) -> bool:
    """True if a message from the user coming at `now` is over the limit: the user
    already sent `per_minute` messages in the minute before. None or 0: no limit."""
    if not per_minute:
        return False
    times = repo.inbound_times(user_id, per_minute)
    return len(times) == per_minute and as_utc(times[-1]) > now - WINDOW


def hold(turn: Turn, texts: Texts, message: Message, per_minute: int,
         relayable: bool) -> None:
    """An over-limit message (stored already): folded into the open ticket if there is
    one and it is a text the agents would have got (`relayable`), and answered only by
    the episode's one notice."""
    ticket = turn.repo.open_ticket(turn.user.id)
    if ticket is not None and relayable and not turn.user.ignored:
        desk.fold(turn.repo, ticket, message)
    user = turn.user
    new_episode = user.flood_at is None or turn.now - as_utc(user.flood_at) >= WINDOW
    user.flood_at = turn.now
    if new_episode:
        turn.send(texts.say(turn.language, "flood_notice", limit=per_minute,
                            ticket=ticket.id if ticket else None))
