"""Outcome feedback: one interface (`Feedback`), one file per backend, a fake."""

from __future__ import annotations

from typing import Any

from hardware.exc import UnknownBackend
from hardware.feedback.base import Feedback
from hardware.feedback.fake import RecordingFeedback
from hardware.feedback.patterns import PATTERNS, Pattern, pattern_table

__all__ = ["FEEDBACK_KINDS", "PATTERNS", "Feedback", "Pattern", "RecordingFeedback", "open_feedback", "pattern_table"]

#: Names accepted by `open_feedback` (and the gate config's feedback kind).
FEEDBACK_KINDS = ("gpio", "console", "recording")


def open_feedback(kind: str, **options: Any) -> Feedback:
    """Build the feedback named `kind`, passing `options` to its constructor.

    - "gpio": pins=Pins(...), pin_factory=None, patterns=PATTERNS, time_scale=1.0
    - "console": stream=stdout, color=None (auto)
    - "recording": no options

    gpiozero is imported only for "gpio"; when it (or a pin library) is
    missing, `BackendUnavailable` says what to install.
    """
    if kind == "gpio":
        from hardware.feedback.gpio import GpioFeedback

        return GpioFeedback(**options)
    if kind == "console":
        from hardware.feedback.console import ConsoleFeedback

        return ConsoleFeedback(**options)
    if kind == "recording":
        return RecordingFeedback(**options)
    raise UnknownBackend(f"unknown feedback kind {kind!r}: use one of {', '.join(FEEDBACK_KINDS)}")
