"""The agents' side: `AgentDesk` acts on one event from the agents' chat (answers,
attachments, buttons and commands: /take, /resolve, /done, /refuse, /reopen, /note,
/ignore, /messages, /find, /queue, /stats, /report, /myname; for payouts on Stellar /approve,
/myaccount and /airdrop, decided in navigator.payouts)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from navigator import buttons
from navigator.desk.folding import show_messages
from navigator.desk.reports import report_reply, short
from navigator.desk.states import (
    CLAIMED,
    CLOSED,
    DONE,
    FORGOTTEN,
    OPEN,
    REFUSED,
    RESOLVED,
    WAITING_USER,
    record,
    record_taken,
)
from navigator.desk.threads import in_ticket
from navigator.desk.tickets import (
    AGENTS_LANGUAGE,
    AIRDROP,
    is_request,
    rating_buttons,
    request_title,
)
from navigator.desk.timings import median, spans, ticket_timings, waited
from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentEvent,
    AgentsText,
    AgentText,
    AnonymousAgentMessage,
    Attachment,
    Button,
    CopyToUser,
    DeleteMessage,
    DeliveryFailed,
    NotifyAgents,
    Redacted,
    Reply,
    SendText,
)
from navigator.render import html_to_plain
from navigator.report.period import BOT_MAX_DAYS, PeriodError, period_in_words
from navigator.search import SearchBackend
from navigator.store import Repository
from navigator.store.models import Agent, Ticket, User
from navigator.store.repository import OPEN_TICKET_STATUSES
from navigator.telegram_html import (
    CAPTION_LIMIT,
    excerpt,
    framed_parts,
    visible_length,
    visible_text,
)
from navigator.texts import Texts
from navigator.transports.commands import ticket_in_arguments

# Commands whose number is not a ticket's: `/report 90` is ninety days.
NOT_ABOUT_A_TICKET = ("report",)
ECHO_EXCERPT = 500  # an agent's long text echoed back to the agents' chat (a refusal)
# Attachments an agent's answer may carry: those with a caption, where the pseudonym
# signs them. Stickers and video messages have none, so the user could not tell who
# sent them: they are not relayed.
RELAYED_ATTACHMENTS = ("photo", "document", "video", "voice", "audio", "animation")


def _agent_who(agent: Agent) -> str:
    return f"agent:{agent.id}"


class AgentDesk:
    """One agent event: the agents' chat acting on tickets. Returns the replies (to the
    agents' chat, and to users for answers and ratings requests)."""

    def __init__(self, repo: Repository, texts: Texts, now: datetime,
                 searcher: SearchBackend | None = None, *, zone: ZoneInfo):
        self.repo, self.texts, self.now, self.searcher = repo, texts, now, searcher
        self.zone = zone  # the desk's: a report's days are local days
        self.replies: list[Reply] = []

    def handle(self, event: AgentEvent) -> list[Reply]:
        if not isinstance(event, AgentButtonPressed):  # a button's data names its ticket
            event = in_ticket(self.repo, event)
        if isinstance(event, AnonymousAgentMessage):
            self._refuse_anonymous(event)
            return self.replies
        if isinstance(event, AgentButtonPressed):
            action, number, args = buttons.agent_action_of(event.data)
            command = AgentCommand(event.agent, action, args.replace("|", " "),
                                   int(number) if number.isdecimal() else None)
            return self.handle(command)
        if event.redacted is not None:
            self._refuse_secret(event, event.redacted)
            return self.replies
        ticket_id, args = event.ticket_id, getattr(event, "args", "")
        if isinstance(event, AgentCommand) and ticket_id is None and \
                event.name.lower() not in NOT_ABOUT_A_TICKET:
            ticket_id, args = ticket_in_arguments(args)
        name = event.name.lower() if isinstance(event, AgentCommand) else ""
        won = False
        if name == "take" and ticket_id is not None:
            # First statement of the transaction: two agents taking at once, one wins.
            won = self.repo.take_ticket(ticket_id, event.agent.id)
        agent = self.repo.agent(event.agent)
        if isinstance(event, AgentText):
            if ticket_id is not None:  # other talk in the agents' chat is not ours
                self._answer(agent, ticket_id, event.text.strip(), event.attachment)
        elif name == "myname":
            self._set_pseudonym(agent, args.strip())
        elif name == "queue":
            self._queue()
        elif name == "stats":
            self._stats()
        elif name == "myaccount":
            # navigator.payouts builds on the desk: imported when used, not in a cycle.
            from navigator.payouts.approvals import set_payout_account

            self.replies += set_payout_account(self.repo, event.agent, args, self.now,
                                               self.texts)
        elif name == "airdrop":
            from navigator.payouts.desk import airdrop_command

            self.replies += airdrop_command(self.texts, args)
        elif name == "report":
            self._report(args)
        elif name == "find":
            self._find(args.strip(), self.repo.ticket(ticket_id))
        elif name in ("take", "resolve", "done", "refuse", "reopen", "note", "ignore",
                      "unignore", "messages", "approve"):
            ticket = self.repo.ticket(ticket_id)
            if ticket_id is None:
                self._to_chat("agents_no_ticket", command=name)
            elif ticket is None:
                self._to_chat("agents_unknown_ticket", ticket=ticket_id)
            elif name == "take":
                self._take(agent, ticket, won)
            elif name == "resolve":
                self._resolve(agent, ticket)
            elif name == "done":
                self._done(agent, ticket)
            elif name == "approve":
                from navigator.payouts.approvals import approve

                self.replies += approve(self.repo, ticket.id, event.agent, self.now,
                                        self.texts)
            elif name == "refuse":
                self._refuse(agent, ticket, args.strip())
            elif name == "reopen":
                self._reopen(agent, ticket)
            elif name in ("ignore", "unignore"):
                self._ignore(agent, ticket, name == "ignore")
            elif name == "messages":
                self.replies += show_messages(self.repo, self.texts, ticket, args)
            else:
                self._note(agent, ticket, args.strip())
        else:
            self._to_chat("agents_help")
        return self.replies

    def _say(self, key: str, **values: Any) -> str:
        return self.texts.say(AGENTS_LANGUAGE, key, **values).strip()

    def _to_chat(self, key: str, **values: Any) -> None:
        self.replies.append(AgentsText(self._say(key, **values)))

    def _to_ticket(self, ticket: Ticket, key: str, buttons: tuple[Button, ...] = (),
                   **values: Any) -> None:
        self.replies.append(NotifyAgents(ticket.id, self._say(key, ticket=ticket.id, **values),
                                         buttons))

    def _to_user(self, ticket: Ticket, key: str, ask_rating: bool = False,
                 **values: Any) -> None:
        """Tell the ticket's user, in their language (with the rating keyboard). The
        template may name the request: `title`."""
        user = self._user(ticket)
        text = self.texts.say(user.language, key, ticket=ticket.id,
                              title=request_title(ticket, user.language), **values)
        buttons = rating_buttons(self.texts, user.language, ticket.id) if ask_rating else ()
        self._send(ticket, user, text, buttons)

    def _send(self, ticket: Ticket, user: User, text: str,
              buttons: tuple[Button, ...] = ()) -> None:
        self.replies.append(SendText(user.id, text, buttons, ticket_id=ticket.id))
        self.repo.add_message(user.id, "out", html_to_plain(text), self.now)

    def _user(self, ticket: Ticket) -> User:
        return self.repo.session.get_one(User, ticket.user_id)

    def _signed(self, ticket: Ticket, user: User, name: str, text: str) -> list[str]:
        """An agent's text as the user reads it: signed with the pseudonym; a text too long
        for one message is split (paragraphs, then sentences) and every part is signed."""
        return framed_parts(text, lambda part, number, count: self.texts.say(
            user.language, "agent_reply", name=name, ticket=ticket.id, text=part,
            part=number, parts=count))

    def _answer_user(self, ticket: Ticket, name: str, text: str) -> None:
        user = self._user(ticket)
        for part in self._signed(ticket, user, name, text):
            self._send(ticket, user, part)

    def _copy_to_user(self, ticket: Ticket, attachment: Attachment, name: str,
                      caption: str) -> None:
        """The agent's attachment goes to the user as a copy, its caption signed like a
        text answer. A caption holds 1024 characters: a longer one goes right after the
        attachment, as a message of its own (the same chat keeps them in order)."""
        user = self._user(ticket)
        signed = self.texts.say(user.language, "agent_reply", name=name, ticket=ticket.id,
                                text=caption)
        label = attachment_label(self.texts, user.language, attachment)
        if visible_length(signed) <= CAPTION_LIMIT:
            self.replies.append(CopyToUser(user.id, attachment, signed, ticket.id))
            self.repo.add_message(user.id, "out", f"{label} {html_to_plain(signed)}", self.now)
            return
        self.replies.append(CopyToUser(user.id, attachment, ticket_id=ticket.id))
        self.repo.add_message(user.id, "out", label, self.now)
        for part in self._signed(ticket, user, name, caption):
            self._send(ticket, user, part)

    def _name(self, agent: Agent) -> str:
        return agent.pseudonym or agent.name or f"id {agent.id}"

    def _set_pseudonym(self, agent: Agent, pseudonym: str) -> None:
        if not pseudonym or len(pseudonym) > 64:
            self._to_chat("agents_pseudonym_usage", pseudonym=agent.pseudonym)
            return
        agent.pseudonym = pseudonym
        self._to_chat("agents_pseudonym_set", pseudonym=pseudonym)

    def _take(self, agent: Agent, ticket: Ticket, won: bool) -> None:
        if won:
            record_taken(self.repo, ticket, _agent_who(agent), self.now)
            self._to_ticket(ticket, "agents_taken", agent=self._name(agent))
        elif ticket.agent_id == agent.id and ticket.status in OPEN_TICKET_STATUSES:
            self._to_ticket(ticket, "agents_already_yours", agent=self._name(agent))
        elif ticket.agent_id is not None and ticket.status in OPEN_TICKET_STATUSES:
            owner = self.repo.agent_by_id(ticket.agent_id)
            self._to_ticket(ticket, "agents_taken_by_other", agent=self._name(agent),
                            owner=self._name(owner) if owner else f"id {ticket.agent_id}")
        else:
            self._to_ticket(ticket, "agents_not_takeable", status=ticket.status)

    def _answer(self, agent: Agent, ticket_id: int, text: str,
                attachment: Attachment | None = None) -> None:
        """An agent's answer (a text, or an attachment with its caption `text`) goes to
        the user signed with the agent's pseudonym."""
        ticket = self.repo.ticket(ticket_id)
        if ticket is None:
            self._to_chat("agents_unknown_ticket", ticket=ticket_id)
            return
        if attachment is not None and attachment.kind not in RELAYED_ATTACHMENTS:
            self._to_ticket(ticket, "agents_attachment_not_relayed",
                            kind=attachment_label(self.texts, AGENTS_LANGUAGE, attachment))
            return
        if not agent.pseudonym:
            self._to_ticket(ticket, "agents_need_pseudonym", agent=agent.name or agent.id)
            return
        if ticket.status == CLOSED:
            self._to_ticket(ticket, "agents_ticket_forgotten" if _forgotten(ticket)
                            else "agents_ticket_closed")
            return
        if not text and attachment is None:
            return
        who = _agent_who(agent)
        if ticket.status == OPEN:  # answering an untaken ticket takes it
            ticket.agent_id = agent.id
            record(self.repo, ticket, OPEN, CLAIMED, who, self.now)
        if ticket.status == CLAIMED:
            record(self.repo, ticket, CLAIMED, WAITING_USER, who, self.now)
        if attachment is None:
            self.repo.log_ticket(ticket, who, self.now, kind="reply", text=text)
            self._answer_user(ticket, agent.pseudonym, text)
            return
        label = attachment_label(self.texts, AGENTS_LANGUAGE, attachment)
        self.repo.log_ticket(ticket, who, self.now, kind="reply", text=f"{label} {text}".strip())
        self._copy_to_user(ticket, attachment, agent.pseudonym, text)

    def _refuse_anonymous(self, event: AnonymousAgentMessage) -> None:
        """An anonymous admin's (or a channel's) answer or command is not acted on: the
        desk signs answers with the agent's pseudonym and counts who did what, and here
        there is nobody to name. The chat is told why; other talk is left alone."""
        if event.ticket_id is None and event.command is None:
            return
        key = "agents_channel_refused" if event.channel else "agents_anonymous_refused"
        text = self._say(key, channel=event.channel, command=event.command)
        ticket = self.repo.ticket(event.ticket_id)
        self.replies.append(NotifyAgents(ticket.id, text) if ticket else AgentsText(text))

    def _refuse_secret(self, event: AgentText | AgentCommand, redacted: Redacted) -> None:
        """An agent's message (or command) held a secret key or a recovery phrase: it is
        not relayed nor acted on, it is deleted from the agents' chat, and the chat is
        told why. (Storage only ever saw it redacted.)"""
        agent = self.repo.agent(event.agent)
        if redacted.message_id is not None:
            self.replies.append(DeleteMessage(redacted.message_id))
        text = self._say("agents_secret_not_relayed", agent=self._name(agent),
                         kinds=redacted.kinds, deleted=redacted.message_id is not None)
        ticket = self.repo.ticket(event.ticket_id)
        self.replies.append(NotifyAgents(ticket.id, text) if ticket else AgentsText(text))

    def _resolve(self, agent: Agent, ticket: Ticket) -> None:
        if ticket.status not in OPEN_TICKET_STATUSES:
            self._to_ticket(ticket, "agents_already_resolved", status=ticket.status)
            return
        self._close_work(agent, ticket)
        self._to_user(ticket, "rate_request", ask_rating=True)
        self._to_ticket(ticket, "agents_resolved", agent=self._name(agent))

    def _close_work(self, agent: Agent, ticket: Ticket, why: str | None = None) -> None:
        """Resolve the ticket (the resolver owns it if nobody did); the rating comes next."""
        if ticket.agent_id is None:
            ticket.agent_id = agent.id
        record(self.repo, ticket, ticket.status, RESOLVED, _agent_who(agent), self.now, why)

    def _decidable(self, ticket: Ticket, command: str) -> bool:
        """Only a typed request still being worked on can be done or refused."""
        if not is_request(ticket):
            self._to_ticket(ticket, "agents_not_a_request", command=command)
        elif ticket.status not in OPEN_TICKET_STATUSES:
            self._to_ticket(ticket, "agents_already_resolved", status=ticket.status)
        else:
            return True
        return False

    def _done(self, agent: Agent, ticket: Ticket) -> None:
        """The request was fulfilled: the user is told which one, and asked for a rating."""
        if not self._decidable(ticket, "done"):
            return
        if ticket.type == AIRDROP:  # paid on Stellar: approved, resolved once paid
            self._to_ticket(ticket, "agents_airdrop_is_approved")
            return
        self._close_work(agent, ticket, DONE)
        self._to_user(ticket, "request_done", ask_rating=True)
        self._to_ticket(ticket, "agents_done", agent=self._name(agent))

    def _refuse(self, agent: Agent, ticket: Ticket, reason: str) -> None:
        """The request is refused, always with a reason: the user reads it signed with the
        agent's pseudonym, like an answer, then is asked for a rating. The button only
        tells the agent how to give the reason."""
        if not self._decidable(ticket, "refuse"):
            return
        if not reason:
            self._to_ticket(ticket, "agents_refuse_usage", agent=self._name(agent))
            return
        if not agent.pseudonym:
            self._to_ticket(ticket, "agents_need_pseudonym", agent=agent.name or agent.id)
            return
        self._close_work(agent, ticket, REFUSED)
        self.repo.log_ticket(ticket, _agent_who(agent), self.now, kind="reply", text=reason)
        self._answer_user(ticket, agent.pseudonym, reason)
        self._to_user(ticket, "request_refused", ask_rating=True)
        self._to_ticket(ticket, "agents_refused", agent=self._name(agent),
                        reason=excerpt(reason, ECHO_EXCERPT))

    def _reopen(self, agent: Agent, ticket: Ticket) -> None:
        if _forgotten(ticket):
            self._to_ticket(ticket, "agents_ticket_forgotten")
            return
        if ticket.status not in (RESOLVED, CLOSED):
            self._to_ticket(ticket, "agents_not_reopenable", status=ticket.status)
            return
        other = self.repo.open_ticket(ticket.user_id)
        if other is not None:
            self._to_ticket(ticket, "agents_user_has_other_ticket", other=other.id)
            return
        ticket.agent_id = agent.id
        record(self.repo, ticket, ticket.status, CLAIMED, _agent_who(agent), self.now)
        self._to_ticket(ticket, "agents_reopened", agent=self._name(agent))
        self._to_user(ticket, "ticket_reopened_for_user")

    def _ignore(self, agent: Agent, ticket: Ticket, ignore: bool) -> None:
        """/ignore: the ticket's user (a spammer) is no longer relayed: their ticket closes
        and no new one opens (the bot still answers them). /unignore undoes it."""
        user = self.repo.session.get_one(User, ticket.user_id)
        user.ignored = ignore
        if ignore and ticket.status in OPEN_TICKET_STATUSES:
            record(self.repo, ticket, ticket.status, CLOSED, _agent_who(agent), self.now)
            ticket.context = {**ticket.context, "closed_by": _agent_who(agent),
                              "close_reason": "ignored"}
        self._to_ticket(ticket, "agents_ignored" if ignore else "agents_unignored",
                        agent=self._name(agent))

    def _note(self, agent: Agent, ticket: Ticket, text: str) -> None:
        if not text:
            self._to_chat("agents_note_usage")
            return
        self.repo.log_ticket(ticket, _agent_who(agent), self.now, kind="note", text=text)
        self._to_ticket(ticket, "agents_note_saved")

    def _find(self, question: str, ticket: Ticket | None) -> None:
        """/find <question>: the knowledge base's best articles, to answer with a link."""
        if not question:
            self._to_chat("agents_find_usage")
            return
        hits: list[dict[str, Any]] = []
        if self.searcher is not None:
            try:
                result = self.searcher.search(question, language=AGENTS_LANGUAGE)
                hits = [{"title": h.article.title, "path": h.article.path,
                         "score": f"{h.score:.2f}"} for h in result.hits[:3]]
            except Exception:  # a broken index must not break the agents' chat
                hits = []
        text = self._say("agents_find", question=excerpt(question, ECHO_EXCERPT), hits=hits)
        self.replies.append(NotifyAgents(ticket.id, text) if ticket else AgentsText(text))

    def _stats(self) -> None:
        """/stats: today, 7 and 30 days: opened, solved, median first response and
        resolution times, the average rating (all counted from the ticket log)."""
        periods = []
        month = ticket_timings(self.repo, self.now - timedelta(days=30))
        for days in (1, 7, 30):
            since = self.now - timedelta(days=days)
            timings = [t for t in month if t.created >= since]
            first, solved = spans(timings)
            ratings = [t.ticket.rating for t in timings if t.ticket.rating]
            periods.append({
                "days": days, "opened": len(timings), "solved": len(solved),
                "first": median(first), "resolution": median(solved),
                "rating": f"{sum(ratings) / len(ratings):.1f}" if ratings else "—",
                "rated": len(ratings)})
        self._to_chat("agents_stats", periods=periods, open=len(self.repo.queue()))

    def _report(self, words: str) -> None:
        """/report [period]: the HTML report as a document in the agents' chat (the
        outbox holds the period; the transport renders the file when it sends it)."""
        try:
            period = period_in_words(words, self.now.astimezone(self.zone).date(), self.zone)
        except PeriodError:
            self._to_chat("agents_report_usage", words=words.strip(), most=BOT_MAX_DAYS)
            return
        self.replies.append(report_reply(self.texts, period, "agents_report_caption"))

    def _queue(self) -> None:
        tickets = self.repo.queue()
        if not tickets:
            self._to_chat("agents_queue_empty")
            return
        items = []
        for ticket in tickets:
            owner = self.repo.agent_by_id(ticket.agent_id)
            user = ticket.context.get("user") or {}
            items.append({"id": ticket.id, "status": ticket.status,
                          "agent": self._name(owner) if owner else "",
                          "user": user.get("name") or ticket.user_id,
                          "waiting": waited(ticket.created_at, self.now),
                          "question": short(ticket.question)})
        self._to_chat("agents_queue", items=items)


def delivery_failed(repo: Repository, texts: Texts, now: datetime,
                    event: DeliveryFailed) -> list[Reply]:
    """Telegram refused for good a reply to the ticket's user: the agents are told in the
    ticket's thread (what did not arrive, and why), and the ticket's log keeps it."""
    ticket = repo.ticket(event.ticket_id)
    if ticket is None:
        return []
    repo.log_ticket(ticket, "bot", now, kind="undelivered", text=event.reason)
    kind = texts.say(AGENTS_LANGUAGE, "attachment", kind=event.attachment).strip() \
        if event.attachment else None
    what = excerpt(" ".join(visible_text(event.text).split()), ECHO_EXCERPT)
    return [NotifyAgents(ticket.id, texts.say(
        AGENTS_LANGUAGE, "agents_delivery_failed", ticket=ticket.id, text=what,
        attachment=kind, reason=event.reason).strip())]


def _forgotten(ticket: Ticket) -> bool:
    """Its user erased their data (/forgetme): nobody to answer, nothing to reopen."""
    return ticket.context.get("close_reason") == FORGOTTEN


def attachment_label(texts: Texts, language: str, attachment: Attachment) -> str:
    """`[фото]`, `[документ scan.pdf]`: an attachment in a history or a ticket's log."""
    return texts.say(language, "attachment", kind=attachment.kind,
                     file_name=attachment.file_name).strip()
