"""Feedback as one printed line per outcome: development and the demo."""

from __future__ import annotations

import sys
from typing import TextIO

from gate.outcomes import Outcome, Reason
from hardware.feedback.base import Feedback

__all__ = ["ConsoleFeedback"]

_GREEN, _RED, _AMBER, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[0m"

#: symbol and colour per outcome, echoing the LEDs
_LOOK: dict[Outcome, tuple[str, str]] = {
    Outcome.ADMIT: ("✔", _GREEN),
    Outcome.ALREADY_USED: ("✖", _RED),
    Outcome.INVALID: ("✖", _RED),
    Outcome.REVOKED: ("⊘", _RED),
    Outcome.FAULT: ("⚠", _AMBER),
}


class ConsoleFeedback(Feedback):
    """Writes e.g. ``✖ ALREADY_USED (already_used)`` or ``✔ ADMIT (offline, provisional)`` to ``stream``.

    ``color`` None (default) colours only when the stream is a terminal, so
    logs and pipes get plain text.
    """

    def __init__(self, stream: TextIO | None = None, *, color: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._color = color if color is not None else self._stream.isatty()
        self._offline: bool | None = None

    def show(self, outcome: Outcome, reason: Reason = Reason.NONE, *, provisional: bool = False) -> None:
        symbol, colour = _LOOK[Outcome(outcome)]
        detail = " (offline, provisional)" if provisional else f" ({reason})" if reason else ""
        self._write(f"{symbol} {outcome}{detail}", colour)

    def repeat(self, outcome: Outcome, reason: Reason = Reason.NONE) -> None:
        _symbol, colour = _LOOK[Outcome(outcome)]
        detail = f" ({reason})" if reason else ""
        self._write(f"↻ {outcome}{detail}, scanned again", colour)

    def offline(self, is_offline: bool) -> None:
        if is_offline != self._offline:  # a state: print changes only
            self._offline = is_offline
            self._write("● offline" if is_offline else "● online", _AMBER if is_offline else _GREEN)

    def _write(self, text: str, colour: str) -> None:
        line = f"{colour}{text}{_RESET}" if self._color else text
        print(line, file=self._stream, flush=True)
