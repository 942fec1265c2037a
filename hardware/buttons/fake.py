"""A button for tests and the demo: pressed by calling it."""

from __future__ import annotations

import time

from hardware.buttons.base import Button

__all__ = ["FakeButton"]


class FakeButton(Button):
    """`press()` is a press and release; `hold()` and `release()` keep it down and let it go."""

    def __init__(self) -> None:
        self._held = False
        self._pressed_at: float | None = None

    def press(self) -> None:
        self.hold()
        self.release()

    def hold(self) -> None:
        self._held = True
        self._pressed_at = time.monotonic()

    def release(self) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    @property
    def pressed_at(self) -> float | None:
        return self._pressed_at
