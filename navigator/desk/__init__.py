"""The desk: what happens when a request goes to people. Decisions only, like the engine.

A ticket carries everything an agent needs: who asked, what, the path through the
menus, what the bot tried, the variables a flow collected, and the last messages.

Its life: `open` (nobody has it) -> `claimed` (an agent took it, or answered it) ->
`waiting_user` (the agent answered; the user's turn) <-> `claimed` (the user wrote back)
-> `resolved` (an agent said so; the user is asked for a 1-5 rating) -> `closed` (rated
3-5; not rated within three days; or withdrawn by the user). A rating of 1-2 sends it
back to `open` for any agent to take. Every change is written to `ticket_events` with
who and when (`record`), and so is every agent answer and note, so first-response and
resolution times can be counted.

A user message after resolution, before the rating, reopens the same ticket (to
`claimed` by the agent who had it): within that window the user is almost always
continuing the same matter ("it still does not work"), and the agent has the context.
The rating request has a "Не решено" button that does the same on purpose.
Once the ticket is closed (rated), a new message is a new question for the bot, except
for the comment a rating invites: the first free text within `RATING_COMMENT_WINDOW`
after a rating is that rating's comment (logged as "comment", shown in the ticket's
thread), not a question. The "Пропустить" button, any command, any other button or the
window passing ends the wait. After a low rating the ticket is open again, so the
comment ("what went wrong") also joins the ticket as an ordinary user message: the
agent who takes it reads it where they read everything else.

Typed requests (a flow's `handover` step with a `type` other than "question": `join`,
`airdrop`...) are decided rather than answered: their card also has "Выполнено" (`/done`)
and "Отказать" (`/refuse причина`). Both resolve the ticket and ask for the rating; the
status change carries the outcome ("done" or "refused") in the log's `text`, and a
refusal's reason reaches the user signed like an answer (and is logged as a "reply").

Every text fits one Telegram message: the card shows an excerpt of a long question and
the question follows it whole, in parts; a user's long message reaches the ticket in
parts, each headed; an agent's long answer reaches the user in parts, each signed. A
reply to the user that Telegram refuses for good (the user blocked the bot) is reported
in the ticket's thread (`delivery_failed`), so no agent believes it arrived.

The package: `states` (the life-cycle as a transition table: what may change to what,
by whom; `record` refuses any other change), `tickets` (opening a ticket and the
user's side), `agents` (`AgentDesk`, the agents' side), `reports` (reminders, the daily
digest), `timings` (response and resolution times, durations) and `folding` (a flooding
user's messages folded into one line for the agents).
"""

from navigator.desk.agents import AgentDesk, delivery_failed
from navigator.desk.folding import fold, report_folds
from navigator.desk.reports import daily_digest, reminders
from navigator.desk.states import ASKED, FLOW, NO_ANSWER, NOT_HELPED, OPENING_REASONS, RESOLVED
from navigator.desk.tickets import (
    QUESTION,
    add_to_ticket,
    earlier_request,
    forget_comment,
    has_request,
    not_solved,
    open_ticket,
    public_variables,
    rate,
    reopen_by_user,
    skip_comment,
    status,
    take_comment,
    withdraw,
)
from navigator.desk.timings import ticket_timings

# What the rest of Navigator uses (`from navigator import desk`: `desk.rate(...)`).
__all__ = [
    "ASKED",
    "FLOW",
    "NOT_HELPED",
    "NO_ANSWER",
    "OPENING_REASONS",
    "QUESTION",
    "RESOLVED",
    "AgentDesk",
    "add_to_ticket",
    "daily_digest",
    "delivery_failed",
    "earlier_request",
    "fold",
    "forget_comment",
    "has_request",
    "not_solved",
    "open_ticket",
    "public_variables",
    "rate",
    "reminders",
    "reopen_by_user",
    "report_folds",
    "skip_comment",
    "status",
    "take_comment",
    "ticket_timings",
    "withdraw",
]
