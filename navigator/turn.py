"""One event being handled: the state it reads, what it may consult, the replies it
decides. The engine's pieces (navigator.flows.runner, answering, handover, desk) are
functions of a turn."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from navigator.events import Button, Reply, SendText
from navigator.store import Repository
from navigator.store.models import Conversation, User

if TYPE_CHECKING:
    from navigator.content import Content
    from navigator.flows import FlowSet
    from navigator.knowledge import KnowledgeBase
    from navigator.search import SearchBackend
    from navigator.texts import Texts


@dataclass
class Turn:
    """`repo`: the store inside this event's transaction; `now`: the clock's time for the
    whole turn; `texts`, `content` (flows and articles) and `searcher` (None: search is
    off) are what the bot says and knows; `history_size` is a setting of hand-overs."""

    repo: Repository
    user: User
    conversation: Conversation
    now: datetime
    texts: Texts
    content: Content
    searcher: SearchBackend | None = None
    history_size: int = 20  # the user's last messages a hand-over shows the agents
    replies: list[Reply] = field(default_factory=list)

    @property
    def language(self) -> str:
        return self.user.language

    @property
    def flows(self) -> FlowSet:
        return self.content.flows

    @property
    def knowledge(self) -> KnowledgeBase:
        return self.content.knowledge

    def say(self, key: str, **values: Any) -> str:
        """A message of navigator/templates in the user's language."""
        return self.texts.say(self.language, key, **values)

    def flow_title(self) -> str:
        """The title of the flow the user is in ("" outside the flows)."""
        flow = self.flows.flows.get(self.conversation.flow_id or "")
        return flow.title.get(self.language) if flow else ""

    def send(self, text: str, buttons: list[Button] | tuple[Button, ...] = (),
             image: str | None = None, collapse: str | None = None) -> None:
        """A message to the user (`collapse`: see SendText)."""
        self.replies.append(SendText(self.user.id, text, tuple(buttons), image, collapse=collapse))

    def last_message(self) -> SendText | None:
        """The last message this turn sends the user, if any."""
        messages = [r for r in self.replies if isinstance(r, SendText)]
        return messages[-1] if messages else None

    def add_buttons(self, *buttons: Button) -> None:
        """Append buttons to the last message to the user (its keyboard grows)."""
        last = self.last_message()
        if last is None:
            return
        index = len(self.replies) - 1 - self.replies[::-1].index(last)
        self.replies[index] = replace(last, buttons=(*last.buttons, *buttons))

    def leave_flows(self) -> None:
        """Forget where the user is in the flows and what they answered there."""
        conversation = self.conversation
        conversation.flow_id = conversation.step_id = conversation.awaiting = None
        conversation.variables = {}
        conversation.trail = []
        conversation.stack = []
