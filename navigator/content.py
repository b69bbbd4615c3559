"""The flows and articles being served, reloaded when editors change their files.

A running bot calls `refresh()` before each event; it looks at the files at most every
`interval` seconds (a stat of each file, no reading) and reloads only when something
changed. A broken edit of the flows keeps the last good version serving and logs why;
a broken article is skipped (and logged) while the others reload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from navigator.flows import FlowSet, check_flows
from navigator.knowledge import KnowledgeBase, load_knowledge

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(*folders: Path) -> Fingerprint:
    """(path, size, mtime) of every content file under the folders."""
    entries = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix in (".yaml", ".yml", ".md") and path.is_file():
                stat = path.stat()
                entries.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


class Content:
    """What the bot serves now: `flows` and `knowledge`, kept fresh by `refresh()`."""

    def __init__(self, flows: FlowSet, knowledge: KnowledgeBase, flows_dir: Path | None = None,
                 interval: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.flows = flows
        self.knowledge = knowledge
        self.flows_dir = flows_dir
        self.interval = interval
        self._clock = clock
        self._checked_at = clock()
        self._seen = self._fingerprint()

    def _fingerprint(self) -> Fingerprint:
        if self.flows_dir is None:
            return ()
        return fingerprint(self.flows_dir, self.knowledge.root)

    def refresh(self) -> bool:
        """Reload what changed on disk; True if anything new is now served."""
        if self.flows_dir is None or self._clock() - self._checked_at < self.interval:
            return False
        self._checked_at = self._clock()
        current = self._fingerprint()
        if current == self._seen:
            return False
        self._seen = current
        flows, problems = check_flows(self.flows_dir)
        errors = [p for p in problems if p.severity == "error"]
        changed = False
        if errors:
            for problem in errors:
                log.error("flows not reloaded, the last good version keeps serving: %s", problem)
        else:
            self.flows, changed = flows, True
        knowledge = load_knowledge(self.knowledge.root)
        for problem in knowledge.problems:
            log.warning("%s", problem)
        if knowledge.articles or not self.knowledge.articles:
            self.knowledge, changed = knowledge, True
        if changed:
            log.info("content reloaded: %d flows, %d articles", len(self.flows.flows),
                     len(self.knowledge.articles))
        return changed
