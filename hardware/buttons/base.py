"""The button interface: whether it is held now, and when it was last pressed."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

__all__ = ["Button"]


class Button(abc.ABC):
    """A push button (or a latching switch) wired to the gate.

    `held` is its state now; `pressed_at` is the `time.monotonic()` of its
    last press (None: never pressed), so a press that is already over is
    not missed by a reader that looks only now and then.  Neither blocks.
    `close` releases the pin; it is idempotent.
    """

    @property
    @abc.abstractmethod
    def held(self) -> bool:
        """True while the button is pressed (a switch: while it is on)."""

    @property
    @abc.abstractmethod
    def pressed_at(self) -> float | None:
        """`time.monotonic()` of the last press, or None if it was never pressed."""

    def close(self) -> None:  # noqa: B027 - a button with no pin need not override
        """Release the pin."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
