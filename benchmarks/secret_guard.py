"""The secret guard (navigator/secret_guard.py): what it catches, what it wrongly
flags, and what it costs.

    .venv/bin/python benchmarks/secret_guard.py [--samples 2000] [--prose GLOB ...]

* **Caught**: generated secrets written the ways people write them (a random key valid,
  lower-case, one character mistyped, split in two or in groups of four, half of them
  glued to the Cyrillic words around; phrases of every length in lower, upper and title
  case, with spaces, commas, new lines or numbered, one word in twelve mistyped, or
  written as the first four letters of each word), each inside a Russian sentence. A
  miss is a leak.
* **Wrongly flagged**: every file of the knowledge base and flows, the association's
  documents (../shared/benchmarks/mtla-documents, skipped when absent), and English
  prose found on this machine (licences, package descriptions: `--prose` globs; the
  defaults below). Each finding is printed with its file so a person can judge it.
* **Cost**: microseconds per text for a short Russian question, a 4,000-character
  English article and a clean log line, best of several repeats.

Figures on this machine (2 shared cores, load average 9-11 while measured):
caught 100% of 2,000 samples of each of the 14 kinds; flagged nothing in 132 files of
the project and reference documents (0.5 MB) nor in 838 English licences and package
descriptions (19.6 MB) except the example secret key in stellar-sdk's README (a real
key: a correct finding); a short question ~10 µs, 4,000 characters of English ~1 ms,
a log line ~5 µs.
"""

from __future__ import annotations

import argparse
import glob
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mnemonic import Mnemonic
from stellar_sdk import StrKey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from navigator.secret_guard import find_secrets  # noqa: E402

REFERENCE = ROOT.parent / "shared" / "benchmarks" / "mtla-documents" / "corpus"
DEFAULT_PROSE = [str(Path(sys.prefix) / "lib" / "python3*" / "site-packages" / "*.dist-info" /
                     "METADATA"), "/usr/share/common-licenses/*", "/usr/share/doc/*/copyright"]
WORDS = Mnemonic("english")


def key(rng: random.Random) -> str:
    return StrKey.encode_ed25519_secret_seed(rng.randbytes(32))


def mistyped(rng: random.Random) -> str:
    written = key(rng)
    position = rng.randrange(1, 56)
    return written[:position] + rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ2345670189") + \
        written[position + 1:]


def split(rng: random.Random) -> str:
    written = key(rng)
    cut = rng.randrange(4, 52)
    return written[:cut] + rng.choice([" ", "\n"]) + written[cut:]


def groups_of_four(written: str) -> str:
    return " ".join(written[i:i + 4] for i in range(0, 56, 4))


def phrase(rng: random.Random, style: Callable[[list[str]], str], typo: bool = False) -> str:
    words = WORDS.to_mnemonic(rng.randbytes(rng.choice([16, 20, 24, 28, 32]))).split()
    if typo:
        index = rng.randrange(1, len(words) - 1)
        word = words[index]
        at = rng.randrange(len(word))
        words[index] = word[:at] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[at + 1:]
    return style(words)


KINDS: dict[str, Callable[[random.Random], str]] = {
    "key": key,
    "key lower-case": lambda rng: key(rng).lower(),
    "key mistyped": mistyped,
    "key split in two": split,
    "key in groups of 4": lambda rng: groups_of_four(key(rng)),
    "phrase lower": lambda rng: phrase(rng, " ".join),
    "phrase upper": lambda rng: phrase(rng, lambda w: " ".join(w).upper()),
    "phrase title, new lines": lambda rng: phrase(rng, lambda w: "\n".join(
        x.title() for x in w)),
    "phrase commas": lambda rng: phrase(rng, ", ".join),
    "phrase numbered": lambda rng: phrase(rng, lambda w: "\n".join(
        f"{n}. {x}" for n, x in enumerate(w, start=1))),
    "phrase one word mistyped": lambda rng: phrase(rng, " ".join, typo=True),
    "phrase first four letters": lambda rng: phrase(rng, lambda w: " ".join(x[:4] for x in w)),
    "phrase first word capital": lambda rng: phrase(rng, lambda w: " ".join(
        [w[0].title(), *w[1:]])),
}


def caught(samples: int, seed: int = 10) -> dict[str, float]:
    rng = random.Random(seed)
    rates = {}
    for name, make in KINDS.items():
        hits = 0
        for _ in range(samples):
            secret = make(rng)
            glue = " " if name.startswith("phrase") or rng.random() < 0.5 else ""
            text = f"Здравствуйте, вот что у меня есть:{glue}{secret}{glue}что делать дальше?"
            found = find_secrets(text)
            hits += bool(found) and all(part in "".join(text[f.start:f.end] for f in found)
                                        for part in secret.split())
        rates[name] = hits / samples
    return rates


def flagged(patterns: list[str]) -> tuple[int, int, list[str]]:
    files = sorted({path for pattern in patterns for path in glob.glob(pattern, recursive=True)
                    if Path(path).is_file()})
    size, findings = 0, []
    for path in files:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        size += len(text)
        findings += [f"{path}: {f.kind} {text[f.start:f.end][:80]!r}" for f in find_secrets(text)]
    return len(files), size, findings


def cost_us(text: str, repeats: int = 200) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            find_secrets(text)
        best = min(best, (time.perf_counter() - started) / repeats)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--prose", nargs="*", default=DEFAULT_PROSE)
    args = parser.parse_args()

    print(f"caught, {args.samples} generated secrets of each kind inside a sentence:")
    for name, rate in caught(args.samples).items():
        print(f"  {name:<28} {rate:7.2%}")

    project = [str(ROOT / "knowledge" / "**" / "*.md"), str(ROOT / "flows" / "*.yaml"),
               str(REFERENCE / "**" / "*.md")]
    for label, patterns in (("project and reference documents", project),
                            ("English prose on this machine", args.prose)):
        count, size, findings = flagged(patterns)
        print(f"flagged in {label}: {len(findings)} in {count} files "
              f"({size / 1e6:.1f} MB)")
        for finding in findings:
            print(f"  {finding}")

    article = (ROOT / "knowledge" / "en" / "stellar-security.md").read_text()[:4000]
    print("cost per text (best of 5):")
    for label, text in (("short Russian question", "Как открыть линию доверия на EURMTL?"),
                        ("4,000 characters of English", article),
                        ("a log line", "INFO navigator.outbox: delivered row 1234 to user:42")):
        print(f"  {label:<30} {cost_us(text):8.1f} µs")


if __name__ == "__main__":
    main()
