"""A button on a GPIO pin, through gpiozero (its `Button`).

gpiozero is imported here only (with the feedback's helpers); tests pass
gpiozero's MockFactory as ``pin_factory`` and a Pi uses its default (lgpio).
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

from hardware.buttons.base import Button
from hardware.exc import BackendUnavailable, ButtonError
from hardware.feedback.gpio import _fallbacks, _import_gpiozero

__all__ = ["GpioButton"]

log = logging.getLogger(__name__)


class GpioButton(Button):
    """A button between `pin` and ground (``pull_up=True``, the pin's own pull-up: no resistor to fit).

    ``pull_up=False`` for one wired to 3.3 V with a pull-down.  Presses
    closer together than ``bounce_time`` seconds are one press.
    """

    def __init__(self, pin: int | str, *, pull_up: bool = True, bounce_time: float | None = 0.05,
                 pin_factory: Any = None) -> None:
        gpiozero = _import_gpiozero()
        self.pin = pin
        self._pressed_at: float | None = None
        try:
            with warnings.catch_warnings(record=True) as tried:  # one warning per pin library gpiozero tried
                warnings.simplefilter("always", gpiozero.PinFactoryFallback)
                self.device = gpiozero.Button(pin, pull_up=pull_up, bounce_time=bounce_time, pin_factory=pin_factory)
        except gpiozero.BadPinFactory as exc:
            raise BackendUnavailable(
                f"gpiozero found no GPIO pin library for the exit button ({_fallbacks(tried) or exc}): on a "
                "Raspberry Pi `sudo apt install python3-lgpio`; on another machine, leave gate.exit_button out"
            ) from exc
        except gpiozero.GPIOZeroError as exc:
            raise ButtonError(f"cannot set up the exit button on pin {pin}: {exc}") from exc
        if tried:
            log.warning("gpiozero: %s", _fallbacks(tried))
        # gpiozero calls this on its own thread; one float written, read by the scan loop: no lock needed
        self.device.when_pressed = self._pressed
        self._closed = False

    def _pressed(self) -> None:
        self._pressed_at = time.monotonic()

    @property
    def held(self) -> bool:
        return bool(self.device.is_pressed)

    @property
    def pressed_at(self) -> float | None:
        return self._pressed_at

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.device.close()
