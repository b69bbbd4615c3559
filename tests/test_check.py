"""`navigator check` finds each kind of mistake editors make, at its file and line.

tests/fixtures/broken-flows and broken-knowledge hold one planted mistake per file.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

FIXTURES = "tests/fixtures"
EXPECTED = [
    ("broken-flows/yaml-syntax.yaml:5", "YAML syntax error: a quoted text opens here"),
    ("broken-flows/unknown-kind.yaml:4", "unknown step kind 'mesage' (did you mean 'message'?)"),
    ("broken-flows/unknown-field.yaml:5", "unknown field 'txet' in message step (did you mean "
                                          "'text'?)"),
    ("broken-flows/dangling-goto.yaml:9", "`goto` points at missing step 'finsh' (did you mean "
                                          "'finish'?)"),
    ("broken-flows/missing-flow.yaml:5", "`flow` points at missing flow 'no-such-flow'"),
    ("broken-flows/unreachable.yaml:7", "warning: step 'orphan' of flow 'unreachable' is "
                                        "unreachable"),
    ("broken-flows/endless-loop.yaml:8", "steps endless-loop.again → endless-loop.start loop "
                                         "forever"),
    ("broken-flows/missing-article.yaml:5", "article 'no-such-article' not found"),
    ("broken-flows/template-error.yaml:6", "template error in 'ru' text"),
    ("broken-flows/bad-condition.yaml:6", "bad condition 'goal =='"),
    ("broken-flows/missing-translation.yaml:5", "warning: missing 'en' translation"),
    ("broken-flows/bad-ask.yaml:6", "unknown answer type 'stellar-account' (did you mean "
                                    "'stellar_account'?)"),
    ("broken-flows/duplicate.yaml:1", "duplicate flow id 'duplicate' (first defined at "
                                      "tests/fixtures/broken-flows/duplicate-again.yaml:1)"),
    ("broken-knowledge/broken-front-matter.md:3", "YAML syntax error: a [ list opens here"),
    ("broken-knowledge/good.md:1", "duplicate article id 'good'"),
    ("broken-knowledge/links.md:5", "link to missing file 'gone.md'"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "navigator", "check", "--flows", f"{FIXTURES}/broken-flows",
         "--knowledge", f"{FIXTURES}/broken-knowledge"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={"PATH": "/usr/bin:/bin", "NAVIGATOR_DATA_DIR": str(tmp_path_factory.mktemp("d"))})


@pytest.mark.parametrize(("where", "message"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_each_planted_mistake_is_reported_at_its_file_and_line(report, where, message):
    assert f"{FIXTURES}/{where}: {message}" in report.stdout, report.stdout


def test_errors_fail_the_check_and_warnings_alone_do_not(report, tmp_path):
    assert report.returncode == 1
    assert "14 errors, 4 warnings" in report.stdout
    (tmp_path / "main.yaml").write_text("id: main\nsteps:\n  menu:\n    kind: end\n"
                                        "    text: Только по-русски\n", encoding="utf-8")
    only_warnings = subprocess.run(
        [sys.executable, "-m", "navigator", "check", "--flows", str(tmp_path), "--knowledge",
         "knowledge"],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert only_warnings.returncode == 0, only_warnings.stdout
    assert "0 errors, 1 warnings" in only_warnings.stdout
