"""Questions embedded on a model thread of their own, those waiting together in one batch."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import numpy as np

from navigator.search.embedder import Embedder


class QueryBatcher:
    """Embeds questions on its own thread, those waiting together in one model call.

    The bot decides on one database thread, one event after another; the model there
    ran one question at a time while other questions queued behind it. The transport
    knows a question is coming before the engine reaches it (`Searcher.prefetch`), so
    here questions are embedded as they arrive, beside the database thread's work, and
    those that arrive together share a batch: with the bfloat16 encoder on 2 shared
    cores, 14 ms for one question alone, 4.5 ms each in a batch of eight.

    It wraps an Embedder and stands in its place as a Searcher's QueryEmbedder; every
    Searcher built over one batcher (a reloaded index's too) shares its queue.
    `embed_query(text)` returns the vector of one prefetch of `text` (waiting for it), or
    embeds it now if none is waiting. Every prefetch is embedded, even of a text that
    another prefetch holds too: nothing is cached, each question costs the model once.
    A prefetch never asked for (the text was an answer to a flow's question, not a
    search) is dropped after `keep_s` seconds. Before `start` and after `stop` it is the
    plain embedder: questions are embedded when asked, on the asking thread.
    """

    def __init__(self, embedder: Embedder, max_batch: int = 16, keep_s: float = 60.0):
        self.embedder = embedder
        self.max_batch = max_batch
        self.keep_s = keep_s
        self.batches: list[int] = []  # sizes of the last batches (for benchmarks)
        self._lock = threading.Condition()
        self._queue: list[tuple[str, Future[np.ndarray]]] = []
        self._waiting: dict[str, list[tuple[float, Future[np.ndarray]]]] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> QueryBatcher:
        """Run the model thread; returns this batcher."""
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="navigator-model")
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join()

    def prefetch(self, text: str) -> None:
        """Start embedding `text` (returns at once)."""
        future: Future[np.ndarray] = Future()
        now = time.monotonic()
        with self._lock:
            if not self._running:
                return
            self._forget_older_than(now - self.keep_s)
            self._waiting.setdefault(text, []).append((now, future))
            self._queue.append((text, future))
            self._lock.notify()

    def embed_query(self, text: str) -> np.ndarray:
        """The vector of `text`, shape (dimension,): a prefetched one, or embedded now
        (ahead of the prefetches still queued)."""
        with self._lock:
            if not self._running:
                future = None
            elif waiting := self._waiting.get(text):
                _, future = waiting.pop(0)
                if not waiting:
                    del self._waiting[text]
            else:
                future = Future()
                self._queue.insert(0, (text, future))
                self._lock.notify()
        if future is None:
            return self.embedder.embed_queries([text])[0]
        return future.result()

    @property
    def _running(self) -> bool:
        return self._thread is not None and not self._stopping

    def _forget_older_than(self, moment: float) -> None:
        for text in [t for t, items in self._waiting.items() if items[0][0] < moment]:
            kept = [(at, f) for at, f in self._waiting[text] if at >= moment]
            if kept:
                self._waiting[text] = kept
            else:
                del self._waiting[text]

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    for _, future in self._queue:
                        future.cancel()
                    return
                batch, self._queue = self._queue[:self.max_batch], \
                    self._queue[self.max_batch:]
            self.batches = [*self.batches[-999:], len(batch)]
            try:
                vectors = self.embedder.embed_queries([text for text, _ in batch])
            except BaseException as exc:  # the searcher waiting on it reports it
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                future.set_result(vector)
