"""Feedback for tests: records every call, with an assertion helper."""

from __future__ import annotations

from collections.abc import Sequence

from gate.outcomes import Outcome, Reason
from hardware.feedback.base import Feedback

__all__ = ["RecordingFeedback"]

#: One recorded call: ("show", outcome, reason[, "provisional"]), ("repeat", outcome, reason), ("offline", bool) or ("close",).
Event = tuple[object, ...]


class RecordingFeedback(Feedback):
    """Keeps every call in ``events``, in order; drives nothing."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False

    def show(self, outcome: Outcome, reason: Reason = Reason.NONE, *, provisional: bool = False) -> None:
        self.events.append(("show", Outcome(outcome), Reason(reason), *(("provisional",) if provisional else ())))

    def repeat(self, outcome: Outcome, reason: Reason = Reason.NONE) -> None:
        self.events.append(("repeat", Outcome(outcome), Reason(reason)))

    @property
    def repeated(self) -> list[tuple[Outcome, Reason]]:
        """The (outcome, reason) of every `repeat`, in order."""
        return [(e[1], e[2]) for e in self.events if e[0] == "repeat"]  # type: ignore[misc]

    def offline(self, is_offline: bool) -> None:
        self.events.append(("offline", bool(is_offline)))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.events.append(("close",))

    @property
    def shown(self) -> list[tuple[Outcome, Reason]]:
        """The (outcome, reason) of every `show` and `fault`, in order."""
        return [(e[1], e[2]) for e in self.events if e[0] == "show"]  # type: ignore[misc]

    def assert_shown(self, expected: Sequence[Outcome | tuple[Outcome, Reason]]) -> None:
        """Assert the shown outcomes, in order, are exactly `expected`.

        An item that is a bare `Outcome` matches any reason; an
        (outcome, reason) pair must match both.
        """
        actual = self.shown
        matches = len(actual) == len(expected) and all(
            (a[0] == e) if isinstance(e, Outcome) else (a == tuple(e)) for a, e in zip(actual, expected, strict=True)
        )
        if not matches:
            shown = [f"{o}/{r or '-'}" for o, r in actual]
            wanted = [str(e) if isinstance(e, Outcome) else f"{e[0]}/{e[1] or '-'}" for e in expected]
            raise AssertionError(f"feedback shown {shown}, expected {wanted}")
