"""The buttons' callback data (navigator.buttons): every button the bot builds fits in
Telegram's 64 bytes and is read back as it was built; forged data is refused, not
misread."""

from __future__ import annotations

from navigator import buttons

LONGEST_ID = "a" * 24  # flow and step ids are at most 24 characters


def read(data: str) -> tuple[str, str]:
    return buttons.kind_of(data)


def test_the_longest_menu_and_answer_buttons_fit_in_telegrams_64_bytes():
    for data in (buttons.option(LONGEST_ID, LONGEST_ID, 99),
                 buttons.choice(LONGEST_ID, LONGEST_ID, 99),
                 buttons.feedback(False, "ru/кошельки/" + "очень-длинное-название" * 10),
                 buttons.article("ru/кошельки/" + "очень-длинное-название" * 10),
                 buttons.rating(10**12, 5), buttons.not_solved(10**12),
                 buttons.agent_action("messages", 10**12, 10**9, 10**9)):
        assert len(data.encode("utf-8")) <= buttons.LIMIT, data


def test_a_menu_option_is_read_back_as_its_flow_step_and_number():
    kind, rest = read(buttons.option("join", "ask-name", 3))
    assert kind == buttons.OPTION
    assert buttons.step_button(rest) == ("join", "ask-name", 3)


def test_an_answer_button_is_read_back_as_its_flow_step_and_number():
    kind, rest = read(buttons.choice("join", "residence", 0))
    assert kind == buttons.CHOICE
    assert buttons.step_button(rest) == ("join", "residence", 0)


def test_feedback_names_the_article_by_its_token():
    kind, rest = read(buttons.feedback(False, "ru/wallets/lobstr.md"))
    assert kind == buttons.FEEDBACK
    assert buttons.feedback_of(rest) == (False, buttons.article_token("ru/wallets/lobstr.md"))
    assert read(buttons.article("ru/wallets/lobstr.md")) == \
        (buttons.ARTICLE, buttons.article_token("ru/wallets/lobstr.md"))


def test_a_rating_and_not_solved_are_read_back_with_their_ticket():
    kind, rest = read(buttons.rating(12, 5))
    assert kind == buttons.RATE and buttons.rating_of(rest) == (12, 5)
    kind, rest = read(buttons.not_solved(12))
    assert kind == buttons.NOT_SOLVED and buttons.ticket_of(rest) == 12
    assert read(buttons.no_comment(12)) == (buttons.NO_COMMENT, "12")


def test_forgetting_is_confirmed_only_by_its_yes_button():
    assert buttons.forget(True) == "forget|yes"
    assert read(buttons.forget(False)) == (buttons.FORGET, "no")


def test_an_agents_card_button_names_the_action_the_ticket_and_its_arguments():
    assert buttons.agent_action_of(buttons.agent_action("take", 7)) == ("take", "7", "")
    assert buttons.agent_action_of(buttons.agent_action("messages", 7, 3, 9)) == \
        ("messages", "7", "3|9")


def test_forged_data_is_refused_not_misread():
    assert buttons.step_button("main|menu") is None
    assert buttons.step_button("main|menu|один") is None
    assert buttons.rating_of("²|5") is None  # a digit int() refuses
    assert buttons.rating_of("12") is None
    assert buttons.ticket_of("³") is None
    assert buttons.ticket_of("") is None
