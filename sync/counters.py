"""Thread-safe event counters: every error and every notable event is counted and reported in the status."""

from __future__ import annotations

import threading
from collections import Counter


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
