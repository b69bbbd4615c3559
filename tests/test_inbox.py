"""The inbox: an update is stored before it is acknowledged and changes state only once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from navigator.events import AgentCommand, AgentRef, AgentText, UserCommand, UserText
from navigator.inbox import FAILED, HANDLED, KEEP_DAYS, PENDING, SKIPPED, Inbox
from navigator.store.models import InboxUpdate, Message, utcnow


def payload(update_id: int, text: str) -> dict:
    return {"update_id": update_id, "message": {"text": text}}


def statuses(inbox: Inbox) -> dict[int, str]:
    with inbox.store.transaction() as repo:
        rows = repo.session.execute(select(InboxUpdate.update_id, InboxUpdate.status))
        return {row.update_id: row.status for row in rows}


def test_an_update_telegram_sends_again_is_stored_once(make_navigator):
    inbox = Inbox(make_navigator().store)
    assert inbox.store_update(501, payload(501, "Привет"))
    assert not inbox.store_update(501, payload(501, "Привет")), "a redelivery is recognised"
    assert [s.update_id for s in inbox.pending()] == [501]


def test_pending_updates_come_back_in_arrival_order(make_navigator):
    inbox = Inbox(make_navigator().store)
    for update_id in (700, 300, 500):  # ids need not grow (Telegram may renumber)
        inbox.store_update(update_id, payload(update_id, "текст"))
    inbox.finish(300, SKIPPED)
    assert [s.update_id for s in inbox.pending()] == [700, 500]
    assert inbox.pending()[0].payload == payload(700, "текст")


def test_the_engine_handles_a_stored_update_once(make_navigator, anna):
    navigator = make_navigator()
    inbox = Inbox(navigator.store)
    inbox.store_update(42, payload(42, "/start"))
    first = navigator.handle_recorded(UserCommand(anna, "start"), update_id=42)
    assert first.replies and not first.duplicate
    again = navigator.handle_recorded(UserCommand(anna, "start"), update_id=42)
    assert again.duplicate and again.replies == [] and again.outbox_ids == []
    assert statuses(inbox) == {42: HANDLED}
    with navigator.store.transaction() as repo:
        incoming = repo.session.scalar(select(func.count()).select_from(Message)
                                       .where(Message.direction == "in"))
    assert incoming == 1, "the replayed update left no second trace in the history"


def test_an_update_is_marked_handled_only_if_its_state_change_commits(make_navigator, anna):
    navigator = make_navigator()
    inbox = Inbox(navigator.store)
    inbox.store_update(43, payload(43, "Как вступить?"))

    def broken_search(*_args, **_kwargs):
        raise RuntimeError("the database went away mid-transaction")

    navigator._on_text = broken_search  # the decision fails after the inbox row was touched
    with pytest.raises(RuntimeError):
        navigator.handle_recorded(UserText(anna, "Как вступить?"), update_id=43)
    assert statuses(inbox) == {43: PENDING}, "rolled back with the decision: replayed later"


def test_an_update_without_an_inbox_row_is_handled(make_navigator, anna):
    handled = make_navigator().handle_recorded(UserCommand(anna, "start"), update_id=99)
    assert handled.replies and not handled.duplicate


def test_skipped_and_failed_updates_are_not_replayed(make_navigator):
    inbox = Inbox(make_navigator().store)
    inbox.store_update(1, payload(1, "в чужой группе"))
    inbox.store_update(2, payload(2, "сломанное"))
    inbox.finish(1, SKIPPED)
    inbox.finish(2, FAILED, "ValueError: что-то не так")
    assert inbox.pending() == []
    assert inbox.counts() == {SKIPPED: 1, FAILED: 1}


def test_an_id_seen_more_than_a_day_ago_is_a_new_update(make_navigator):
    # After a week without updates Telegram may number them from a random value.
    inbox = Inbox(make_navigator().store)
    long_ago = utcnow() - timedelta(days=2)
    inbox.store_update(77, payload(77, "старое"), now=long_ago)
    inbox.finish(77, SKIPPED)
    assert inbox.store_update(77, payload(77, "новое"))
    assert [s.payload["message"]["text"] for s in inbox.pending()] == ["новое"]


def test_old_finished_updates_are_pruned_and_pending_ones_kept(make_navigator):
    inbox = Inbox(make_navigator().store)
    old = utcnow() - timedelta(days=KEEP_DAYS + 1)
    inbox.store_update(1, payload(1, "обработано"), now=old)
    inbox.store_update(2, payload(2, "ждёт"), now=old)
    inbox.store_update(3, payload(3, "вчера"))
    inbox.finish(1, SKIPPED)
    inbox.finish(3, SKIPPED)
    assert inbox.prune() == 1
    assert statuses(inbox) == {2: PENDING, 3: SKIPPED}


def private(update_id: int, user_id: int, text: str) -> dict:
    chat = {"id": user_id, "type": "private"}
    return {"update_id": update_id, "message": {"message_id": 1, "chat": chat,
                                                "from": {"id": user_id, "first_name": "Анна"},
                                                "text": text}}


def about(inbox: Inbox) -> dict[int, int | None]:
    with inbox.store.transaction() as repo:
        rows = repo.session.execute(select(InboxUpdate.update_id, InboxUpdate.user_id))
        return {row.update_id: row.user_id for row in rows}


def test_each_update_knows_the_user_it_is_from_or_about_so_it_can_be_erased(
        make_navigator, anna):
    navigator = make_navigator()
    inbox = Inbox(navigator.store)
    inbox.store_update(1, private(1, anna.id, "/human"))
    navigator.handle_recorded(UserCommand(anna, "human"), update_id=1)
    inbox.store_update(2, private(2, anna.id, "Где купить шины?"))
    navigator.handle_recorded(UserText(anna, "Где купить шины?"), update_id=2)
    group = {"update_id": 3, "message": {"chat": {"id": -100, "type": "supergroup"},
                                         "from": {"id": 501}, "text": "Отвечаю: в Бемаксе",
                                         "reply_to_message": {"text": "Где купить шины?"}}}
    inbox.store_update(3, group)
    olga = AgentRef(501, "Ольга")
    navigator.handle_recorded(AgentText(olga, 1, "Отвечаю: в Бемаксе"), update_id=3)
    inbox.store_update(4, {**group, "update_id": 4})
    navigator.handle_recorded(AgentCommand(olga, "queue"), update_id=4)
    assert about(inbox) == {1: anna.id, 2: anna.id, 3: anna.id, 4: None}, \
        "an agent's reply in Anna's ticket quotes her; /queue is about no one"
