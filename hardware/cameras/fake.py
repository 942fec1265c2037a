"""A camera for tests and the demo that replays what it is given."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import numpy as np

from hardware.cameras.base import Camera, Frame
from hardware.exc import CameraError

__all__ = ["FakeCamera"]


class FakeCamera(Camera):
    """Yields the given items as frames, then ends.

    Each item may be a `Frame` (passed through), a numpy array (wrapped as an
    image frame, as is: corrupt arrays are allowed, to test the decoders'
    handling) or a str (wrapped as a text frame, like a wedge scanner's line).
    With ``raise_after=n`` it raises `CameraError` instead of yielding item n,
    as a camera unplugged mid-run does.
    """

    def __init__(self, frames_or_images: Iterable[Frame | np.ndarray | str], raise_after: int | None = None) -> None:
        self._items = list(frames_or_images)
        self._raise_after = raise_after
        self.closed = False
        #: how many frames were handed out
        self.delivered = 0

    def frames(self) -> Iterator[Frame]:
        for index, item in enumerate(self._items):
            if index == self._raise_after:
                raise CameraError(f"fake camera failed at frame {index}")
            if self.closed:
                return
            self.delivered += 1
            yield _as_frame(item)
        if self._raise_after is not None and self._raise_after >= len(self._items):
            raise CameraError(f"fake camera failed at frame {len(self._items)}")

    def close(self) -> None:
        self.closed = True


def _as_frame(item: Frame | np.ndarray | str) -> Frame:
    if isinstance(item, Frame):
        return item
    if isinstance(item, str):
        return Frame(None, time.monotonic(), (item,))
    return Frame(item, time.monotonic())
