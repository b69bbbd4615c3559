"""Which Telegram updates reach the engine, and as what (no network: plain Bot API JSON)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from telegram import Update

from navigator.events import (
    AgentButtonPressed,
    AgentCommand,
    AgentRef,
    AgentText,
    AnonymousAgentMessage,
    Attachment,
    ButtonPressed,
    UserCommand,
    UserRef,
    UserText,
)
from navigator.transports.telegram.updates import agent_event_for, event_for

ANNA = {"id": 42, "is_bot": False, "first_name": "Анна", "username": "anna",
        "language_code": "ru"}
PRIVATE = {"id": 42, "type": "private", "first_name": "Анна"}
GROUP = {"id": -1001, "type": "supergroup", "title": "Чат"}
REF = UserRef(42, "Анна", "anna", "ru")


def update(kind: str = "message", chat: dict[str, Any] = PRIVATE,
           sender: dict[str, Any] = ANNA, **content: Any) -> Update:
    message = {"message_id": 5, "date": 1_700_000_000, "chat": chat, "from": sender, **content}
    return Update.de_json({"update_id": 1, kind: message}, None)


def test_text_and_commands_from_a_private_chat():
    assert event_for(update(text="Как вступить?")) == UserText(REF, "Как вступить?")
    command = update(text="/lang@navigator_bot en",
                     entities=[{"type": "bot_command", "offset": 0, "length": 20}])
    assert event_for(command) == UserCommand(REF, "lang", "en")


def test_an_edited_text_is_read_again_but_an_edited_command_is_not_rerun():
    assert event_for(update("edited_message", text="исправил", edit_date=1_700_000_100)) \
        == UserText(REF, "исправил")
    assert event_for(update("edited_message", text="/start", edit_date=1_700_000_100,
                            entities=[{"type": "bot_command", "offset": 0, "length": 6}])) \
        is None


def test_a_button_press_in_a_private_chat():
    press = Update.de_json({"update_id": 2, "callback_query": {
        "id": "9", "from": ANNA, "chat_instance": "1", "data": "menu",
        "message": {"message_id": 5, "date": 1_700_000_000, "chat": PRIVATE,
                    "from": {"id": 1, "is_bot": True, "first_name": "Bot"}, "text": "Меню"},
    }}, None)
    assert event_for(press) == ButtonPressed(REF, "menu")


@pytest.mark.parametrize(("content", "described"), [
    ({"photo": [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}],
      "caption": "ошибка"}, "[фото] ошибка"),
    ({"document": {"file_id": "d", "file_unique_id": "d", "file_name": "scan.pdf"}},
     "[документ scan.pdf]"),
    ({"voice": {"file_id": "v", "file_unique_id": "v", "duration": 12}},
     "[голосовое сообщение, 12 с]"),
])
def test_attachments_reach_the_engine_as_a_description(content, described):
    assert event_for(update(**content)) == UserText(REF, described)


def test_groups_channels_bots_and_the_unknown_are_not_for_the_engine():
    assert event_for(update(chat=GROUP, text="привет")) is None
    assert event_for(update(sender={**ANNA, "is_bot": True}, text="привет")) is None
    channel = Update.de_json({"update_id": 3, "channel_post": {
        "message_id": 1, "date": 1_700_000_000, "text": "новости",
        "chat": {"id": -1002, "type": "channel", "title": "Канал"}}}, None)
    assert event_for(channel) is None
    assert event_for(update(location={"latitude": 42.4, "longitude": 19.3})) is None


AGENTS = {"id": -100777, "type": "supergroup", "title": "MTL Support agents", "is_forum": True}
OLEG = {"id": 77, "is_bot": False, "first_name": "Олег", "last_name": "Иванов",
        "username": "oleg"}
OLEG_REF = AgentRef(77, "Олег Иванов", "oleg")


def in_agents_chat(update_: Update, tickets: dict[tuple[int | None, int | None], int]
                   ) -> Any:
    """The event, with the ticket that `tickets` gives its place ((topic, replied-to
    message) -> ticket, as the desk would find it: navigator.desk.threads)."""
    event = agent_event_for(update_, AGENTS["id"])
    if event is None or isinstance(event, AgentButtonPressed):
        return event
    place = event.place
    assert place is not None and place.chat_id == AGENTS["id"], "where it was posted"
    return replace(event, ticket_id=tickets.get((place.thread_id, place.reply_to_message_id)),
                   place=None)


def test_a_reply_to_a_card_in_the_agents_chat_answers_its_ticket():
    card = {"message_id": 50, "date": 1_700_000_000, "chat": AGENTS,
            "from": {"id": 1, "is_bot": True, "first_name": "Navigator"}, "text": "Заявка №3"}
    answer = update(chat=AGENTS, sender=OLEG, text="Здравствуйте! Посмотрите в «Бемаксе».",
                    reply_to_message=card)
    assert in_agents_chat(answer, {(None, 50): 3}) == \
        AgentText(OLEG_REF, 3, "Здравствуйте! Посмотрите в «Бемаксе».")


def test_commands_in_a_tickets_topic_act_on_that_ticket():
    resolve = update(chat=AGENTS, sender=OLEG, text="/resolve@navigator_bot",
                     message_thread_id=9, is_topic_message=True,
                     entities=[{"type": "bot_command", "offset": 0, "length": 22}])
    assert in_agents_chat(resolve, {(9, None): 4}) == AgentCommand(OLEG_REF, "resolve", "", 4)


def test_card_buttons_and_chatter_in_the_agents_chat():
    card = {"message_id": 50, "date": 1_700_000_000, "chat": AGENTS,
            "from": {"id": 1, "is_bot": True, "first_name": "Navigator"}, "text": "Заявка №3"}
    press = Update.de_json({"update_id": 2, "callback_query": {
        "id": "1", "from": OLEG, "chat_instance": "x", "data": "take|3", "message": card}}, None)
    assert in_agents_chat(press, {}) == AgentButtonPressed(OLEG_REF, "take|3")
    assert event_for(press) is None, "not a user's button"
    chatter = update(chat=AGENTS, sender=OLEG, text="Коллеги, кто сегодня дежурит?")
    assert in_agents_chat(chatter, {}) == AgentText(OLEG_REF, None,
                                                    "Коллеги, кто сегодня дежурит?")
    assert in_agents_chat(update(chat=GROUP, sender=OLEG, text="/take 3"), {}) is None, \
        "another group is not the agents' chat"


def test_an_agents_photo_in_a_tickets_topic_is_an_answer_carrying_the_photo():
    photo = update(chat=AGENTS, sender=OLEG, message_thread_id=9, is_topic_message=True,
                   photo=[{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}],
                   caption="Схема проезда")
    assert in_agents_chat(photo, {(9, None): 4}) == AgentText(
        OLEG_REF, 4, "Схема проезда", Attachment("photo", AGENTS["id"], 5))


@pytest.mark.parametrize(("content", "attachment"), [
    ({"document": {"file_id": "d", "file_unique_id": "d", "file_name": "образец.pdf"}},
     Attachment("document", AGENTS["id"], 5, "образец.pdf")),
    ({"voice": {"file_id": "v", "file_unique_id": "v", "duration": 12}},
     Attachment("voice", AGENTS["id"], 5)),
    ({"animation": {"file_id": "a", "file_unique_id": "a", "width": 1, "height": 1,
                    "duration": 2, "file_name": "ура.mp4"},
      "document": {"file_id": "a", "file_unique_id": "a", "file_name": "ура.mp4"}},
     Attachment("animation", AGENTS["id"], 5, "ура.mp4")),
    ({"sticker": {"file_id": "s", "file_unique_id": "s", "width": 1, "height": 1,
                  "is_animated": False, "is_video": False, "type": "regular"}},
     Attachment("sticker", AGENTS["id"], 5)),
])
def test_each_attachment_is_named_as_the_bot_api_names_it(content, attachment):
    card = {"message_id": 50, "date": 1_700_000_000, "chat": AGENTS,
            "from": {"id": 1, "is_bot": True, "first_name": "Navigator"}, "text": "Заявка №3"}
    sent = update(chat=AGENTS, sender=OLEG, reply_to_message=card, **content)
    assert in_agents_chat(sent, {(None, 50): 3}) == AgentText(OLEG_REF, 3, "", attachment)


GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group",
                       "username": "GroupAnonymousBot"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel",
               "username": "Channel_Bot"}
NEWS = {"id": -100999, "type": "channel", "title": "MTL Новости"}


def test_messages_sent_as_the_group_or_a_channel_name_nobody():
    as_group = update(chat=AGENTS, sender=GROUP_ANONYMOUS_BOT, sender_chat=AGENTS,
                      message_thread_id=9, is_topic_message=True, text="Ответ от админа")
    assert in_agents_chat(as_group, {(9, None): 4}) == AnonymousAgentMessage(4)
    as_channel = update(chat=AGENTS, sender=CHANNEL_BOT, sender_chat=NEWS, text="/take 4",
                        entities=[{"type": "bot_command", "offset": 0, "length": 5}])
    assert in_agents_chat(as_channel, {}) == AnonymousAgentMessage(None, "MTL Новости", "take")


def test_service_messages_in_the_agents_chat_are_not_for_the_engine():
    pinned = update(chat=AGENTS, sender=GROUP_ANONYMOUS_BOT, sender_chat=AGENTS,
                    pinned_message={"message_id": 4, "date": 1_700_000_000, "chat": AGENTS,
                                    "text": "Правила"})
    assert in_agents_chat(pinned, {}) is None
    joined = update(chat=AGENTS, sender=OLEG, new_chat_members=[OLEG])
    assert in_agents_chat(joined, {}) is None
