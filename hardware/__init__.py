"""Gate hardware: frame sources, QR decoders, LED/buzzer/relay feedback, buttons.

One small interface per kind, chosen by name and built by `open_camera`,
`open_decoder`, `open_feedback` and `open_button`; each backend's library is imported only
when that backend is opened.  The fakes are here too, for tests and the demo,
and are only ever used when asked for by name.

The names below are handed on lazily: `import hardware.feedback` loads no camera or decoder library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    **dict.fromkeys(("CAMERA_KINDS", "Camera", "FakeCamera", "Frame", "open_camera"), "hardware.cameras"),
    **dict.fromkeys(("DECODER_KINDS", "Decoder", "FakeDecoder", "open_decoder"), "hardware.decoders"),
    **dict.fromkeys(("BUTTON_KINDS", "Button", "FakeButton", "open_button"), "hardware.buttons"),
    **dict.fromkeys(("BackendUnavailable", "ButtonError", "CameraError", "DecoderError", "FeedbackError", "HardwareError",
                     "UnknownBackend"), "hardware.exc"),
    **dict.fromkeys(("FEEDBACK_KINDS", "PATTERNS", "Feedback", "Pattern", "RecordingFeedback", "open_feedback",
                     "pattern_table"), "hardware.feedback"),
    "Pins": "hardware.feedback.gpio",
}

__all__ = [
    "BUTTON_KINDS",
    "CAMERA_KINDS",
    "DECODER_KINDS",
    "FEEDBACK_KINDS",
    "PATTERNS",
    "BackendUnavailable",
    "Button",
    "ButtonError",
    "Camera",
    "CameraError",
    "Decoder",
    "DecoderError",
    "FakeButton",
    "FakeCamera",
    "FakeDecoder",
    "Feedback",
    "FeedbackError",
    "Frame",
    "HardwareError",
    "Pattern",
    "Pins",
    "RecordingFeedback",
    "UnknownBackend",
    "open_button",
    "open_camera",
    "open_decoder",
    "open_feedback",
    "pattern_table",
]

if TYPE_CHECKING:
    from hardware.buttons import BUTTON_KINDS, Button, FakeButton, open_button
    from hardware.cameras import CAMERA_KINDS, Camera, FakeCamera, Frame, open_camera
    from hardware.decoders import DECODER_KINDS, Decoder, FakeDecoder, open_decoder
    from hardware.exc import (
        BackendUnavailable,
        ButtonError,
        CameraError,
        DecoderError,
        FeedbackError,
        HardwareError,
        UnknownBackend,
    )
    from hardware.feedback import (
        FEEDBACK_KINDS,
        PATTERNS,
        Feedback,
        Pattern,
        RecordingFeedback,
        open_feedback,
        pattern_table,
    )
    from hardware.feedback.gpio import Pins


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'hardware' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
