"""One event being handled: the state it reads and the replies it decides."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from navigator.events import Button, Reply, SendText
from navigator.store import Repository
from navigator.store.models import Conversation, User


@dataclass
class Turn:
    repo: Repository
    user: User
    conversation: Conversation
    now: datetime
    replies: list[Reply] = field(default_factory=list)

    @property
    def language(self) -> str:
        return self.user.language

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
