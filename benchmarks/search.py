"""Search quality, speed and memory, in one run.

1. Quality on the reference corpus (../shared/benchmarks/mtla-documents: whole file =
   article, dev questions) and on the shipped knowledge/questions.jsonl, with an ablation:
   each signal of the ranking switched on in turn, BM25 alone, and naive rank fusion.
   The escalation figures use the thresholds `navigator eval` recommends on the same
   questions (optimistic on a small set; a leave-one-out estimate is printed beside
   them), and for the shipped base also the thresholds in Settings.
2. The full build time of the reference corpus index (model load apart).
3. A generated base of 5,000 articles: search latency p50/p99 with the model loaded,
   an incremental rebuild after one changed article, and the RSS of a process serving it.
   Embedding ~15,000 chunks would take most of an hour on 2 cores, so the generated
   base's stored vectors are synthesised (real chunk vectors of the reference corpus
   plus noise, normalised); queries are embedded by the real model and the changed
   article of the incremental rebuild is embedded by the real model.
4. `--faiss`: flat vs HNSW search time and recall by index size (why HNSW_FROM_CHUNKS).

Run from the repository root: `.venv/bin/python benchmarks/search.py [--runs 3]`.
Skips cleanly (exit 0) when the reference corpus is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "benchmarks" / "mtla-documents"
SHIPPED = ROOT / "knowledge"
sys.path.insert(0, str(ROOT))

from navigator import evaluation  # noqa: E402
from navigator.knowledge import KnowledgeBase, load_knowledge  # noqa: E402
from navigator.search import (  # noqa: E402
    LexicalIndex,
    Searcher,
    build_index,
    load_index,
)
from navigator.settings import Settings  # noqa: E402

ARTICLES = 5000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repeats of each timing")
    parser.add_argument("--faiss", action="store_true", help="also compare flat and HNSW")
    args = parser.parse_args()
    if not (REFERENCE / "corpus").is_dir():
        print(f"SKIP: reference corpus not found at {REFERENCE}")
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(f"machine: {os.cpu_count()} cores, load average {_load()} at start")
    from navigator.search import Embedder

    settings = Settings()
    started = time.perf_counter()
    embedder = Embedder(settings.model, settings.model_cache_dir)
    print(f"model {embedder.name} loaded in {time.perf_counter() - started:.1f} s\n")
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        quality(embedder, work)
        synthetic_base(embedder, work, args.runs)
        if args.faiss:
            faiss_by_size(args.runs)
    print(f"\nload average {_load()} at the end")
    return 0


# Quality ------------------------------------------------------------------------------

VARIANTS = {  # name -> Searcher keyword arguments
    "dense (best chunk cosine)": {"lexical_weight": 0.0, "length_penalty": 0.0},
    "dense + length penalty": {"lexical_weight": 0.0},
    "dense + BM25": {"length_penalty": 0.0},
    "dense + length penalty + BM25 (shipped)": {},
}


def quality(embedder, work: Path) -> None:
    reference = load_knowledge(REFERENCE / "corpus")
    started = time.perf_counter()
    build = build_index(reference, embedder, work / "reference")
    print(f"reference corpus: {len(reference.articles)} articles, {build.chunks} chunks, "
          f"full build {time.perf_counter() - started:.1f} s (model loaded)")
    questions = evaluation.load_questions(REFERENCE / "questions-dev.jsonl")
    rows = _ablation(reference, work / "reference", embedder, questions)
    _table(f"reference corpus, {len(questions)} dev questions "
           f"({sum(q.in_scope for q in questions)} in scope)", rows)

    shipped = load_knowledge(SHIPPED)
    build_index(shipped, embedder, work / "shipped")
    questions = evaluation.load_questions(SHIPPED / "questions.jsonl")
    rows = _ablation(shipped, work / "shipped", embedder, questions)
    # The front-matter `questions` are one more chunk per article; without them:
    bare = KnowledgeBase(shipped.root, [dataclasses.replace(a, questions=())
                                        for a in shipped.articles])
    shutil.copytree(work / "shipped", work / "shipped-bare")
    build_index(bare, embedder, work / "shipped-bare")  # sections reuse their vectors
    searcher = Searcher(bare, load_index(work / "shipped-bare"), embedder, 1, 1)
    rows.append(("all signals, without front-matter questions",
                 _measure(searcher, questions)))
    settings = Settings()
    searcher = Searcher(shipped, load_index(work / "shipped"), embedder,
                        settings.answer_threshold, settings.suggest_threshold)
    outcomes = evaluation.run(searcher, questions)
    at_settings = evaluation.report(outcomes, settings.answer_threshold,
                                    settings.suggest_threshold)
    rows.append((f"shipped, at Settings thresholds {settings.answer_threshold}/"
                 f"{settings.suggest_threshold}", at_settings))
    _table(f"shipped knowledge, {len(questions)} questions "
           f"({sum(q.in_scope for q in questions)} in scope)", rows)


def _ablation(knowledge, directory, embedder, questions):
    index = load_index(directory)
    lexical = LexicalIndex(knowledge.articles)
    rows = []
    for name, options in VARIANTS.items():
        searcher = Searcher(knowledge, index, embedder, 1.0, 1.0,
                            lexical=lexical if options.get("lexical_weight", 1) else None,
                            **options)
        rows.append((name, _measure(searcher, questions)))
    rows.append(("BM25 alone", _measure(_Bm25Only(knowledge, lexical), questions)))
    dense = Searcher(knowledge, index, embedder, 1.0, 1.0, lexical_weight=0.0,
                     length_penalty=0.0)
    rows.append(("naive RRF(dense, BM25)", _measure(_Rrf(dense, lexical), questions)))
    return rows


def _measure(searcher, questions) -> evaluation.EvalReport:
    outcomes = evaluation.run(searcher, questions)
    recommended = evaluation.recommend_thresholds(outcomes)
    report = evaluation.report(outcomes, recommended.get("answer_threshold", 1.0),
                               recommended.get("suggest_threshold", 1.0))
    report.recommended["leave-one-out"] = _leave_one_out(outcomes)
    return report


def _leave_one_out(outcomes) -> tuple[float, float]:
    """(out-of-scope escalated, in-scope kept) when each question is decided by the
    suggest threshold recommended on all the other questions: an estimate for unseen
    questions, less flattering than fitting and scoring on the same small set."""
    escalated, kept = [], []
    for i, outcome in enumerate(outcomes):
        others = outcomes[:i] + outcomes[i + 1:]
        cut = evaluation.recommend_thresholds(others).get("suggest_threshold", 1.0)
        if outcome.question.in_scope:
            kept.append(outcome.top_score >= cut)
        else:
            escalated.append(outcome.top_score < cut)
    return (float(np.mean(escalated)) if escalated else 0.0,
            float(np.mean(kept)) if kept else 0.0)


class _Bm25Only:
    def __init__(self, knowledge, lexical):
        self.knowledge, self.lexical = knowledge, lexical

    def search(self, question, language=None, k=5):
        from navigator.search import Hit, SearchResult

        scores = self.lexical.scores(question)
        order = np.argsort(-scores)[:k]
        hits = tuple(Hit(self.knowledge.by_path(self.lexical.paths[i]), float(scores[i]), ())
                     for i in order)
        return SearchResult(question, "suggest", hits, 0.0)


class _Rrf:
    """Reciprocal rank fusion (k=60) of the dense ranking and the BM25 ranking."""

    def __init__(self, dense, lexical):
        self.dense, self.lexical = dense, lexical

    def search(self, question, language=None, k=5):
        from navigator.search import Hit, SearchResult

        result = self.dense.search(question, k=40)
        scores = self.lexical.scores(question)
        bm25_rank = {self.lexical.paths[i]: r for r, i in enumerate(np.argsort(-scores), 1)}
        fused = {h.article.path: 1 / (60 + r) + 1 / (60 + bm25_rank[h.article.path])
                 for r, h in enumerate(result.hits, 1)}
        order = sorted(fused, key=lambda p: -fused[p])[:k]
        top = result.hits[0].score if result.hits else 0.0
        hits = tuple(Hit(self.dense.knowledge.by_path(p), top if i == 0 else fused[p], ())
                     for i, p in enumerate(order))
        return SearchResult(question, "suggest", hits, result.ms)


def _table(title: str, rows) -> None:
    print(f"\n{title}")
    print(f"  {'ranking':44} {'top-1':>6} {'top-5':>6} {'MRR':>6} {'out esc':>8} "
          f"{'in kept':>8}  thresholds   leave-one-out: out esc / in kept")
    for name, r in rows:
        loo = r.recommended.get("leave-one-out")
        print(f"  {name:44} {r.top1:6.3f} {r.top5:6.3f} {r.mrr:6.3f} {r.out_escalated:8.3f} "
              f"{r.in_not_escalated:8.3f}  {r.answer_threshold:.3f}/{r.suggest_threshold:.3f}"
              + (f"  {loo[0]:.3f} / {loo[1]:.3f}" if loo else ""))


# The 5,000-article base -----------------------------------------------------------------


class _SyntheticEmbedder:
    """Stands in for the model when the big base is first written (see the docstring)."""

    def __init__(self, real, pool: np.ndarray):
        self.name, self.dimension, self._pool = real.name, real.dimension, pool
        self._random = np.random.default_rng(5000)

    def embed_passages(self, texts, on_progress=None):
        rows = self._pool[self._random.integers(0, len(self._pool), len(texts))]
        rows = rows + self._random.normal(0, 0.02, rows.shape).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return rows.astype(np.float32)


def generate_base(root: Path, articles: int = ARTICLES) -> None:
    """Articles of 2-4 sections, stitched from sentences of the reference corpus."""
    sentences = []
    for path in sorted((REFERENCE / "corpus").rglob("*.md")):
        text = path.read_text(encoding="utf-8").replace("\n", " ")
        sentences += [s.strip() for s in text.split(". ") if 30 < len(s.strip()) < 300]
    rng = random.Random(5000)
    for number in range(articles):
        folder = root / "ru" / f"topic-{number // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        title = json.dumps(f"Статья {number}: {rng.choice(sentences)[:60]}", ensure_ascii=False)
        question = json.dumps(rng.choice(sentences)[:80] + "?", ensure_ascii=False)
        parts = [f"---\ntitle: {title}\nquestions:\n  - {question}\n---\n"]
        for section in range(rng.randint(2, 4)):
            parts.append(f"\n## Раздел {section + 1}\n\n"
                         + ". ".join(rng.sample(sentences, rng.randint(2, 6))) + ".\n")
        (folder / f"article-{number:04d}.md").write_text("".join(parts), encoding="utf-8")


def synthetic_base(embedder, work: Path, runs: int) -> None:
    root, directory = work / "base5000", work / "index5000"
    started = time.perf_counter()
    generate_base(root)
    knowledge = load_knowledge(root)
    if len(knowledge.articles) != ARTICLES:
        raise SystemExit(f"generated base: {knowledge.problems[:3]}")
    pool = load_index(work / "reference").vectors
    build = build_index(knowledge, _SyntheticEmbedder(embedder, pool), directory)
    print(f"\ngenerated base: {len(knowledge.articles)} articles, {build.chunks} chunks "
          f"(written in {time.perf_counter() - started:.1f} s, vectors synthesised)")

    questions = [q.text for q in evaluation.load_questions(REFERENCE / "questions-dev.jsonl")]
    questions += [q.text for q in evaluation.load_questions(SHIPPED / "questions.jsonl")]
    started = time.perf_counter()
    searcher = Searcher(knowledge, load_index(directory, embedder.name), embedder, 0.9, 0.85)
    print(f"  searcher ready in {time.perf_counter() - started:.1f} s (index + BM25)")
    for question in questions[:10]:  # first calls allocate; a serving bot is past them
        searcher.search(question)
    p50s, p99s = [], []
    for run in range(runs):
        ms = [searcher.search(q).ms for q in questions]
        p50s.append(float(np.percentile(ms, 50)))
        p99s.append(float(np.percentile(ms, 99)))
        print(f"  run {run + 1}: {len(ms)} questions, p50 {p50s[-1]:.1f} ms, "
              f"p99 {p99s[-1]:.1f} ms (load {_load()})")
    print(f"  latency, median of {runs} runs: p50 {statistics.median(p50s):.1f} ms, "
          f"p99 {statistics.median(p99s):.1f} ms")

    loads, rebuilds = [], []
    for run in range(runs):
        article = sorted(root.rglob("*.md"))[run * 997]
        article.write_text(article.read_text(encoding="utf-8")
                           + f"\n## Новый раздел {run}\n\nИзменённый текст номер {run}.\n",
                           encoding="utf-8")
        started = time.perf_counter()
        knowledge = load_knowledge(root)
        loads.append(time.perf_counter() - started)
        report = build_index(knowledge, embedder, directory)
        rebuilds.append(report.seconds)
        print(f"  incremental rebuild {run + 1}: {report.embedded} chunk(s) embedded, "
              f"{report.reused} reused, {report.seconds:.2f} s (+ {loads[-1]:.2f} s to "
              f"read the 5,000 files)")
    print(f"  incremental rebuild, median of {runs}: {statistics.median(rebuilds):.2f} s "
          f"(+ {statistics.median(loads):.2f} s reading the base)")
    print(f"  RSS of a process serving this base: {_serving_rss(root, directory)}")


_SERVE = """
import sys
from pathlib import Path
from navigator.knowledge import load_knowledge
from navigator.search import Embedder, Searcher, load_index
from navigator.settings import Settings
s = Settings()
embedder = Embedder(s.model, s.model_cache_dir)
searcher = Searcher(load_knowledge(Path(sys.argv[1])), load_index(Path(sys.argv[2])),
                    embedder, 0.9, 0.85)
for q in ["как вступить в ассоциацию", "what is a trustline", "кто отвечает за совет"] * 10:
    searcher.search(q)
# VmHWM, not ru_maxrss: the latter keeps the forking parent's size across exec.
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(int(status["VmRSS"].split()[0]) // 1024, int(status["VmHWM"].split()[0]) // 1024)
"""


def _serving_rss(root: Path, directory: Path) -> str:
    done = subprocess.run([sys.executable, "-c", _SERVE, str(root), str(directory)],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    rss, peak = done.stdout.split()
    return f"{rss} MiB after 30 searches (peak {peak} MiB; limit 1536 MiB)"


# FAISS by size -------------------------------------------------------------------------


def faiss_by_size(runs: int) -> None:
    import faiss

    from navigator.search import CANDIDATE_CHUNKS

    print("\nFAISS: flat (exact) vs HNSW(32, efSearch=256), random unit vectors, 384-d, "
          f"one query at a time on one thread, k={CANDIDATE_CHUNKS}")
    rng = np.random.default_rng(0)
    for size in (20_000, 50_000, 100_000):
        vectors = rng.standard_normal((size, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = vectors[rng.integers(0, size, 100)] + 0.3 * rng.standard_normal(
            (100, 384)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        flat = faiss.IndexFlatIP(384)
        flat.add(vectors)
        started = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(384, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 80
        hnsw.add(vectors)
        built = time.perf_counter() - started
        hnsw.hnsw.efSearch = CANDIDATE_CHUNKS
        timings = {}
        faiss.omp_set_num_threads(1)  # as navigator.search.index.Index.search does
        for name, index in (("flat", flat), ("hnsw", hnsw)):
            medians = []
            for _ in range(runs):
                times = []
                for query in queries:
                    t = time.perf_counter()
                    index.search(query[None], CANDIDATE_CHUNKS)
                    times.append((time.perf_counter() - t) * 1000)
                medians.append(float(np.median(times)))
            timings[name] = statistics.median(medians)
        _, exact = flat.search(queries, 10)
        _, approx = hnsw.search(queries, 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)])
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        print(f"  {size:>7} vectors: flat {timings['flat']:.2f} ms, hnsw {timings['hnsw']:.2f} ms"
              f" (build {built:.1f} s, recall@10 {recall:.3f})")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
