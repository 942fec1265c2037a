"""OpenCV VideoCapture: USB webcams, video files and RTSP/HTTP streams."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from hardware.cameras.base import Camera, Frame
from hardware.exc import CameraError

__all__ = ["OpencvCamera"]


class OpencvCamera(Camera):
    """Frames from `cv2.VideoCapture`, converted to grayscale.

    ``source`` is a webcam index (int, or a string of digits as it comes from
    a config file), a video file path, or a stream URL (rtsp://, http://).
    ``width``/``height``/``fps`` are requests the driver may round or ignore;
    the frames' real size is what the decoders get.

    A video file ends the iteration at its end.  A webcam or stream that stops
    delivering raises `CameraError`: for a gate, a camera that goes quiet is a
    fault to show, not the end of the day.
    """

    def __init__(
        self,
        source: int | str = 0,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        if isinstance(source, str) and source.isdigit():
            source = int(source)
        self.source = source
        self._is_file = isinstance(source, str) and Path(source).is_file()
        self._capture = cv2.VideoCapture(source)
        if not self._capture.isOpened():
            raise CameraError(f"OpenCV cannot open video source {source!r}")
        if not self._is_file:
            # A deep driver queue hands out stale frames: a ticket shown now
            # would be decoded from a frame taken a second ago.
            self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, width),
            (cv2.CAP_PROP_FRAME_HEIGHT, height),
            (cv2.CAP_PROP_FPS, fps),
        ):
            if value is not None:
                self._capture.set(prop, float(value))

    def frames(self) -> Iterator[Frame]:
        while self._capture.isOpened():
            ok, image = self._capture.read()
            if not ok or image is None:
                if self._is_file:
                    return
                raise CameraError(f"video source {self.source!r} stopped delivering frames")
            yield Frame(_to_gray(image), time.monotonic())

    def close(self) -> None:
        self._capture.release()


def _to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return np.ascontiguousarray(image)
