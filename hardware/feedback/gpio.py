"""LEDs, buzzer and relay on GPIO pins, through gpiozero.

gpiozero is imported here only.  Every device gets the same ``pin_factory``,
so tests pass gpiozero's MockFactory and a Pi uses its default (lgpio).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gate.outcomes import Outcome, Reason
from hardware.exc import BackendUnavailable, FeedbackError
from hardware.feedback.base import Feedback
from hardware.feedback.patterns import PATTERNS, Pattern, PatternPlayer, check_patterns, repeat_pattern

__all__ = ["GpioFeedback", "Pins"]

log = logging.getLogger(__name__)


def _fallbacks(tried: list[warnings.WarningMessage]) -> str:
    """gpiozero's "Falling back from lgpio: No module named 'lgpio'" warnings, as one line."""
    return "; ".join(str(w.message).removeprefix("Falling back from ") for w in tried)


@dataclass(frozen=True)
class Pins:
    """Which GPIO pin drives what (BCM numbers, or any gpiozero pin name).

    The defaults sit together on the header (physical pins 11, 13, 15, 16)
    next to ground on pin 14.  ``relay`` is off by default: a gate without a
    turnstile has none.  Many relay boards switch on a low input, so say so
    with ``relay_active_high=False`` or the relay will be on while "off".
    """

    green: int | str = 17
    red: int | str = 27
    amber: int | str | None = 22
    buzzer: int | str = 23
    relay: int | str | None = None
    relay_active_high: bool = True


class GpioFeedback(Feedback):
    """Plays `PATTERNS` (or ``patterns``) on LEDs, a buzzer and a relay.

    ``time_scale`` multiplies every pattern duration; tests pass a small one.
    `wait_idle` blocks until the running pattern (and relay pulse) is over.
    """

    def __init__(
        self,
        pins: Pins | None = None,
        *,
        pin_factory: Any = None,
        patterns: Mapping[Outcome, Pattern] = PATTERNS,
        time_scale: float = 1.0,
    ) -> None:
        gpiozero = _import_gpiozero()
        check_patterns(patterns)
        self.pins = pins if pins is not None else Pins()
        self._patterns = dict(patterns)
        self.devices: dict[str, Any] = {}
        try:
            with warnings.catch_warnings(record=True) as tried:  # one warning per pin library gpiozero tried
                warnings.simplefilter("always", gpiozero.PinFactoryFallback)
                self._make_devices(gpiozero, pin_factory)
        except gpiozero.BadPinFactory as exc:
            self._close_devices()
            raise BackendUnavailable(
                f"gpiozero found no GPIO pin library ({_fallbacks(tried) or exc}): on a Raspberry Pi "
                "`sudo apt install python3-lgpio`; on another machine, `--feedback console` (feedback.kind)"
            ) from exc
        except gpiozero.GPIOZeroError as exc:
            self._close_devices()
            raise FeedbackError(f"cannot set up feedback pins {self.pins}: {exc}") from exc
        if tried:
            log.warning("gpiozero: %s", _fallbacks(tried))
        self._gpio_error = gpiozero.GPIOZeroError
        self._player = PatternPlayer(self._drive, scale=time_scale)
        self._closed = False

    def _make_devices(self, gpiozero: Any, pin_factory: Any) -> None:
        pins = self.pins
        self.devices["green"] = gpiozero.LED(pins.green, pin_factory=pin_factory)
        self.devices["red"] = gpiozero.LED(pins.red, pin_factory=pin_factory)
        if pins.amber is not None:
            self.devices["amber"] = gpiozero.LED(pins.amber, pin_factory=pin_factory)
        self.devices["buzzer"] = gpiozero.Buzzer(pins.buzzer, pin_factory=pin_factory)
        if pins.relay is not None:
            # initial_value=False: whatever the board's polarity, start closed.
            self.devices["relay"] = gpiozero.OutputDevice(
                pins.relay, active_high=pins.relay_active_high, initial_value=False, pin_factory=pin_factory
            )

    def show(self, outcome: Outcome, reason: Reason = Reason.NONE, *, provisional: bool = False) -> None:
        outcome = Outcome(outcome)
        self._player.play(self._patterns[outcome], relay=outcome is Outcome.ADMIT)

    def repeat(self, outcome: Outcome, reason: Reason = Reason.NONE) -> None:
        self._player.play(repeat_pattern(self._patterns[Outcome(outcome)]), relay=False)

    def offline(self, is_offline: bool) -> None:
        self._player.set_offline(is_offline)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is playing; False if `timeout` passed first."""
        return self._player.wait_idle(timeout)

    @property
    def errors(self) -> int:
        """Output switches that failed since start."""
        return self._player.errors

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._player.close()
        self._close_devices()

    def _drive(self, channel: str, on: bool) -> None:
        device = self.devices.get(channel)
        if device is None:  # an optional output (amber, relay) not fitted
            return
        try:
            device.on() if on else device.off()
        except self._gpio_error as exc:
            raise FeedbackError(f"{channel} output: {exc}") from exc

    def _close_devices(self) -> None:
        for device in self.devices.values():
            device.close()
        self.devices.clear()


def _import_gpiozero() -> Any:
    try:
        import gpiozero
    except ImportError as exc:
        raise BackendUnavailable("gpiozero is not installed: `pip install gpiozero`") from exc
    return gpiozero
