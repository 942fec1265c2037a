"""Stop on SIGTERM/SIGINT without the deadlock a second signal can cause.

A Python signal handler runs on the main thread between bytecodes, so a
second signal can interrupt the first handler while it holds a
threading.Event's lock; setting the same Event again then blocks forever
(seen: `gate arbiter` hung after a TERM followed by an INT).  The handler
here acts on the first signal only; later ones return at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType


def on_stop_signals(stop: Callable[[int], None]) -> None:
    """Call `stop(signum)` once, on the first SIGTERM or SIGINT."""
    seen: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if seen:  # a repeat while the first may still be running: never take a lock twice
            return
        seen.append(signum)
        stop(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
