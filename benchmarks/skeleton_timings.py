"""Timings of the walking skeleton on this machine.

1. cold start of `navigator chat` to its first prompt (a real pseudo-terminal);
2. a full build of the shipped knowledge index (model load reported apart);
3. one answer: `Navigator.handle(UserText)` end to end, model loaded, median of 20.

Run from the repository root: `.venv/bin/python benchmarks/skeleton_timings.py [--runs 5]`.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "как создать кошелёк?", "что такое линия доверия", "как вступить в ассоциацию",
    "кто такие агенты поддержки", "что такое MTLAP", "как голосовать в ассоциации",
    "что за токен EURMTL", "как не потерять секретный ключ", "что такое фонд MTLF",
    "с чего начать новичку", "сколько XLM нужно для активации", "как получить рекомендацию",
    "что такое суд MTL", "какие принципы у ассоциации", "как связаться с человеком",
    "how do I create a wallet", "what is a trustline", "как работает совет ассоциации",
    "кто может стать участником", "где купить MTL",
]


def cold_start_to_prompt(data_dir: Path) -> float:
    """Seconds from exec to the `вы › ` prompt of an interactive chat."""
    env = {**os.environ, "NAVIGATOR_DATA_DIR": str(data_dir)}
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real console script
        os.chdir(ROOT)
        os.execve(str(ROOT / ".venv" / "bin" / "navigator"), ["navigator", "chat"], env)
    seen = b""
    try:
        while "вы › ".encode() not in seen:
            ready, _, _ = select.select([fd], [], [], 60)
            if not ready:
                raise TimeoutError(f"no prompt after 60 s: {seen[-300:]!r}")
            seen += os.read(fd, 4096)
        return time.perf_counter() - started
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def index_build(index_dir: Path) -> tuple[float, float, int]:
    """(model load s, embedding s, chunks) for a full build into an empty folder."""
    from navigator.knowledge import load_knowledge
    from navigator.search import Embedder, build_index
    from navigator.settings import Settings

    settings = Settings()
    started = time.perf_counter()
    embedder = Embedder(settings.model, settings.model_cache_dir)
    loaded = time.perf_counter() - started
    report = build_index(load_knowledge(ROOT / "knowledge"), embedder, index_dir)
    return loaded, report.seconds, report.chunks


def answer_times(index_dir: Path, data_dir: Path) -> list[float]:
    """Milliseconds of Navigator.handle for each question (after one warm-up)."""
    from navigator.app import build_navigator, load_content, open_searcher
    from navigator.events import UserRef, UserText
    from navigator.settings import Settings

    settings = Settings(index_dir=index_dir, data_dir=data_dir)
    flows, knowledge = load_content(settings)
    navigator = build_navigator(settings, flows, knowledge, open_searcher(settings, knowledge))
    navigator.handle(UserText(UserRef(1, "Прогрев"), "прогрев"))
    times = []
    for number, question in enumerate(QUESTIONS, start=2):
        started = time.perf_counter()
        navigator.handle(UserText(UserRef(number, "Гость"), question))
        times.append((time.perf_counter() - started) * 1000)
    navigator.store.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repeat each measurement")
    args = parser.parse_args()
    os.chdir(ROOT)
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    work = Path(tempfile.mkdtemp(prefix="navigator-bench-"))
    try:
        starts = [cold_start_to_prompt(work / f"start{i}") for i in range(args.runs)]
        print(f"cold start to first prompt: median {statistics.median(starts):.2f} s "
              f"(runs: {', '.join(f'{s:.2f}' for s in starts)})")
        builds = [index_build(work / f"index{i}") for i in range(args.runs)]
        print(f"index build ({builds[0][2]} chunks): embedding median "
              f"{statistics.median(b[1] for b in builds):.1f} s, model load median "
              f"{statistics.median(b[0] for b in builds):.1f} s "
              f"(runs: {', '.join(f'{b[0]:.1f}+{b[1]:.1f}' for b in builds)})")
        for run in range(args.runs):
            times = answer_times(work / "index0", work / f"answers{run}")
            print(f"one answer (engine, {len(times)} questions): median "
                  f"{statistics.median(times):.1f} ms, max {max(times):.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
