"""Flow language features, on small flows written for each test."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from navigator.content import Content
from navigator.flows import load_flows
from navigator.handling import Navigator
from navigator.store import Store
from tests.helpers import buttons_of, press, say, text_of


def flows_in(folder: Path, **files: str):
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return load_flows(folder)


@pytest.fixture
def navigator_for(database_url, shipped_knowledge, shipped_searcher):
    made = []

    def make(flows, content=None) -> Navigator:
        navigator = Navigator(Store(database_url), flows, shipped_knowledge, shipped_searcher,
                              content=content)
        made.append(navigator)
        return navigator

    yield make
    for navigator in made:
        navigator.store.close()


MAIN_CALLING = """\
id: main
steps:
  menu:
    kind: menu
    text: Меню
    options:
      - label: Анкета
        goto: survey
  survey:
    kind: call
    flow: ask-name
    next: thanks
  thanks:
    kind: end
    text: "Спасибо, {{ first_name }}! Вам {{ years }} — записал."
"""
ASK_NAME = """\
id: ask-name
steps:
  name:
    kind: ask
    var: first_name
    text: Как вас зовут?
    next: age
  age:
    kind: ask
    var: years
    type: number
    min: 1
    max: 120
    text: Сколько вам лет?
    next: adult
  adult:
    kind: set
    vars: {grown_up: "{{ years >= 18 }}"}
"""


def test_call_runs_another_flow_and_returns_with_its_variables(tmp_path, navigator_for, anna):
    navigator = navigator_for(flows_in(tmp_path, main=MAIN_CALLING, ask=ASK_NAME))
    replies = press(navigator, anna, say(navigator, anna, "/start"), "Анкета")
    assert "Как вас зовут?" in text_of(replies)
    assert "Сколько вам лет?" in text_of(say(navigator, anna, "Анна"))
    assert "Нужно число" in text_of(say(navigator, anna, "двадцать"))
    assert "не больше 120" in text_of(say(navigator, anna, "300"))
    done = say(navigator, anna, "34")
    assert "Спасибо, Анна! Вам 34 — записал." in text_of(done)
    assert [b.label for b in buttons_of(done)] == ["« Главное меню"]


BRANCHING = """\
id: main
steps:
  menu:
    kind: ask
    var: wallet
    type: yesno
    text: Есть кошелёк?
    next: route
  route:
    kind: branch
    cases:
      - when: wallet and name == 'Анна'
        goto: hello_anna
      - when: wallet
        goto: ready
    else: create
  hello_anna:
    kind: end
    text: Анна, у вас всё готово.
  ready:
    kind: end
    text: Всё готово.
  create:
    kind: article
    article: stellar-wallet-create
"""


def test_branch_conditions_see_the_answers_and_the_users_name(tmp_path, navigator_for, anna):
    navigator = navigator_for(flows_in(tmp_path, main=BRANCHING))
    say(navigator, anna, "/start")
    assert "Анна, у вас всё готово." in text_of(press(navigator, anna,
                                                      say(navigator, anna, "/start"), "Да"))
    create = press(navigator, anna, say(navigator, anna, "/start"), "Нет")
    assert "Как создать кошелёк Stellar" in text_of(create)


def test_conditions_and_texts_cannot_run_code(tmp_path, navigator_for, anna):
    sneaky = BRANCHING.replace("wallet and name == 'Анна'",
                               "().__class__.__base__.__subclasses__()")
    navigator = navigator_for(flows_in(tmp_path, main=sneaky))
    replies = press(navigator, anna, say(navigator, anna, "/start"), "Да")
    assert "Всё готово." in text_of(replies), "the unsafe condition counts as false"


def test_a_changed_flow_is_served_without_a_restart_and_a_broken_one_is_not(
        tmp_path, navigator_for, anna, caplog, shipped_knowledge):
    menu = "id: main\nsteps:\n  menu:\n    kind: end\n    text: Версия 1\n"
    flows = flows_in(tmp_path, main=menu)
    content = Content(flows, shipped_knowledge, flows_dir=tmp_path, interval=0)
    navigator = navigator_for(flows, content)
    assert "Версия 1" in text_of(say(navigator, anna, "/start"))
    time.sleep(0.01)
    (tmp_path / "main.yaml").write_text(menu.replace("Версия 1", "Версия 2"), encoding="utf-8")
    assert "Версия 2" in text_of(say(navigator, anna, "/start"))
    (tmp_path / "main.yaml").write_text(menu.replace("kind: end", "kind: ned"), encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert "Версия 2" in text_of(say(navigator, anna, "/start"))
    assert "main.yaml:4: unknown step kind 'ned'" in caplog.text
