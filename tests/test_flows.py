"""Flows editors write in YAML: the shipped ones load, and every mistake names file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from navigator.flows import check_flows, load_flows
from navigator.problems import ContentError

GOOD_MENU = """\
id: main
steps:
  menu:
    kind: menu
    text:
      ru: Главное меню
      en: Main menu
    options:
      - label: {ru: Кошелёк, en: Wallet}
        goto: wallet
  wallet:
    kind: message
    text: {ru: Про кошелёк, en: About wallets}
"""


def problems_in(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "main.yaml").write_text(text, encoding="utf-8")
    _, problems = check_flows(tmp_path)
    return [str(p).replace(f"{tmp_path}/", "") for p in problems]


def test_the_shipped_flows_load_without_problems():
    flows, problems = check_flows(Path(__file__).parents[1] / "flows")
    assert problems == []
    assert "main" in flows.flows and flows.flows["main"].start == "menu"


def test_a_valid_flow_loads(tmp_path):
    (tmp_path / "main.yaml").write_text(GOOD_MENU, encoding="utf-8")
    flows = load_flows(tmp_path)
    option = flows.step("main", "menu").options[0]
    assert (option.target, option.value, option.label.get("en")) == ("goto", "wallet", "Wallet")


def test_broken_yaml_names_the_file_and_line(tmp_path):
    broken = GOOD_MENU.replace("      en: Main menu", "      en: Main menu\n     bad: [")
    [problem] = problems_in(tmp_path, broken)
    assert problem.startswith("main.yaml:8: YAML syntax error")


def test_load_flows_raises_with_every_problem(tmp_path):
    (tmp_path / "main.yaml").write_text(GOOD_MENU.replace("kind: message", "kind: mesage")
                                        .replace("goto: wallet", "goto: walet"),
                                        encoding="utf-8")
    with pytest.raises(ContentError) as caught:
        load_flows(tmp_path)
    assert len(caught.value.problems) == 2


@pytest.mark.parametrize(("change", "expected"), [
    (("kind: message", "kind: mesage"),
     "main.yaml:12: unknown step kind 'mesage' (did you mean 'message'?)"),
    (("goto: wallet", "goto: walet"),
     "main.yaml:9: `goto` points at missing step 'walet' (did you mean 'wallet'?)"),
    (("        goto: wallet", "        goto: wallet\n        article: x"),
     "main.yaml:9: a button needs exactly one of goto, flow, article, handover, url (found 2)"),
    (("    text:\n      ru: Главное", "    txet:\n      ru: Главное"),
     "main.yaml:5: unknown field 'txet' in menu step (did you mean 'text'?)"),
    (("      ru: Главное меню", "      ru: Главное {{ меню"),
     "main.yaml:6: template error in 'ru' text"),
    (("id: main", "id: Главное"), "main.yaml:1: flow id 'Главное' must be"),
    (("        goto: wallet", "        flow: payments"),
     "main.yaml:9: `flow` points at missing flow 'payments'"),
])
def test_each_kind_of_mistake_is_reported_at_its_line(tmp_path, change, expected):
    problems = problems_in(tmp_path, GOOD_MENU.replace(*change))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_missing_translation_is_a_warning_not_an_error(tmp_path):
    flows, problems = check_flows(_write(tmp_path, GOOD_MENU.replace(
        "    text: {ru: Про кошелёк, en: About wallets}", "    text: Про кошелёк")))
    assert [(p.severity, p.line) for p in problems] == [("warning", 13)]
    assert flows.step("main", "wallet").text.get("en") == "Про кошелёк"


def test_a_duplicate_flow_id_names_both_places(tmp_path):
    _write(tmp_path, GOOD_MENU)
    (tmp_path / "copy.yaml").write_text(GOOD_MENU, encoding="utf-8")
    _, problems = check_flows(tmp_path)
    assert any("duplicate flow id 'main' (first defined at" in str(p) for p in problems)


def _write(folder: Path, text: str) -> Path:
    (folder / "main.yaml").write_text(text, encoding="utf-8")
    return folder
