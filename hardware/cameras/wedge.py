"""USB keyboard-wedge barcode scanners: the scanner types the code and Enter.

Two ways to read one:

- a text stream (stdin, a serial port opened as text, io.StringIO in tests):
  one line per scan.  Simple, but the scanner's keystrokes must reach this
  process's terminal, which a systemd service does not have;
- an evdev device (``/dev/input/by-id/...-event-kbd``): reads key events
  directly and grabs the device so scans do not also land on the console.
  python-evdev is imported only for this.
"""

from __future__ import annotations

import contextlib
import string
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from hardware.cameras.base import Camera, Frame
from hardware.exc import BackendUnavailable, CameraError

__all__ = ["KeyLineAssembler", "WedgeCamera"]

EVDEV_HINT = "python-evdev is not installed: `pip install evdev` (or on Debian `sudo apt install python3-evdev`)"


class WedgeCamera(Camera):
    """Text frames, one per scanned line; blank lines are skipped.

    Give either ``stream`` (default: stdin) or ``device`` (an evdev path).
    The stream ending ends the frames; an evdev device going away raises
    `CameraError`.
    """

    def __init__(self, stream: TextIO | None = None, *, device: str | None = None, grab: bool = True) -> None:
        if stream is not None and device is not None:
            raise ValueError("give a stream or an evdev device, not both")
        self._device: Any = None
        self._stream: TextIO | None = None
        if device is not None:
            self._device = _open_evdev(device, grab)
        else:
            self._stream = stream if stream is not None else sys.stdin
        self._closed = False

    def frames(self) -> Iterator[Frame]:
        lines = self._stream_lines() if self._device is None else self._device_lines()
        for line in lines:
            if self._closed:
                return
            text = line.strip("\r\n")
            if text.strip():
                yield Frame(None, time.monotonic(), (text,))

    def _stream_lines(self) -> Iterable[str]:
        assert self._stream is not None
        return self._stream

    def _device_lines(self) -> Iterator[str]:
        import evdev

        assembler = KeyLineAssembler()
        try:
            for event in self._device.read_loop():
                if event.type != evdev.ecodes.EV_KEY:
                    continue
                name = evdev.ecodes.KEY.get(event.code)
                # A few codes have several names (a list); the keymap uses the first.
                key = name if isinstance(name, str) else (name[0] if name else "")
                line = assembler.feed(key, event.value)
                if line is not None:
                    yield line
        except OSError as exc:
            raise CameraError(f"keyboard-wedge scanner went away: {exc}") from exc

    def close(self) -> None:
        self._closed = True
        if self._device is not None:
            with contextlib.suppress(OSError):  # already gone: nothing left to release
                self._device.ungrab()
            self._device.close()
            self._device = None


def _open_evdev(path: str, grab: bool) -> Any:
    try:
        import evdev
    except ImportError as exc:
        raise BackendUnavailable(EVDEV_HINT) from exc
    try:
        device = evdev.InputDevice(path)
        if grab:
            device.grab()
    except OSError as exc:
        raise CameraError(f"cannot open keyboard-wedge scanner {path}: {exc}") from exc
    return device


def _keymap() -> dict[str, tuple[str, str]]:
    """US layout, which is what scanners are configured for out of the box:
    evdev key name -> (character, character with shift)."""
    keys = {f"KEY_{c.upper()}": (c, c.upper()) for c in string.ascii_lowercase}
    keys.update({f"KEY_{d}": (d, s) for d, s in zip("1234567890", "!@#$%^&*()", strict=True)})
    keys.update({f"KEY_KP{d}": (d, d) for d in string.digits})
    keys.update(
        {
            "KEY_SPACE": (" ", " "),
            "KEY_MINUS": ("-", "_"),
            "KEY_EQUAL": ("=", "+"),
            "KEY_LEFTBRACE": ("[", "{"),
            "KEY_RIGHTBRACE": ("]", "}"),
            "KEY_BACKSLASH": ("\\", "|"),
            "KEY_SEMICOLON": (";", ":"),
            "KEY_APOSTROPHE": ("'", '"'),
            "KEY_GRAVE": ("`", "~"),
            "KEY_COMMA": (",", "<"),
            "KEY_DOT": (".", ">"),
            "KEY_SLASH": ("/", "?"),
            "KEY_KPASTERISK": ("*", "*"),
            "KEY_KPPLUS": ("+", "+"),
            "KEY_KPMINUS": ("-", "-"),
            "KEY_KPDOT": (".", "."),
            "KEY_KPSLASH": ("/", "/"),
        }
    )
    return keys


class KeyLineAssembler:
    """Turns key events (evdev key name, value 1 down / 0 up / 2 repeat) into
    lines of text; kept apart from evdev so it can be tested without it."""

    _SHIFTS = frozenset({"KEY_LEFTSHIFT", "KEY_RIGHTSHIFT"})
    _ENTERS = frozenset({"KEY_ENTER", "KEY_KPENTER"})

    def __init__(self) -> None:
        self._keys = _keymap()
        self._shift = 0
        self._chars: list[str] = []
        #: key names that map to no character (counted, not guessed at)
        self.unknown = 0

    def feed(self, key: str, value: int) -> str | None:
        """Feed one event; returns the line when Enter completes one."""
        if key in self._SHIFTS:
            self._shift = max(0, self._shift + (1 if value == 1 else -1 if value == 0 else 0))
            return None
        if value != 1:
            return None
        if key in self._ENTERS:
            line, self._chars = "".join(self._chars), []
            return line
        chars = self._keys.get(key)
        if chars is None:
            self.unknown += 1
            return None
        self._chars.append(chars[1] if self._shift else chars[0])
        return None
