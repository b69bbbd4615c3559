"""Measure search on labelled questions, and recommend the decision thresholds.

Questions file: one JSON object per line, `{"q": str, "doc": path | null, "alt": [paths],
"kind": "in" | "out"}` with paths relative to the knowledge root (the format of
shared/benchmarks/mtla-documents/questions-dev.jsonl). Other fields (such as a `split`
name) are ignored.

Questions are searched the way the bot searches them, in a language (English when the
labelled article is under `en/`, else Russian): each article appears once, whatever
the number of its translations, and a hit is right when it is the labelled article in
any language. Without this, an article and its translation would take two places in the
ranking, and a Russian question answered by the English twin would count as wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from navigator.problems import ContentError, Problem
from navigator.search import Searcher

# What a direct answer must get right: below this precision the bot suggests instead.
ANSWER_PRECISION = 0.9
# At most this share of all questions may get a direct answer with the wrong article (or
# to a question the base does not answer): the issue-16 bar for confident mistakes.
MAX_CONFIDENTLY_WRONG = 0.05


@dataclass(frozen=True)
class LabelledQuestion:
    text: str
    paths: frozenset[str]  # acceptable article paths; empty for out-of-scope
    in_scope: bool

    @property
    def language(self) -> str:
        return "en" if any(path.startswith("en/") for path in self.paths) else "ru"


@dataclass
class Outcome:
    question: LabelledQuestion
    rank: int | None  # 1-based rank of the first acceptable article, None if not in results
    top_score: float
    ms: float


@dataclass
class EvalReport:
    total: int
    in_scope: int
    out_of_scope: int
    top1: float
    top5: float
    mrr: float
    out_escalated: float
    in_not_escalated: float
    # Answered outright (top score >= answer_threshold) but not with the right article,
    # out-of-scope questions included: the bot's confident mistakes, as a share of all.
    confidently_wrong: float
    p50_ms: float
    p99_ms: float
    answer_threshold: float
    suggest_threshold: float
    recommended: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def load_questions(path: Path) -> list[LabelledQuestion]:
    """Read a questions file; a bad line is reported as `file:line: message`."""
    questions, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            in_scope = item.get("kind", "in" if item.get("doc") else "out") == "in"
            paths = frozenset([item["doc"], *item.get("alt", [])]) if item.get("doc") else \
                frozenset()
            questions.append(LabelledQuestion(str(item["q"]), paths, in_scope))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(Problem(path, number, f"bad labelled question: {exc}"))
    if problems:
        raise ContentError(problems)
    return questions


def run(searcher: Searcher, questions: list[LabelledQuestion]) -> list[Outcome]:
    outcomes = []
    for question in questions:
        wanted = {article.id for path in question.paths
                  if (article := searcher.knowledge.by_path(path)) is not None}
        result = searcher.search(question.text, language=question.language, k=10)
        ids = [hit.article.id for hit in result.hits]
        rank = next((i for i, found in enumerate(ids, start=1) if found in wanted), None)
        top = result.hits[0].score if result.hits else 0.0
        outcomes.append(Outcome(question, rank, top, result.ms))
    return outcomes


def report(outcomes: list[Outcome], answer_threshold: float,
           suggest_threshold: float) -> EvalReport:
    inside = [o for o in outcomes if o.question.in_scope]
    outside = [o for o in outcomes if not o.question.in_scope]
    latencies = np.array([o.ms for o in outcomes]) if outcomes else np.zeros(1)
    return EvalReport(
        total=len(outcomes), in_scope=len(inside), out_of_scope=len(outside),
        top1=_share(inside, lambda o: o.rank == 1),
        top5=_share(inside, lambda o: o.rank is not None and o.rank <= 5),
        mrr=round(float(np.mean([1 / o.rank if o.rank else 0 for o in inside])), 3)
        if inside else 0.0,
        out_escalated=_share(outside, lambda o: o.top_score < suggest_threshold),
        in_not_escalated=_share(inside, lambda o: o.top_score >= suggest_threshold),
        confidently_wrong=_share(outcomes,
                                 lambda o: o.top_score >= answer_threshold and o.rank != 1),
        p50_ms=round(float(np.percentile(latencies, 50)), 1),
        p99_ms=round(float(np.percentile(latencies, 99)), 1),
        answer_threshold=answer_threshold, suggest_threshold=suggest_threshold,
        recommended=recommend_thresholds(outcomes),
    )


def recommend_thresholds(outcomes: list[Outcome]) -> dict[str, float]:
    """Thresholds from the data.

    suggest: the cut between escalating and not that maximises the mean of "out-of-scope
    escalated" and "in-scope kept" (balanced accuracy). answer: the lowest score at or
    above it where direct answers are right at least ANSWER_PRECISION of the time and
    confident mistakes stay within MAX_CONFIDENTLY_WRONG of all questions (out-of-scope
    questions above it count as wrong answers).
    """
    inside = [o for o in outcomes if o.question.in_scope]
    outside = [o for o in outcomes if not o.question.in_scope]
    if not inside:
        return {}
    # Each cut lies halfway (to four decimals) between two neighbouring scores: it splits
    # the questions as the higher score would, with the widest margin on both sides (a
    # cut equal to a question's score flipped its decision under bfloat16 queries).
    scores = sorted({o.top_score for o in outcomes})
    candidates = [scores[0]] + [round((low + high) / 2, 4)
                                for low, high in pairwise(scores)]
    best_suggest, best_value = candidates[0], -1.0
    for cut in candidates:
        kept = _share(inside, lambda o, c=cut: o.top_score >= c)
        escalated = _share(outside, lambda o, c=cut: o.top_score < c) if outside else 1.0
        value = (kept + escalated) / 2
        if value > best_value:
            best_suggest, best_value = cut, value
    best_answer = candidates[-1]
    for cut in (c for c in candidates if c >= best_suggest):
        answered = [o for o in outcomes if o.top_score >= cut]
        right = [o for o in answered if o.question.in_scope and o.rank == 1]
        wrong_share = (len(answered) - len(right)) / len(outcomes)
        if answered and len(right) / len(answered) >= ANSWER_PRECISION \
                and wrong_share <= MAX_CONFIDENTLY_WRONG:
            best_answer = cut
            break
    return {"suggest_threshold": best_suggest, "answer_threshold": best_answer}


def _share(items: list[Outcome], predicate: Any) -> float:
    return round(sum(1 for o in items if predicate(o)) / len(items), 3) if items else 0.0
