"""The way of each scan at a `both` gate, from its exit button (gate.exit_button).

What a caller may rely on (the scan loop asks once per scan, on its capture thread, when the scan is read):

* While the button is held, every scan is an exit ("out"): a latching switch or a held button.
* A press that is over counts for the first scan read within `window` seconds after it, and for that
  scan only: "press exit, then scan" makes one exit; the next scan is an entry again.  A press the
  attendant regrets simply runs out after `window` seconds.
* Otherwise the answer is None: the gate's default, an entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from gate.admission import Direction
from hardware import Button


class ButtonWay:
    """Reads a `Button` into the way of the next scan; `close` releases the button."""

    def __init__(self, button: Button, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.button = button
        self.window = window
        self._clock = clock
        self._used: float | None = None  # the press an exit was already given for

    def __call__(self) -> Direction | None:
        """The way of the scan being read now: "out" or None (in); spends the press it uses."""
        pressed_at = self.button.pressed_at
        if self.button.held:
            self._used = pressed_at  # released later, this press must not make the next scan an exit too
            return "out"
        if pressed_at is not None and pressed_at != self._used and self._clock() - pressed_at <= self.window:
            self._used = pressed_at
            return "out"
        return None

    def close(self) -> None:
        self.button.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
