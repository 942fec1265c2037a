"""pyzbar (ZBar) backend: slower than zxing-cpp, but reads some steep
perspectives and noisy frames that zxing-cpp locates and cannot decode, so the
pipeline uses it on those crops."""

from __future__ import annotations

from typing import Any

import numpy as np

from hardware.decoders.base import ErrorCounter, Found, as_gray, ordered_texts
from hardware.exc import BackendUnavailable

__all__ = ["ZbarDecoder"]


def _import_pyzbar() -> Any:
    try:
        from pyzbar import pyzbar
    except ImportError as exc:
        # pyzbar raises ImportError both when it is missing and when the zbar
        # shared library is: name both fixes.
        raise BackendUnavailable(
            f"pyzbar needs the ZBar library: `sudo apt install libzbar0` and `pip install pyzbar` ({exc})"
        ) from exc
    return pyzbar


class ZbarDecoder:
    """Decoder backed by `pyzbar.pyzbar.decode`, restricted to QR symbols.

    Restricting the symbologies is both faster and safer: ZBar's linear
    decoders otherwise report phantom EAN codes in clutter.  Bytes that are not
    UTF-8 are decoded with replacement characters, which then fail ticket
    verification as malformed rather than vanish here.
    """

    def __init__(self) -> None:
        self._pyzbar = _import_pyzbar()
        self._symbols = [self._pyzbar.ZBarSymbol.QRCODE]
        self.errors = ErrorCounter("pyzbar")

    def decode(self, image: np.ndarray | None) -> list[str]:
        gray = as_gray(image)
        if gray is None:
            return []
        return ordered_texts(self.find(gray))

    def find(self, gray: np.ndarray) -> list[Found]:
        """Texts and centres in an already checked grayscale array."""
        try:
            symbols = self._pyzbar.decode(gray, symbols=self._symbols)
        except (self._pyzbar.PyZbarError, ValueError, TypeError) as exc:
            self.errors.record(exc)
            return []
        found: list[Found] = []
        for symbol in symbols:
            left, top, width, height = symbol.rect
            found.append((symbol.data.decode("utf-8", "replace"), left + width / 2, top + height / 2))
        return found
