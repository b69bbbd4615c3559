"""The sentence-transformers model that turns questions and passages into vectors, and
the bfloat16 copy of its encoder that can embed questions faster on CPUs made for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class QueryEmbedder(Protocol):
    """What a Searcher asks of whatever embeds its questions: the Embedder itself, or a
    QueryBatcher wrapping it."""

    def embed_query(self, text: str) -> np.ndarray:
        """The L2-normalised float32 vector of `text`, shape (dimension,)."""
        ...

    def prefetch(self, text: str) -> None:
        """`text` may be asked for soon: start embedding it, if that helps (returns at once)."""
        ...


class Embedder:
    """A sentence-transformers model that returns L2-normalised float32 vectors.

    Uses the model's `query`/`passage` prompts when it has them (e5 expects
    `query: ` / `passage: ` prefixes).
    """

    def __init__(self, model_name: str, cache_dir: Path | None = None):
        from transformers.utils import logging as transformers_logging

        from navigator.embedding_model import load_sentence_transformer

        # The library's "Loading weights" bars and notices would interleave with the chat.
        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        self.name = model_name
        self.model = load_sentence_transformer(model_name, cache_dir)
        self.query_encoder: Any = None  # see use_bfloat16_queries
        self._lock = threading.Lock()  # the encoder is swapped for questions (and back)
        dimension = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)

    def _encode(self, texts: Sequence[str], prompt: str, batch_size: int = 32,
                encoder: Any = None) -> np.ndarray:
        """Through `encoder` (a transformers model standing in for the model's own, e.g.
        the bfloat16 copy), or the model as loaded."""
        prompt_name = prompt if prompt in (self.model.prompts or {}) else None
        with self._lock:
            transformer, slot = self.model[0], _encoder_slot(self.model[0])
            own = getattr(transformer, slot)
            if encoder is not None:
                setattr(transformer, slot, encoder)
            try:
                vectors = self.model.encode(list(texts), prompt_name=prompt_name,
                                            batch_size=batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True)
            finally:
                setattr(transformer, slot, own)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def use_bfloat16_queries(self, probe: Sequence[str] = (), min_cosine: float = 0.9999,
                             max_time_ratio: float = 0.8) -> dict[str, float]:
        """Embed questions (not passages) with a bfloat16 copy of the encoder, if on this
        CPU it is faster and agrees with float32; returns what was measured, `used` 1/0.

        CPUs with native bfloat16 (AVX512-BF16, AMX) run it about twice as fast alone and
        2.6x in batches (multilingual-e5-small, 2 shared cores: 25 -> 14 ms per question,
        12 -> 4.5 ms in eights), elsewhere it is emulated and slower. The vectors stay
        float32 and the index is untouched: the encoder's output is pooled and normalised
        in float32, and the word-embedding table (most of the model) is shared, not
        copied. Measured on knowledge/questions.jsonl and the reference corpus's
        questions: top scores within 0.0008 of float32, the same decision (answer,
        suggest, escalate) for all 183 questions, the same recommended thresholds.
        """
        import copy

        import torch

        probe = list(probe or PROBE_QUESTIONS)
        own = getattr(self.model[0], _encoder_slot(self.model[0]), None)
        if own is None or not hasattr(own, "get_input_embeddings"):
            return {"used": 0.0}
        with self._lock:
            words = own.get_input_embeddings()
            own.set_input_embeddings(torch.nn.Identity())  # the big table stays out
            try:
                fast = copy.deepcopy(own)
            finally:
                own.set_input_embeddings(words)
        fast.to(torch.bfloat16)
        fast.set_input_embeddings(_cast_embedding(words, torch.bfloat16))
        fast.forward = _float_output(fast.forward)  # an instance attribute: this copy only
        exact = self._embed_queries(probe, None)
        close = float((exact * self._embed_queries(probe, fast)).sum(axis=1).min())
        plain_s, fast_s = (self._time_queries(probe, encoder) for encoder in (None, fast))
        used = close >= min_cosine and fast_s <= max_time_ratio * plain_s
        self.query_encoder = fast if used else None
        return {"used": float(used), "min_cosine": close, "float32_ms": plain_s * 1000,
                "bfloat16_ms": fast_s * 1000}

    def _time_queries(self, texts: list[str], encoder: Any) -> float:
        """CPU seconds per question, one at a time (this thread's own time: torch runs
        on it, so other processes' load does not count)."""
        self._embed_queries(texts[:2], encoder)  # warm up
        started = time.thread_time()
        for text in texts:
            self._embed_queries([text], encoder)
        return (time.thread_time() - started) / len(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of questions, shape (len(texts), dimension), one row per text.

        On one thread: a chat question is too small to split across cores, and when the
        other core is busy the second thread's waiting made a query 10x slower (measured
        on 2 shared cores: p50 70 ms on one thread, 810 ms on two).
        """
        return self._embed_queries(texts, self.query_encoder)

    def embed_query(self, text: str) -> np.ndarray:
        """The vector of one question, shape (dimension,), embedded now."""
        return self.embed_queries([text])[0]

    def prefetch(self, text: str) -> None:
        """Nothing to start: a plain embedder embeds a question when it is asked for
        (a QueryBatcher wrapping it embeds ahead)."""

    def _embed_queries(self, texts: Sequence[str], encoder: Any) -> np.ndarray:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._encode(texts, "query", encoder=encoder)
        finally:
            torch.set_num_threads(threads)

    def embed_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """The vectors of passages, shape (len(texts), dimension), one row per text;
        calls `on_progress(done)` after each batch of 64."""
        parts = []
        batch = 64
        for start in range(0, len(texts), batch):
            parts.append(self._encode(texts[start:start + batch], "passage"))
            if on_progress:
                on_progress(min(start + batch, len(texts)))
        if not parts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.vstack(parts)


# Questions the bfloat16 copy is checked and timed on (Russian and English, short and long).
PROBE_QUESTIONS = (
    "как создать кошелёк",
    "Как открыть линию доверия для токена EURMTL в LOBSTR?",
    "what is the Montelibero association",
    "Где купить MTL и сколько стоит вступление в ассоциацию, если я живу в Черногории?",
    "how do I get a residence permit",
    "что делать если потерял секретный ключ",
    "Can I pay for a coworking with EURMTL, and where do I find the list of places?",
    "кто такие агенты поддержки",
)


def _cast_embedding(table: Any, dtype: Any) -> Any:
    """A module that looks words up in the shared float32 `table` and gives `dtype`. The
    table is held outside the module's registry: moving the copy to another dtype must
    never convert the original model's table."""
    import torch

    class CastEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = (table,)

        def forward(self, ids: Any) -> Any:
            return self.shared[0](ids).to(dtype)

    return CastEmbedding()


def _encoder_slot(transformer: Any) -> str:
    """The attribute of sentence-transformers' Transformer module that holds the
    transformers model: `auto_model` in 5.x; in 6.x that is a read-only alias of `model`."""
    alias = isinstance(getattr(type(transformer), "auto_model", None), property)
    return "model" if alias else "auto_model"


def _float_output(forward: Callable[..., Any]) -> Callable[..., Any]:
    """`forward` with its hidden states in float32, so pooling and normalising are exact.
    (Not a forward hook: sentence-transformers 6 calls `forward` itself, skipping hooks.)"""
    def float_forward(*args: Any, **kwargs: Any) -> Any:
        output = forward(*args, **kwargs)
        output["last_hidden_state"] = output["last_hidden_state"].float()
        return output

    return float_forward
