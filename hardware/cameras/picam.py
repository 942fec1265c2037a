"""Raspberry Pi camera modules through picamera2 (libcamera).

picamera2 is imported here and only here: it exists only on Raspberry Pi OS,
from apt, and must not be needed anywhere else.

`ScreenSettings` are the libcamera controls that matter for reading a phone
screen, an emissive surface brighter than the scene around it (see
docs/hardware.md, "Camera settings for phone screens").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware.cameras.base import Camera, Frame
from hardware.exc import BackendUnavailable, CameraError

__all__ = ["INSTALL_HINT", "Picamera2Camera", "ScreenSettings"]

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "picamera2 is not installed: on Raspberry Pi OS `sudo apt install python3-picamera2`"
    " and create the venv with --system-site-packages"
)

# picamera2 and libcamera raise a mix of builtins for "no camera", "camera
# busy" and "frame timed out"; all of them mean the camera is unusable.
_DEVICE_ERRORS = (RuntimeError, IndexError, OSError, TimeoutError)


#: libcamera's enum values (control_ids.yaml), by the names the config uses.
EXPOSURE_MODES = {"normal": 0, "short": 1}
METERING_MODES = {"centre": 0, "spot": 1, "matrix": 2}
AF_MANUAL, AF_CONTINUOUS, AF_FAST = 0, 2, 1


@dataclass(frozen=True)
class ScreenSettings:
    """Exposure and focus for reading phone screens; the defaults are where a venue starts.

    - ``exposure_mode``: "short" makes auto exposure prefer a short shutter
      and more gain: a screen is bright, and a short shutter freezes a hand
      that moves the phone.  "normal" is libcamera's default.
    - ``exposure_us``: a fixed exposure time in microseconds (0: automatic).
      In a dark venue auto exposure opens up for the room and the screen
      blooms white; a fixed 2000-4000 us exposes for the screen itself.
    - ``gain``: the analogue gain with a fixed exposure (0: automatic).
    - ``metering``: "centre" (centre-weighted, where the phone is held),
      "spot" (the middle only: the screen decides, good in dark venues) or
      "matrix".
    - ``focus``: "continuous" autofocus (Camera Module 3), or "manual" at
      ``lens_position`` dioptres (1 / metres: 4.0 is 25 cm).  Modules
      without autofocus have no focus controls, and none are sent to them.
    """

    exposure_mode: str = "short"
    exposure_us: int = 0
    gain: float = 0.0
    metering: str = "centre"
    focus: str = "continuous"
    lens_position: float = 4.0

    def __post_init__(self) -> None:
        if self.exposure_mode not in EXPOSURE_MODES or self.metering not in METERING_MODES:
            raise CameraError(f"exposure mode {self.exposure_mode!r} / metering {self.metering!r}: use one of "
                              f"{', '.join(EXPOSURE_MODES)} / {', '.join(METERING_MODES)}")
        if self.focus not in ("continuous", "manual"):
            raise CameraError(f"focus {self.focus!r}: use continuous or manual")

    def controls(self, supported: Collection[str] | None = None) -> dict[str, Any]:
        """The libcamera controls, keeping only those in `supported` (the camera's) when given."""
        wanted: dict[str, Any] = {"AeMeteringMode": METERING_MODES[self.metering]}
        if self.exposure_us > 0:
            wanted["ExposureTime"] = int(self.exposure_us)  # fixed: auto exposure then varies the gain alone
            if self.gain > 0:
                wanted["AnalogueGain"] = float(self.gain)
        else:
            wanted["AeExposureMode"] = EXPOSURE_MODES[self.exposure_mode]
        if self.focus == "continuous":
            wanted.update(AfMode=AF_CONTINUOUS, AfSpeed=AF_FAST)
        else:
            wanted.update(AfMode=AF_MANUAL, LensPosition=float(self.lens_position))
        if supported is None:
            return wanted
        dropped = sorted(set(wanted) - set(supported))
        if dropped:
            log.info("camera has no %s control: not set", ", ".join(dropped))
        return {name: value for name, value in wanted.items() if name in supported}


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
    chose is used.  ``fps`` sets the FrameRate control when given;
    ``settings`` the exposure and focus controls (None: libcamera's own).
    """

    def __init__(self, camera_num: int = 0, *, size: tuple[int, int] = (1280, 720), fps: float | None = None,
                 settings: ScreenSettings | None = None) -> None:
        picamera2 = _import_picamera2()
        try:
            self._camera = picamera2(camera_num)
            controls = {"FrameRate": float(fps)} if fps else {}
            if settings is not None:
                controls.update(settings.controls(getattr(self._camera, "camera_controls", None)))
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
