"""Stop on SIGTERM/SIGINT without the deadlock a second signal can cause.

A Python signal handler runs on the main thread between bytecodes, so a
second signal can interrupt the first handler while it holds a
threading.Event's lock; setting the same Event again then blocks forever
(seen: `gate arbiter` hung after a TERM followed by an INT).  The handler
here calls `stop` on the first signal only; the second calls `again` (an
operator's "stop now" while the outbox drains), which must take no lock;
later ones return at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType


def on_stop_signals(stop: Callable[[int], None], again: Callable[[int], None] | None = None) -> None:
    """Call `stop(signum)` once, on the first SIGTERM or SIGINT, and `again(signum)` once, on the second."""
    seen: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        seen.append(signum)
        if len(seen) == 1:
            stop(signum)
        elif len(seen) == 2 and again is not None:  # may interrupt `stop`: `again` never takes a lock
            again(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
