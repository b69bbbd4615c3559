"""The database's one writer thread, for the asynchronous bot (compare datasette's
`execute_write_fn`).

SQLite allows one writer at a time; a second connection writing at the same moment
waits for its lock (`busy_timeout`) and may give up. So in a process that runs an event
loop, every blocking database call (the engine's transactions, the inbox, the outbox's
bookkeeping) queues up on this one thread, in the order it was submitted, and never
runs on the event loop. The store owns it, whatever transport drives the store.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Writer:
    """Runs blocking database calls one at a time, in submission order, off the loop."""

    def __init__(self, name: str = "navigator-db"):
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Queue `fn(*args, **kwargs)` now (no await needed: calls submitted one after
        another run in that order) and return a future of its result."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix=self.name)
            executor = self._executor
        return asyncio.get_running_loop().run_in_executor(executor, lambda: fn(*args, **kwargs))

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the writer thread and return its result."""
        return await self.submit(fn, *args, **kwargs)

    def shutdown(self) -> None:
        """Wait for the queued calls, then stop the thread (a later call starts a new one)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
