"""Buttons staff press (a both gate's exit button): one interface (`Button`), one file per backend, a fake."""

from __future__ import annotations

from typing import Any

from hardware.buttons.base import Button
from hardware.buttons.fake import FakeButton
from hardware.exc import UnknownBackend

__all__ = ["BUTTON_KINDS", "Button", "FakeButton", "open_button"]

#: Names accepted by `open_button`.
BUTTON_KINDS = ("gpio", "fake")


def open_button(kind: str, **options: Any) -> Button:
    """Build the button named `kind`, passing `options` to its constructor.

    - "gpio": pin (BCM number or gpiozero pin name), pull_up=True, bounce_time=0.05, pin_factory=None
    - "fake": no options (press it with `press`, `hold`, `release`)

    gpiozero is imported only for "gpio"; when it (or a pin library) is
    missing, `BackendUnavailable` says what to install.
    """
    if kind == "gpio":
        from hardware.buttons.gpio import GpioButton

        return GpioButton(**options)
    if kind == "fake":
        return FakeButton(**options)
    raise UnknownBackend(f"unknown button kind {kind!r}: use one of {', '.join(BUTTON_KINDS)}")
