"""Running flows for a user: show a step, take the answer or the button pressed, go on
to the next step, and back to the flow that called this one.

A step that does not wait for the user (a message without buttons, `set`, `branch`,
`goto`...) runs the next one at once, up to MAX_STEP_CHAIN in a row. Where the user is
(flow, step, what is awaited, the answers given, the calling flows) lives in their
conversation, so any process continues it.
"""

from __future__ import annotations

import logging
from typing import Any

from navigator import answering, buttons, desk, handover
from navigator.events import Button
from navigator.flows.answers import InvalidAnswer, looks_like_question, parse_answer
from navigator.flows.definitions import MAIN_FLOW, Option, Step, expression, template
from navigator.handover import HANDOVER_QUESTION
from navigator.render import html_to_plain
from navigator.turn import Turn

log = logging.getLogger(__name__)

ASK, SEARCH = "ask", "search"  # conversation.awaiting: an answer, a question to search
MAX_STEP_CHAIN = 50  # automatic steps in a row; more means a loop `check` should have caught
FREE_TEXT_ANSWERS = ("text", "regex")  # any words can be the answer: never read as a question


def show_main_menu(turn: Turn, notice: str | None = None) -> None:
    """The main flow's first step (after `notice`, if any)."""
    if notice:
        turn.send(notice)
    flow = turn.flows.flows.get(MAIN_FLOW)
    if flow is None:
        turn.send(turn.say("help"))
        return
    run_step(turn, MAIN_FLOW, flow.start)


def in_flow(turn: Turn) -> bool:
    """Somewhere in a flow other than the main menu itself."""
    conversation = turn.conversation
    main = turn.flows.flows.get(MAIN_FLOW)
    return conversation.flow_id is not None and \
        (conversation.flow_id, conversation.step_id) != (MAIN_FLOW, main.start if main else "")


def run_step(turn: Turn, flow_id: str, step_id: str, depth: int = 0) -> None:
    """Run a step, and the automatic steps after it, until one waits for the user."""
    step = turn.flows.step(flow_id, step_id)
    if step is None or depth > MAX_STEP_CHAIN:
        log.error("flow %s: cannot run step %r (missing, or a loop)", flow_id, step_id)
        turn.leave_flows()
        turn.send(turn.say("menu_outdated"), [buttons.menu(turn)])
        return
    conversation = turn.conversation
    conversation.flow_id, conversation.step_id = flow_id, step_id
    conversation.awaiting = None
    text = _step_text(turn, step.text)
    links = [Button(o.label.get(turn.language), "", url=o.value) for o in step.links]
    if step.kind == "menu" or (step.kind == "message" and step.options):
        shown = [*links, *(Button(o.label.get(turn.language),
                                  buttons.option(flow_id, step_id, i))
                           for i, o in enumerate(step.options))]
        if in_flow(turn):
            shown.append(buttons.menu(turn))
        turn.send(text, shown, step.image, collapse=_screen(flow_id, step_id))
    elif step.kind == "message":
        turn.send(text, links, step.image)
        _continue(turn, flow_id, step, depth)
    elif step.kind == "ask":
        conversation.awaiting = ASK
        turn.send(text, [*_answer_buttons(turn, flow_id, step),
                         buttons.exit_flow(turn)], collapse=_screen(flow_id, step_id))
    elif step.kind == "branch":
        _branch(turn, flow_id, step, depth)
    elif step.kind == "set":
        context = _template_context(turn)
        variables = dict(conversation.variables)
        for name, value in step.assignments:
            variables[name] = template(value).render(**context)
        conversation.variables = variables
        _continue(turn, flow_id, step, depth)
    elif step.kind == "article":
        if text:
            turn.send(text)
        if answering.show_article(turn, step.article or "", feedback=not step.next):
            _continue(turn, flow_id, step, depth)
    elif step.kind == "search":
        conversation.awaiting = SEARCH
        turn.send(text or turn.say("search_prompt"),
                  [buttons.exit_flow(turn)], collapse=_screen(flow_id, step_id))
    elif step.kind == "handover":
        _handover_step(turn, step)
    elif step.kind in ("goto", "call"):
        target = turn.flows.flows[step.flow or ""]
        if step.kind == "call":
            conversation.stack = [*conversation.stack, {"flow": flow_id, "next": step.next}]
        run_step(turn, target.id, step.target_step or target.start, depth + 1)
    elif step.kind == "end":
        if text:
            turn.send(text)
        _finish_flow(turn, depth)


def _continue(turn: Turn, flow_id: str, step: Step, depth: int = 0) -> None:
    if step.next:
        run_step(turn, flow_id, step.next, depth + 1)
    else:
        _finish_flow(turn, depth)


def _finish_flow(turn: Turn, depth: int = 0) -> None:
    """The flow is over: return to the flow that called it, or leave the user with a
    way back to the main menu."""
    conversation = turn.conversation
    if conversation.stack:
        *rest, frame = conversation.stack
        conversation.stack = rest
        caller = turn.flows.flows.get(frame["flow"])
        if caller and frame.get("next") in caller.steps:
            run_step(turn, caller.id, frame["next"], depth + 1)
        else:
            _finish_flow(turn, depth + 1)
        return
    conversation.flow_id = conversation.step_id = conversation.awaiting = None
    last = turn.last_message()
    if last is None:
        turn.send(turn.say("flow_done"), [buttons.menu(turn)])
    elif not any(b.data for b in last.buttons):
        turn.add_buttons(buttons.menu(turn))


def _branch(turn: Turn, flow_id: str, step: Step, depth: int) -> None:
    context = _template_context(turn)
    for case in step.cases:
        try:
            matched = bool(expression(case.when)(**context))
        except Exception:  # a condition on a missing or odd value is simply false
            log.warning("flow %s step %s: condition %r failed", flow_id, step.id, case.when,
                        exc_info=True)
            matched = False
        if matched:
            run_step(turn, flow_id, case.goto, depth + 1)
            return
    if step.otherwise:
        run_step(turn, flow_id, step.otherwise, depth + 1)
    else:
        _finish_flow(turn, depth)


def take_text(turn: Turn, step: Step, text: str) -> None:
    """Text for the `ask` or `search` step the user is at."""
    conversation = turn.conversation
    if conversation.awaiting == SEARCH:
        conversation.awaiting = None
        answering.search(turn, text)
        _continue(turn, conversation.flow_id or "", step)
        return
    try:
        value = parse_answer(step, text, turn.language)
    except InvalidAnswer as problem:
        if step.ask_type in FREE_TEXT_ANSWERS or not looks_like_question(text, step):
            _retry(turn, step, problem.reason)
            return
        # Not an answer but a question: search it and offer the way back.
        conversation.awaiting = None
        answering.search(turn, text)
        turn.add_buttons(buttons.resume(turn))
        return
    _accept_answer(turn, step, value)


def _accept_answer(turn: Turn, step: Step, value: Any) -> None:
    conversation = turn.conversation
    conversation.variables = {**conversation.variables, step.var or "answer": value}
    conversation.awaiting = None
    _continue(turn, conversation.flow_id or "", step)


def _retry(turn: Turn, step: Step, reason: str) -> None:
    """Say what is wrong with the answer, and offer the ways out."""
    message = _step_text(turn, step.retry) if step.retry else turn.texts.say(
        turn.language, reason, minimum=step.minimum, maximum=step.maximum)
    turn.send(message + "\n" + turn.say("answer_way_out"),
              [*_answer_buttons(turn, turn.conversation.flow_id or "", step),
               buttons.human(turn), buttons.exit_flow(turn)])


def _answer_buttons(turn: Turn, flow_id: str, step: Step) -> list[Button]:
    if step.ask_type == "yesno":
        labels = [turn.say("button_yes"), turn.say("button_no")]
    elif step.ask_type == "choice":
        labels = [c.label.get(turn.language) for c in step.choices]
    else:
        return []
    return [Button(label, buttons.choice(flow_id, step.id, i))
            for i, label in enumerate(labels)]


def _template_context(turn: Turn) -> dict[str, Any]:
    return {**desk.public_variables(turn.conversation.variables),
            "name": turn.user.name, "language": turn.language,
            "has_request": lambda request_type: desk.has_request(turn, request_type)}


def _step_text(turn: Turn, text: Any) -> str:
    return text.render(turn.language, **_template_context(turn)) if text else ""


def _handover_step(turn: Turn, step: Step) -> None:
    """A flow's `handover` step: a request made once (or once per value) is not
    made again; its question may be written in the flow."""
    if not handover.available(turn):
        return
    earlier = desk.earlier_request(turn, step.request_type, step.once, step.unique_by)
    if earlier is not None:
        message = _step_text(turn, step.duplicate) if step.duplicate else \
            turn.say("duplicate_request", ticket=earlier.id)
        turn.send(message, [buttons.human(turn)])
        _finish_flow(turn)
    elif step.question:
        handover.open_ticket(turn, step.request_type,
                             html_to_plain(_step_text(turn, step.question)), desk.FLOW)
    else:
        handover.ask_question(turn, step.request_type, _step_text(turn, step.text),
                              why=desk.FLOW)


def on_option(turn: Turn, rest: str) -> None:
    """A menu's button (`rest`: see navigator.buttons): where its option leads."""
    flow_id, step_id, option = option_of(turn, rest)
    if option is None:
        # The flow changed since this button was sent: show what exists now.
        turn.leave_flows()
        show_main_menu(turn, turn.say("menu_outdated"))
        return
    if _is_stale(turn, flow_id, step_id):
        _reshow(turn)
        return
    turn.conversation.flow_id, turn.conversation.step_id = flow_id, step_id
    turn.conversation.trail = [*turn.conversation.trail, option.label.get("ru")][-20:]
    if option.target == "goto":
        run_step(turn, flow_id, option.value)
    elif option.target == "flow":
        run_step(turn, option.value, turn.flows.flows[option.value].start)
    elif option.target == "article":
        answering.show_article(turn, option.value)
        if in_flow(turn):
            turn.add_buttons(buttons.resume(turn))
    elif option.target == "handover":
        handover.start(turn, option.value,
                       why=desk.ASKED if option.value == desk.QUESTION else desk.FLOW)


def option_of(turn: Turn, rest: str) -> tuple[str, str, Option | None]:
    """(flow, step, the option) an option button names; the option is None if the
    button is malformed or the flow changed since it was sent."""
    pressed = buttons.step_button(rest)
    if pressed is None:
        return "", "", None
    flow_id, step_id, index = pressed
    step = turn.flows.step(flow_id, step_id)
    try:
        return flow_id, step_id, step.options[index] if step else None
    except IndexError:
        return "", "", None


def on_choice(turn: Turn, rest: str) -> None:
    """A button answering an `ask` step (a choice, or yes/no)."""
    flow_id, step_id, number = buttons.step_button(rest) or ("", "", -1)
    step = turn.flows.step(flow_id, step_id)
    conversation = turn.conversation
    if step is None or conversation.awaiting != ASK or \
            (conversation.flow_id, conversation.step_id) != (flow_id, step_id):
        _reshow(turn)  # an old question's button: never answer twice
        return
    if step.ask_type == "yesno" and number in (0, 1):
        _accept_answer(turn, step, number == 0)
    elif 0 <= number < len(step.choices):
        _accept_answer(turn, step, step.choices[number].value)
    else:
        _reshow(turn)


def _is_stale(turn: Turn, flow_id: str, step_id: str) -> bool:
    """A menu button from an older message while the user is in the middle of a
    question: acting on it would abandon (or double) what they are doing."""
    conversation = turn.conversation
    return conversation.awaiting in (ASK, SEARCH, HANDOVER_QUESTION) and \
        (conversation.flow_id, conversation.step_id) != (flow_id, step_id)


def _reshow(turn: Turn) -> None:
    conversation = turn.conversation
    if turn.flows.step(conversation.flow_id, conversation.step_id) is None:
        turn.leave_flows()
        show_main_menu(turn, turn.say("menu_outdated"))
        return
    turn.send(turn.say("stale_button"))
    run_step(turn, conversation.flow_id or "", conversation.step_id or "")


def resume(turn: Turn) -> None:
    """The step the user is at, again (the main menu if it no longer exists)."""
    if turn.flows.step(turn.conversation.flow_id, turn.conversation.step_id) is None:
        turn.leave_flows()
        show_main_menu(turn)
    else:
        run_step(turn, turn.conversation.flow_id or "", turn.conversation.step_id or "")


def offer_resume(turn: Turn) -> None:
    """Ask a user back after a while whether to go on with their flow."""
    turn.send(turn.say("resume_offer", title=turn.flow_title()),
              [Button(turn.say("button_continue"), buttons.RESUME), buttons.menu(turn)])


def _screen(flow_id: str, step_id: str) -> str:
    """The collapse key of a step's message: shown again back to back, the newest copy
    is enough (navigator.outbox)."""
    return f"step|{flow_id}|{step_id}"
