"""Frame sources: one interface (`Camera`), one file per backend, a fake."""

from __future__ import annotations

from typing import Any

from hardware.cameras.base import Camera, Frame
from hardware.cameras.fake import FakeCamera
from hardware.exc import UnknownBackend

__all__ = ["CAMERA_KINDS", "Camera", "FakeCamera", "Frame", "open_camera"]

#: Names accepted by `open_camera` (and the gate config's camera kind).
CAMERA_KINDS = ("picamera2", "opencv", "files", "wedge", "fake")


def open_camera(kind: str, **options: Any) -> Camera:
    """Open the camera named `kind`, passing `options` to its constructor.

    - "picamera2": camera_num=0, size=(1280, 720), fps=None
    - "opencv": source=0 (index, file or URL), width, height, fps
    - "files": path (an image or a folder), fps=None, loops=1
    - "wedge": stream=stdin, or device="/dev/input/..." (evdev), grab=True
    - "fake": frames_or_images, raise_after=None

    A backend's library is imported only when its kind is opened; a missing
    one raises `BackendUnavailable` naming what to install.  Nothing ever
    falls back to another kind.
    """
    if kind == "picamera2":
        from hardware.cameras.picam import Picamera2Camera

        return Picamera2Camera(**options)
    if kind == "opencv":
        from hardware.cameras.opencv import OpencvCamera

        return OpencvCamera(**options)
    if kind == "files":
        from hardware.cameras.files import FilesCamera

        return FilesCamera(**options)
    if kind == "wedge":
        from hardware.cameras.wedge import WedgeCamera

        return WedgeCamera(**options)
    if kind == "fake":
        return FakeCamera(**options)
    raise UnknownBackend(f"unknown camera kind {kind!r}: use one of {', '.join(CAMERA_KINDS)}")
