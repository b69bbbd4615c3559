"""Knowledge search: articles cut into chunks, embedded by a sentence-transformers model
into a FAISS index, ranked by meaning and by words (BM25), and the decision to answer,
suggest or hand over.

One idea per module, each importing only those above it:

    chunking   Chunk, article_chunks, knowledge_chunks: the pieces that get a vector
    embedder   Embedder (and its bfloat16 copy for questions); QueryEmbedder protocol
    batching   QueryBatcher: wraps an Embedder, embeds questions together on a thread
    index      Index (FAISS + manifest), load_index, build_index (incremental rebuild)
    lexical    Tokenizer (stemmed words), LexicalIndex (BM25 over articles)
    searcher   Searcher (hybrid ranking + decision), Hit, SearchResult, SearchBackend
    serving    BackgroundSearcher, ReloadingSearcher: a searcher as the bot serves it
"""

from navigator.search.batching import QueryBatcher
from navigator.search.chunking import Chunk, article_chunks, knowledge_chunks
from navigator.search.embedder import Embedder, QueryEmbedder
from navigator.search.index import (
    CANDIDATE_CHUNKS,
    HNSW_FROM_CHUNKS,
    BuildReport,
    Index,
    IndexUnavailable,
    build_index,
    faiss_index,
    index_is_fresh,
    load_index,
)
from navigator.search.lexical import LexicalIndex, Tokenizer
from navigator.search.searcher import (
    CANDIDATE_ARTICLES,
    LENGTH_PENALTY,
    LEXICAL_WEIGHT,
    Decision,
    Hit,
    SearchBackend,
    Searcher,
    SearchResult,
)
from navigator.search.serving import BackgroundSearcher, ReloadingSearcher

__all__ = [
    "CANDIDATE_ARTICLES", "CANDIDATE_CHUNKS", "HNSW_FROM_CHUNKS", "LENGTH_PENALTY",
    "LEXICAL_WEIGHT", "BackgroundSearcher", "BuildReport", "Chunk", "Decision", "Embedder",
    "Hit", "Index", "IndexUnavailable", "LexicalIndex", "QueryBatcher", "QueryEmbedder",
    "ReloadingSearcher", "SearchBackend", "SearchResult", "Searcher", "Tokenizer",
    "article_chunks", "build_index", "faiss_index", "index_is_fresh", "knowledge_chunks",
    "load_index",
]
