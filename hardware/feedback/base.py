"""The feedback interface: what the gate shows and sounds for a decision."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

from gate.outcomes import Outcome, Reason

__all__ = ["Feedback"]


class Feedback(abc.ABC):
    """Shows outcomes to the people at the gate.

    `show` never blocks: a backend plays its pattern in the background, and a
    new `show` replaces a pattern still running (the next person should not
    wait for the last one's beeps).  `offline` is a standing state (the amber
    light) that patterns play over and return to.  `close` stops everything
    and leaves every output off; it is idempotent.
    """

    @abc.abstractmethod
    def show(self, outcome: Outcome, reason: Reason = Reason.NONE, *, provisional: bool = False) -> None:
        """Start the pattern for `outcome`, replacing any running one.

        `provisional`: an ADMIT decided offline (the arbiter did not answer; a conflict may follow).  The
        console says so; lights show it by the standing offline state.
        """

    @abc.abstractmethod
    def repeat(self, outcome: Outcome, reason: Reason = Reason.NONE) -> None:
        """The same scan again a moment after it was answered `outcome` (a wedge scanner's double read).

        Shows the light of `outcome` again with a sound of its own, so staff
        see the gate is alive and what it said; it never pulses the relay,
        whatever the outcome: nobody new was admitted.
        """

    def fault(self) -> None:
        """The gate itself is failing (camera gone, store unwritable)."""
        self.show(Outcome.FAULT, Reason.NONE)

    @abc.abstractmethod
    def offline(self, is_offline: bool) -> None:
        """Show (True) or clear (False) the standing offline indication."""

    def close(self) -> None:  # noqa: B027 - a backend with no outputs need not override
        """Stop patterns and switch every output off."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
