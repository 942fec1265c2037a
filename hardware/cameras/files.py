"""Image files replayed as frames: the demo, and a gate's behaviour on
recorded frames without the hardware."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from hardware.cameras.base import Camera, Frame
from hardware.exc import CameraError

__all__ = ["IMAGE_SUFFIXES", "FilesCamera"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


class FilesCamera(Camera):
    """Replays one image file, or every image in a folder in name order.

    ``fps`` paces the frames (None: as fast as the caller takes them);
    ``loops`` is how many times the whole set is replayed (None: forever).
    Files are read once, when the camera is made, so a missing or unreadable
    file fails at start-up rather than mid-run.  ``sleep`` and ``clock``
    (monotonic seconds) are injectable so tests need not wait.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float | None = None,
        loops: int | None = 1,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if loops is not None and loops < 0:
            raise ValueError(f"loops must be >= 0 or None, got {loops}")
        self.paths = _image_paths(Path(path))
        self._images = [_read_gray(p) for p in self.paths]
        self._period = 1.0 / fps if fps else 0.0
        self._loops = loops
        self._sleep = sleep
        self._clock = clock
        self._closed = False

    def frames(self) -> Iterator[Frame]:
        loop = 0
        next_at = self._clock()
        while not self._closed and (self._loops is None or loop < self._loops):
            for image in self._images:
                if self._period:
                    delay = next_at - self._clock()
                    if delay > 0:
                        self._sleep(delay)
                    # Paced against the schedule, not the last frame, so a
                    # slow consumer does not drift the rate; but never
                    # bunch frames up to catch up after a stall.
                    next_at = max(next_at + self._period, self._clock())
                if self._closed:
                    return
                yield Frame(image, self._clock())
            loop += 1

    def close(self) -> None:
        self._closed = True


def _image_paths(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise CameraError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
        return paths
    raise CameraError(f"no such image file or folder: {path}")


def _read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CameraError(f"cannot read image {path}")
    return np.ascontiguousarray(image)
