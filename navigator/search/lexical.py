"""The lexical signal of search: BM25 over whole articles, on stemmed words."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

from navigator.knowledge import Article

_WORD = re.compile(r"\w+")
_CYRILLIC = re.compile(r"[а-я]")


class Tokenizer:
    """Lower-cased words, `ё` read as `е`, Snowball-stemmed: Russian for Cyrillic words,
    English for the rest (questions mix both: "как открыть trustline в LOBSTR")."""

    def __init__(self) -> None:
        import Stemmer

        self._russian = Stemmer.Stemmer("russian")
        self._english = Stemmer.Stemmer("english")

    def __call__(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower().replace("ё", "е"))
        return [self._russian.stemWord(w) if _CYRILLIC.search(w) else self._english.stemWord(w)
                for w in words if len(w) > 1 or w.isdigit()]


class LexicalIndex:
    """BM25 (bm25s) over whole articles: title, example questions and body."""

    def __init__(self, articles: Sequence[Article], tokenizer: Tokenizer | None = None):
        import bm25s

        self.tokenize = tokenizer or Tokenizer()
        self.paths = [a.path for a in articles]
        self.position = {path: i for i, path in enumerate(self.paths)}
        # bm25s sets its own logger to DEBUG, which would print into the chat's stderr.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._bm25 = bm25s.BM25()
        if articles:
            self._bm25.index([self.tokenize(_article_text(a)) or ["\u2205"] for a in articles],
                             show_progress=False)

    def scores(self, question: str) -> np.ndarray:
        """BM25 of every article for `question`, shape (len(paths),), in `paths` order."""
        tokens = self.tokenize(question)
        if not tokens or not self.paths:
            return np.zeros(len(self.paths), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)


def _article_text(article: Article) -> str:
    return "\n".join([article.title, *article.questions, article.body])
