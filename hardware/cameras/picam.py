"""Raspberry Pi camera modules through picamera2 (libcamera).

picamera2 is imported here and only here: it exists only on Raspberry Pi OS,
from apt, and must not be needed anywhere else.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from hardware.cameras.base import Camera, Frame
from hardware.exc import BackendUnavailable, CameraError

__all__ = ["INSTALL_HINT", "Picamera2Camera"]

INSTALL_HINT = (
    "picamera2 is not installed: on Raspberry Pi OS `sudo apt install python3-picamera2`"
    " and create the venv with --system-site-packages"
)

# picamera2 and libcamera raise a mix of builtins for "no camera", "camera
# busy" and "frame timed out"; all of them mean the camera is unusable.
_DEVICE_ERRORS = (RuntimeError, IndexError, OSError, TimeoutError)


def _import_picamera2() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise BackendUnavailable(INSTALL_HINT) from exc
    return Picamera2


class Picamera2Camera(Camera):
    """Grayscale frames from the Y plane of a YUV420 video stream.

    YUV420 rather than RGB: the Y plane is exactly the grayscale image the
    decoders want, so no colour conversion runs per frame and the ISP does the
    work.  ``size`` is (width, height); libcamera may align it, and the size it
    chose is used.  ``fps`` sets the FrameRate control when given.
    """

    def __init__(self, camera_num: int = 0, *, size: tuple[int, int] = (1280, 720), fps: float | None = None) -> None:
        picamera2 = _import_picamera2()
        controls = {"FrameRate": float(fps)} if fps else {}
        try:
            self._camera = picamera2(camera_num)
            config = self._camera.create_video_configuration(
                main={"size": tuple(size), "format": "YUV420"}, controls=controls
            )
            self._camera.configure(config)
            # The array of a YUV420 stream is (height * 3/2, stride): Y rows
            # first, each padded to the stride; the real size is in the config.
            self.size = tuple(self._camera.camera_configuration()["main"]["size"])
            self._camera.start()
        except _DEVICE_ERRORS as exc:
            raise CameraError(f"cannot start Raspberry Pi camera {camera_num}: {exc}") from exc
        self._closed = False

    def frames(self) -> Iterator[Frame]:
        width, height = self.size
        while not self._closed:
            try:
                array = self._camera.capture_array("main")
            except _DEVICE_ERRORS as exc:
                raise CameraError(f"Raspberry Pi camera stopped delivering frames: {exc}") from exc
            yield Frame(np.ascontiguousarray(array[:height, :width]), time.monotonic())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._camera.stop()
        finally:
            self._camera.close()
