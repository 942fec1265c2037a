"""The hardware package's exceptions: one tree, each class also a builtin.

Mixing in the builtin lets callers that know nothing of qrgate still catch
the right thing (an `OSError` for a camera that went away, an `ImportError`
for a missing backend library).
"""

from __future__ import annotations


class HardwareError(Exception):
    "Base class for every error raised by the hardware package."


class BackendUnavailable(HardwareError, ImportError):
    "A backend's library is not installed; the message says what to install."


class UnknownBackend(HardwareError, ValueError):
    "A camera, decoder or feedback kind that does not exist; the message lists the valid ones."


class CameraError(HardwareError, OSError):
    "A camera could not be opened or stopped delivering frames."


class DecoderError(HardwareError, ValueError):
    "A decoder was misconfigured (never raised for a bad frame)."


class FeedbackError(HardwareError, RuntimeError):
    "The LEDs, buzzer or relay could not be driven."


class ButtonError(HardwareError, RuntimeError):
    "A button (a both gate's exit button) could not be set up."
