"""zxing-cpp backend: the fastest and most tolerant reader we measured.

Configured for QR codes only: asking zxing-cpp for every format makes an idle
640x480 frame cost ~13x more (4.7 ms instead of 0.36 ms, bench/decode.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.decoders.base import ErrorCounter, Found, as_gray, ordered_texts
from hardware.exc import BackendUnavailable, DecoderError

__all__ = ["Scan", "ZxingDecoder"]

_BINARIZERS = ("LocalAverage", "GlobalHistogram", "FixedThreshold", "BoolCast")


@dataclass(frozen=True)
class Scan:
    """What one zxing pass saw: texts read, and quads of codes found but not read."""

    found: list[Found]
    #: corners (4x2 float32, image pixels) of symbols zxing located but could
    #: not decode: the frames where a second try is worth its cost
    suspects: list[np.ndarray]


def _import_zxingcpp() -> Any:
    try:
        import zxingcpp
    except ImportError as exc:
        raise BackendUnavailable("zxing-cpp is not installed: `pip install zxing-cpp`") from exc
    return zxingcpp


class ZxingDecoder:
    """Decoder backed by `zxingcpp.read_barcodes`.

    Options, with why the defaults are what they are:

    - ``formats``: zxing-cpp format names joined by ``|``; "QRCode" (which in
      zxing-cpp 3 also covers Micro QR and rMQR) since tickets are QR codes.
    - ``try_rotate``: off; QR finder patterns are found at any angle, the flag
      only helps linear barcodes.
    - ``try_downscale``: on; reads codes held close to the lens, whose modules
      are many pixels wide, and costs ~0.3 ms at 1280x720.
    - ``try_invert``: off; the inverted pass (light-on-dark codes: dark-mode
      wallets, colour inversion) costs 1.24x on every idle frame.  The
      pipeline asks for it on every second frame (``scan(..., try_invert=True)``).
    - ``binarizer``: "LocalAverage", which copes with uneven light; the
      global one lost a quarter of the hard set.
    """

    def __init__(
        self,
        *,
        formats: str = "QRCode",
        try_rotate: bool = False,
        try_downscale: bool = True,
        try_invert: bool = False,
        binarizer: str = "LocalAverage",
    ) -> None:
        zxingcpp = _import_zxingcpp()
        try:
            self._formats = zxingcpp.barcode_formats_from_str(formats)
        except ValueError as exc:
            raise DecoderError(f"zxing formats {formats!r}: {exc}") from None
        if binarizer not in _BINARIZERS:
            raise DecoderError(f"zxing binarizer {binarizer!r}: use one of {', '.join(_BINARIZERS)}")
        self._read = zxingcpp.read_barcodes
        self._options = {
            "formats": self._formats,
            "try_rotate": try_rotate,
            "try_downscale": try_downscale,
            "try_invert": try_invert,
            "binarizer": getattr(zxingcpp.Binarizer, binarizer),
        }
        self.errors = ErrorCounter("zxing-cpp")

    def decode(self, image: np.ndarray | None) -> list[str]:
        gray = as_gray(image)
        if gray is None:
            return []
        return ordered_texts(self.scan(gray, suspects=False).found)

    def scan(self, gray: np.ndarray, *, suspects: bool = True, **overrides: Any) -> Scan:
        """One pass over an already checked grayscale array; `overrides` replace options."""
        options = {**self._options, **overrides}
        try:
            barcodes = self._read(gray, return_errors=suspects, **options)
        except (ValueError, RuntimeError, TypeError) as exc:
            self.errors.record(exc)
            return Scan([], [])
        found: list[Found] = []
        missed: list[np.ndarray] = []
        for barcode in barcodes:
            quad = _quad(barcode.position)
            if barcode.valid:
                centre = quad.mean(axis=0)
                found.append((barcode.text, float(centre[0]), float(centre[1])))
            else:
                missed.append(quad)
        return Scan(found, missed)


def _quad(position: Any) -> np.ndarray:
    corners = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    return np.array([[p.x, p.y] for p in corners], np.float32)
