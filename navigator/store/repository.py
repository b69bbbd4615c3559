"""What the engine reads and writes, in one transaction (see Store.transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from navigator.events import UserRef
from navigator.store.models import Conversation, Message, Ticket, User

# Tickets in these states still belong to a person: the bot stays quiet.
OPEN_TICKET_STATUSES = ("open", "claimed", "waiting_user")


class Repository:
    def __init__(self, session: Session):
        self.session = session

    def user(self, ref: UserRef, default_language: str) -> User:
        """The user, created on first contact; name and username kept up to date."""
        user = self.session.get(User, ref.id)
        if user is None:
            user = User(id=ref.id, language=default_language)
            self.session.add(user)
        user.name = ref.name or user.name or ""
        user.username = ref.username or user.username
        user.language_code = ref.language_code or user.language_code
        return user

    def conversation(self, user_id: int) -> Conversation:
        conversation = self.session.get(Conversation, user_id)
        if conversation is None:
            conversation = Conversation(user_id=user_id, variables={}, trail=[], last_search={},
                                        stack=[])
            self.session.add(conversation)
        return conversation

    def add_message(self, user_id: int, direction: str, text: str) -> None:
        self.session.add(Message(user_id=user_id, direction=direction, text=text))

    def recent_messages(self, user_id: int, limit: int) -> list[Message]:
        """The last `limit` messages of a user, oldest first."""
        self.session.flush()
        rows = self.session.scalars(
            select(Message).where(Message.user_id == user_id)
            .order_by(Message.id.desc()).limit(limit)
        ).all()
        return list(reversed(rows))

    def open_ticket(self, user_id: int) -> Ticket | None:
        return self.session.scalars(
            select(Ticket).where(Ticket.user_id == user_id,
                                 Ticket.status.in_(OPEN_TICKET_STATUSES))
            .order_by(Ticket.id.desc()).limit(1)
        ).first()

    def create_ticket(self, user_id: int, type_: str, question: str,
                      context: dict[str, Any]) -> Ticket:
        ticket = Ticket(user_id=user_id, type=type_, question=question, context=context,
                        status="open")
        self.session.add(ticket)
        self.session.flush()  # assigns the ticket number the user is told
        return ticket

    def tickets_of_type(self, type_: str) -> list[Ticket]:
        """Every ticket of a request type, oldest first (to refuse duplicate requests)."""
        return list(self.session.scalars(
            select(Ticket).where(Ticket.type == type_).order_by(Ticket.id)))

    def ticket_count(self, user_id: int) -> int:
        return self.session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.user_id == user_id)
        ) or 0
