"""Thread-safe event counters: every error and every notable event is counted and reported in the status."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable


class Counters:
    """A named counter set shared by the network thread and the workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter that is not zero, sorted by name."""
        with self._lock:
            return {k: v for k, v in sorted(self._counts.items()) if v}


class Quiet:
    """Says when a kind of message may be logged again: at most once every `every` seconds a kind, so a
    flood of bad requests fills neither the disk nor a stderr pipe (the counters count every one)."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, kind: str) -> bool:
        now = self.clock()
        with self._lock:
            if now < self._next.get(kind, 0.0):
                return False
            self._next[kind] = now + self.every
            return True
