"""Button data, the engine's button protocol (`o|flow|step|i`, `c|…`, `a|token`,
`fb|y|token`, `h`, `r`, `menu`, `rate|ticket|n`, `unsolved|ticket`, `nocomment|ticket`,
and the agents' `take|ticket`…): whatever a press carries, in whatever state the
conversation is, the engine answers sanely and never fails; and every button the bot
builds is understood when it is pressed."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from navigator.events import AgentButtonPressed, AgentsText, ButtonPressed, NotifyAgents, SendText
from navigator.render import html_to_plain

from .strategies import Press, PressCard, callback_data, forged_presses, real_actions
from .world import ANNA, OLGA, Session, World, share


@share(0.5)
@given(before=real_actions(), presses=st.lists(forged_presses(), min_size=1, max_size=6))
def test_any_button_data_in_any_state_gets_a_sane_reply(world: World, before, presses):
    with world.navigator() as (navigator, clock):
        session = Session(navigator, clock)
        for action in [*before, *presses]:
            event = action.event(session)
            replies = session.handle(event)
            if isinstance(event, ButtonPressed) and \
                    event.data.partition("|")[0] not in ("rate", "unsolved"):
                # A press is always answered (a rating button for another ticket, or
                # a rating out of range, changes nothing and may stay silent).
                assert any(isinstance(r, SendText) and r.user_id == event.user.id
                           for r in replies), (event, replies)
            if isinstance(event, AgentButtonPressed):
                assert replies, event
        session.note_reached()


@given(data=callback_data())
@example(data="rate|²|5")
@example(data="unsolved|³")
@example(data="rate|99999999999999999999|5")
@example(data="o|main|menu|-1")
def test_a_forged_press_on_a_fresh_conversation(world: World, data: str):
    with world.navigator() as (navigator, clock):
        session = Session(navigator, clock)
        replies = session.handle(ButtonPressed(ANNA, data))
        if data.partition("|")[0] not in ("rate", "unsolved"):
            assert any(isinstance(r, SendText) for r in replies), replies
        assert session.handle(AgentButtonPressed(OLGA, data))


@share(0.5)
@given(actions=real_actions())
def test_every_button_the_bot_builds_is_understood_when_pressed(world: World, actions):
    outdated = world.say("menu_outdated")
    stale = world.say("stale_button")
    not_understood = [world.say("agents_help"),
                      world.say("agents_no_ticket", command="x").partition(":")[0]]
    with world.navigator() as (navigator, clock):
        session = Session(navigator, clock)
        for action in actions:
            event = action.event(session)
            replies = session.handle(event)
            if isinstance(action, Press) and isinstance(event, ButtonPressed):
                said = "\n".join(html_to_plain(r.text) for r in replies
                                 if isinstance(r, SendText) and r.user_id == event.user.id)
                assert outdated not in said and stale not in said, (event, said)
            if isinstance(action, PressCard) and isinstance(event, AgentButtonPressed):
                said = "\n".join(html_to_plain(r.text) for r in replies
                                 if isinstance(r, NotifyAgents | AgentsText))
                assert not any(text in said for text in not_understood), (event, said)
        session.note_reached()


def test_the_fuzzed_flows_have_every_answer_type(world: World):
    kinds = {s.ask_type for _, s in world.flows.steps() if s.kind == "ask"}
    assert kinds == {"text", "number", "choice", "yesno", "email", "stellar_account", "regex"}
