"""One event, durably: the engine decides inside one transaction that also marks the
update handled and queues the replies, so a crash loses nothing and repeats nothing.

Both transports (console and Telegram) and the tests hand events to `Navigator`, the
engine over its store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from navigator import buttons
from navigator.desk.threads import in_ticket
from navigator.engine import Engine
from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentText,
    AnonymousAgentMessage,
    Event,
    Reply,
)
from navigator.flows import FlowSet
from navigator.inbox import begin_handling, mark_about
from navigator.knowledge import KnowledgeBase
from navigator.outbox import enqueue
from navigator.search import SearchBackend
from navigator.store import Repository, Store
from navigator.telegram_html import fit_replies
from navigator.texts import Texts


@dataclass(frozen=True)
class Handled:
    """The replies to one event and the ids of the outbox rows that deliver them."""

    replies: list[Reply]
    outbox_ids: list[int]
    duplicate: bool = False  # the update was handled before: nothing was decided


class Navigator(Engine):
    """The engine over its store: `handle(event)` decides and commits, with the replies
    queued in the outbox (navigator.outbox). The options are the Engine's."""

    def __init__(self, store: Store, flows: FlowSet, knowledge: KnowledgeBase,
                 searcher: SearchBackend | None, texts: Texts | None = None, **options: Any):
        super().__init__(flows, knowledge, searcher, texts, **options)
        self.store = store

    def handle(self, event: Event) -> list[Reply]:
        """Decide the replies to one event; state changes are committed with them."""
        return self.handle_recorded(event).replies

    def handle_recorded(self, event: Event, update_id: int | None = None) -> Handled:
        """`handle`, also saying which outbox rows hold the replies: they are written
        to the outbox in the same transaction as the state change (navigator.outbox).

        `update_id` names the stored update the event came from (navigator.inbox): it
        is marked handled in the same transaction, and an update handled before (a
        redelivery, a replay after a crash) decides nothing again (`duplicate`).
        """
        self.content.refresh()
        with self.store.transaction() as repo:
            if update_id is not None and not begin_handling(repo, update_id):
                return Handled([], [], duplicate=True)
            # Every text fits Telegram's limits before it is queued.
            replies = fit_replies(self.decide(repo, event))
            if update_id is not None and (about := _user_concerned(repo, event)) is not None:
                mark_about(repo, update_id, about)
            return Handled(replies, enqueue(repo, replies))


def _user_concerned(repo: Repository, event: Event) -> int | None:
    """The user whose ticket an agent's update is about (its stored copy may quote
    them: /forgetme erases it too); None for anything else."""
    if isinstance(event, AgentButtonPressed):
        number = buttons.agent_action_of(event.data)[1]
        ticket_id = int(number) if number.isdecimal() else None
    elif isinstance(event, AgentText | AgentCommand | AnonymousAgentMessage):
        ticket_id = in_ticket(repo, event).ticket_id
    else:
        return None
    ticket = repo.ticket(ticket_id)
    return ticket.user_id if ticket is not None else None
