"""Searchers as the running bot serves them: one that loads on a thread while the chat
starts, and one that swaps in a rebuilt index without a restart."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from navigator.search.searcher import Searcher, SearchResult

log = logging.getLogger(__name__)


class BackgroundSearcher:
    """Loads the model (and refreshes the index) on a thread; `search` waits until ready.

    Lets the terminal chat show its menu at once while the model loads.
    """

    def __init__(self, load: Callable[[], Searcher]):
        self._ready = threading.Event()
        self._searcher: Searcher | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(load,), daemon=True,
                                        name="searcher-loader")
        self._thread.start()

    def _run(self, load: Callable[[], Searcher]) -> None:
        try:
            self._searcher = load()
        except BaseException as exc:  # reported to the caller of search()
            self._error = exc
        finally:
            self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait(self) -> Searcher:
        """The loaded Searcher, once it is; raises what loading raised."""
        self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._searcher is not None
        return self._searcher

    def search(self, question: str, language: str | None = None, k: int = 5) -> SearchResult:
        return self.wait().search(question, language, k)

    def prefetch(self, question: str) -> None:
        """Passed on once the searcher is loaded; before that nothing (it never waits)."""
        if self._ready.is_set() and self._searcher is not None:
            self._searcher.prefetch(question)


class ReloadingSearcher:
    """Serves a Searcher and swaps in a fresh one when the index on disk is rebuilt.

    At most every `every` seconds a search looks at the manifest's (inode, size, mtime);
    when they changed, `load` runs on a thread (a large base takes seconds to read and
    to tokenise for BM25) while the old searcher keeps answering, and the new one
    replaces it in one assignment. A rebuild that cannot be loaded (half-written,
    another model, broken file) is logged and the old index keeps serving until the
    manifest changes again.
    """

    def __init__(self, searcher: Searcher, directory: Path, load: Callable[[], Searcher],
                 every: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self._current = searcher
        self.directory = directory
        self._load = load
        self.every = every
        self._clock = clock
        self._signature = _manifest_signature(directory)
        self._next_check = clock() + every
        self._lock = threading.Lock()
        self._loading: threading.Thread | None = None
        self.reloads = 0

    @property
    def current(self) -> Searcher:
        return self._current

    def __getattr__(self, name: str) -> Any:
        # answer_threshold, knowledge, embedder...: whatever the serving Searcher has.
        return getattr(self._current, name)

    def search(self, question: str, language: str | None = None, k: int = 5) -> SearchResult:
        self.check()
        return self._current.search(question, language, k)

    def prefetch(self, question: str) -> None:
        self._current.prefetch(question)

    def check(self, wait: bool = False) -> None:
        """Start a reload when the manifest changed and the last look is `every` s old;
        with `wait`, look now and return once any reload has finished."""
        now = self._clock()
        with self._lock:
            if not wait and (now < self._next_check or self._loading is not None):
                return
            self._next_check = now + self.every
            signature = _manifest_signature(self.directory)
            if self._loading is None and signature != self._signature:
                self._loading = threading.Thread(target=self._reload, args=(signature,),
                                                 daemon=True, name="index-reloader")
                self._loading.start()
            loading = self._loading
        if wait and loading is not None:
            loading.join()

    def _reload(self, signature: tuple[int, ...] | None) -> None:
        try:
            searcher = self._load()
        except Exception as exc:
            log.warning("the rebuilt index in %s is not used, the previous one keeps "
                        "serving: %s", self.directory, exc)
        else:
            self._current = searcher
            self.reloads += 1
            log.info("search index reloaded from %s (%d chunks)", self.directory,
                     len(searcher.index.chunks))
        finally:
            with self._lock:
                self._signature = signature
                self._loading = None


def _manifest_signature(directory: Path) -> tuple[int, ...] | None:
    try:
        stat = (directory / "manifest.json").stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)
