"""Articles cut into chunks, the pieces that get one vector each: an article's example
questions, then each section in overlapping windows of words."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from navigator.knowledge import Article, KnowledgeBase

CHUNK_WORDS = 120  # e5-small reads 512 tokens; ~120 Russian words stay well inside
CHUNK_OVERLAP = 30


@dataclass(frozen=True)
class Chunk:
    """A piece of an article that gets one vector."""

    article_id: str
    lang: str
    path: str
    title: str
    headings: tuple[str, ...]
    text: str

    @property
    def hash(self) -> str:
        """The content hash (32 hex digits) the index reuses a vector by."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:32]


def article_chunks(article: Article) -> list[Chunk]:
    """The chunks of one article: its example questions, then each section in windows.

    Never empty: an article with neither gets one chunk of its title.
    """
    chunks = []
    if article.questions:
        text = f"{article.title}\n" + "\n".join(article.questions)
        chunks.append(Chunk(article.id, article.lang, article.path, article.title, (), text))
    for section in article.sections:
        heading = " / ".join(section.headings)
        prefix = f"{article.title}. {heading}\n" if heading else f"{article.title}\n"
        for window in _windows(section.text.split()):
            chunks.append(Chunk(article.id, article.lang, article.path, article.title,
                                section.headings, prefix + " ".join(window)))
    if not chunks:
        chunks.append(Chunk(article.id, article.lang, article.path, article.title, (),
                            article.title))
    return chunks


def _windows(words: list[str]) -> list[list[str]]:
    if len(words) <= CHUNK_WORDS:
        return [words]
    step = CHUNK_WORDS - CHUNK_OVERLAP
    return [words[i:i + CHUNK_WORDS] for i in range(0, len(words) - CHUNK_OVERLAP, step)]


def knowledge_chunks(knowledge: KnowledgeBase) -> list[Chunk]:
    """The chunks of every article of `knowledge`, in article order (the index's rows)."""
    return [chunk for article in knowledge.articles for chunk in article_chunks(article)]
