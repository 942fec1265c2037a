"""The decoder interface and the frame checks every backend shares."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

__all__ = ["Decoder", "Found", "as_gray", "ordered_texts"]

_log = logging.getLogger(__name__)

#: Smallest frame side worth decoding: a version 1 QR code is 21 modules and
#: no decoder reads a module narrower than a pixel.
MIN_SIDE = 21


@runtime_checkable
class Decoder(Protocol):
    """Reads QR code texts from a grayscale frame.

    `decode` returns the texts of every code it read, each once, ordered by
    the code's centre left to right (then top to bottom), so two frames of the
    same scene give the same list.  A frame it cannot use (None, wrong dtype or
    shape, empty, too small, noise) gives [] and never raises: a bad frame is
    an everyday event at a gate, not an error.
    """

    def decode(self, image: np.ndarray | None) -> list[str]: ...


#: A text read and the centre (x, y) of the code it came from.
Found = tuple[str, float, float]


def ordered_texts(found: Iterable[Found]) -> list[str]:
    """Texts sorted by code centre, left to right then top to bottom, each once."""
    texts: list[str] = []
    for text, _x, _y in sorted(found, key=lambda f: (round(f[1]), round(f[2]), f[0])):
        if text not in texts:
            texts.append(text)
    return texts


def as_gray(image: object) -> np.ndarray | None:
    """The frame as a C-contiguous 2-D uint8 array, or None if it cannot be one.

    3-channel (BGR) and 4-channel (BGRA) uint8 arrays are converted, since
    OpenCV webcams hand those out; anything else that is not uint8 is refused
    rather than rescaled, because guessing a float image's range reads codes
    that are not there.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        return None
    if image.ndim == 3 and image.shape[2] in (3, 4) and min(image.shape[:2]) > 0:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if image.ndim != 2 or min(image.shape) < MIN_SIDE:
        return None
    return np.ascontiguousarray(image)


class ErrorCounter:
    """Counts library failures a decoder turned into [] so they are not silent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def record(self, exc: Exception) -> None:
        self.count += 1
        # The first is logged with its cause; after that only every thousandth,
        # so a camera streaming garbage does not flood the journal.
        if self.count == 1 or self.count % 1000 == 0:
            _log.warning("%s decoder failed on a frame (%d so far): %r", self.name, self.count, exc)
