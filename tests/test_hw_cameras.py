"""Frame sources: fakes, files, OpenCV video, the wedge, picamera2's absence."""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hardware import BackendUnavailable, CameraError, FakeCamera, Frame, UnknownBackend, open_camera
from hardware.cameras.wedge import KeyLineAssembler
from hardware.scene import render_frame


def test_fake_camera_yields_frames_then_raises_mid_run() -> None:
    images = [np.full((30, 40), i, np.uint8) for i in range(5)]
    camera = FakeCamera(images, raise_after=3)
    seen = []
    with pytest.raises(CameraError, match="frame 3"):
        for frame in camera.frames():
            seen.append(int(frame.image[0, 0]))  # type: ignore[index]
    assert seen == [0, 1, 2]
    assert camera.delivered == 3


def test_fake_camera_wraps_arrays_texts_and_frames() -> None:
    given = Frame(None, 1.0, ("PRESET",))
    with FakeCamera([np.zeros((21, 21), np.uint8), "WEDGE-TEXT", given]) as camera:
        frames = list(camera.frames())
    assert frames[0].texts is None and frames[0].image is not None
    assert frames[1].image is None and frames[1].texts == ("WEDGE-TEXT",)
    assert frames[2] is given
    assert camera.closed


def test_frames_carry_monotonic_timestamps() -> None:
    frames = list(open_camera("fake", frames_or_images=[np.zeros((21, 21), np.uint8)] * 3).frames())
    assert [f.ts for f in frames] == sorted(f.ts for f in frames)


def write_images(folder: Path, n: int) -> list[np.ndarray]:
    images = [render_frame(f"FILE-{i}", seed=i, difficulty="easy") for i in range(n)]
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"frame{i:02d}.png"), image)
    (folder / "notes.txt").write_text("not an image")
    return images


def test_files_camera_replays_a_folder_in_name_order(tmp_path: Path) -> None:
    images = write_images(tmp_path, 3)
    with open_camera("files", path=tmp_path, loops=2) as camera:
        frames = list(camera.frames())
    assert len(frames) == 6
    for frame, expected in zip(frames, images + images, strict=True):
        assert frame.image is not None and np.array_equal(frame.image, expected)


def test_files_camera_paces_frames_with_the_injected_sleep(tmp_path: Path) -> None:
    write_images(tmp_path, 2)
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    camera = open_camera("files", path=tmp_path / "frame01.png", fps=10, loops=3, sleep=sleep, clock=lambda: now[0])
    frames = list(camera.frames())
    assert sleeps == pytest.approx([0.1, 0.1])
    assert [f.ts for f in frames] == pytest.approx([100.0, 100.1, 100.2])


def test_files_camera_loops_forever_until_closed(tmp_path: Path) -> None:
    write_images(tmp_path, 1)
    camera = open_camera("files", path=tmp_path, loops=None)
    for count, _frame in enumerate(camera.frames(), start=1):
        if count == 25:
            camera.close()
    assert count == 25


def test_files_camera_fails_at_start_for_missing_or_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no such"):
        open_camera("files", path=tmp_path / "missing")
    with pytest.raises(CameraError, match="no images"):
        open_camera("files", path=tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CameraError, match="cannot read"):
        open_camera("files", path=tmp_path)


def test_opencv_camera_reads_a_video_file_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (640, 480))
    assert writer.isOpened()
    for i in range(5):
        writer.write(cv2.cvtColor(render_frame(f"VIDEO-{i}", seed=i, difficulty="easy"), cv2.COLOR_GRAY2BGR))
    writer.release()
    with open_camera("opencv", source=str(path)) as camera:
        frames = list(camera.frames())
    assert len(frames) == 5
    assert all(f.image is not None and f.image.shape == (480, 640) and f.image.ndim == 2 for f in frames)
    from hardware import open_decoder

    assert open_decoder("pipeline").decode(frames[2].image) == ["VIDEO-2"]


def test_opencv_camera_that_cannot_open_raises() -> None:
    with pytest.raises(CameraError, match="cannot open"):
        open_camera("opencv", source="/nonexistent/clip.avi")


def test_wedge_camera_reads_lines_from_a_stream() -> None:
    stream = io.StringIO("show7|12B|9f2\r\n\n   \nSECOND-SCAN\nlast-without-newline")
    with open_camera("wedge", stream=stream) as camera:
        frames = list(camera.frames())
    assert [f.texts for f in frames] == [("show7|12B|9f2",), ("SECOND-SCAN",), ("last-without-newline",)]
    assert all(f.image is None for f in frames)


def test_wedge_evdev_without_python_evdev_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evdev", None)  # import evdev now fails, even where installed
    with pytest.raises(BackendUnavailable, match="evdev"):
        open_camera("wedge", device="/dev/input/event0")


def test_key_line_assembler_types_like_a_us_keyboard() -> None:
    keys = KeyLineAssembler()
    events = [
        ("KEY_LEFTSHIFT", 1),
        ("KEY_S", 1),
        ("KEY_LEFTSHIFT", 0),
        ("KEY_H", 1),
        ("KEY_O", 1),
        ("KEY_W", 1),
        ("KEY_7", 1),
        ("KEY_7", 0),
        ("KEY_RIGHTSHIFT", 1),
        ("KEY_BACKSLASH", 1),
        ("KEY_RIGHTSHIFT", 0),
        ("KEY_1", 1),
        ("KEY_2", 1),
        ("KEY_LEFTSHIFT", 1),
        ("KEY_B", 1),
        ("KEY_4", 1),
        ("KEY_LEFTSHIFT", 0),
        ("KEY_KPDOT", 1),
        ("KEY_F13", 1),
        ("KEY_ENTER", 1),
    ]
    lines = [line for key, value in events if (line := keys.feed(key, value)) is not None]
    assert lines == ["Show7|12B$."]
    assert keys.unknown == 1


def test_picamera2_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(BackendUnavailable, match="python3-picamera2") as info:
        open_camera("picamera2")
    assert isinstance(info.value, ImportError)


class FakePicamera2:
    """Stands in for picamera2.Picamera2, which needs a Pi: returns YUV420
    buffers shaped as picamera2 documents them, (height * 3/2, stride)."""

    def __init__(self, camera_num: int) -> None:
        self.calls: list[Any] = [("init", camera_num)]
        self.frames = 0

    def create_video_configuration(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("config", kwargs))
        return kwargs

    def configure(self, config: dict[str, Any]) -> None:
        self.size = config["main"]["size"]

    def camera_configuration(self) -> dict[str, Any]:
        return {"main": {"size": self.size, "format": "YUV420", "stride": self.size[0] + 64}}

    def start(self) -> None:
        self.calls.append("start")

    def capture_array(self, name: str) -> np.ndarray:
        self.frames += 1
        if self.frames > 2:
            raise RuntimeError("Camera frontend has timed out!")
        w, h = self.size
        buffer = np.full((h * 3 // 2, w + 64), 128, np.uint8)  # chroma and padding grey
        buffer[:h, :w] = 7  # the Y plane
        return buffer

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


def test_picamera2_backend_takes_the_y_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakePicamera2] = []

    def make(num: int) -> FakePicamera2:
        made.append(FakePicamera2(num))
        return made[-1]

    module = types.ModuleType("picamera2")
    module.Picamera2 = make  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    camera = open_camera("picamera2", size=(640, 480), fps=30)
    frames = camera.frames()
    first = next(frames)
    assert first.image is not None and first.image.shape == (480, 640) and (first.image == 7).all()
    assert first.image.flags["C_CONTIGUOUS"]
    next(frames)
    with pytest.raises(CameraError, match="timed out"):
        next(frames)
    camera.close()
    camera.close()
    config = made[0].calls[1][1]
    assert config["main"] == {"size": (640, 480), "format": "YUV420"}
    assert config["controls"] == {"FrameRate": 30.0}
    assert made[0].calls[-2:] == ["stop", "close"]


V2_CONTROLS = ("FrameRate", "AeMeteringMode", "AeExposureMode", "ExposureTime", "AnalogueGain")
MODULE3_CONTROLS = (*V2_CONTROLS, "AfMode", "AfSpeed", "LensPosition")


def fake_picamera2(monkeypatch: pytest.MonkeyPatch, supported: tuple[str, ...]) -> list[FakePicamera2]:
    made: list[FakePicamera2] = []

    def make(num: int) -> FakePicamera2:
        made.append(FakePicamera2(num))
        made[-1].camera_controls = dict.fromkeys(supported, (0, 0, 0))  # type: ignore[attr-defined]
        return made[-1]

    module = types.ModuleType("picamera2")
    module.Picamera2 = make  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return made


def test_screen_settings_send_the_controls_the_camera_has(monkeypatch: pytest.MonkeyPatch) -> None:
    from hardware.cameras.picam import ScreenSettings

    made = fake_picamera2(monkeypatch, V2_CONTROLS)  # a module without autofocus: no focus controls sent
    open_camera("picamera2", fps=30, settings=ScreenSettings()).close()
    assert made[0].calls[1][1]["controls"] == {"FrameRate": 30.0, "AeMeteringMode": 0, "AeExposureMode": 1}
    made = fake_picamera2(monkeypatch, MODULE3_CONTROLS)
    fixed = ScreenSettings(exposure_us=3000, gain=2.0, metering="spot", focus="manual", lens_position=5.0)
    open_camera("picamera2", settings=fixed).close()
    assert made[0].calls[1][1]["controls"] == {"AeMeteringMode": 1, "ExposureTime": 3000, "AnalogueGain": 2.0,
                                               "AfMode": 0, "LensPosition": 5.0}
    assert ScreenSettings().controls(MODULE3_CONTROLS)["AfMode"] == 2  # continuous autofocus by default
    with pytest.raises(CameraError, match="metering"):
        ScreenSettings(metering="average")


def test_the_gate_config_reaches_the_pi_camera(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from gate.config import load_config
    from gate.wiring import camera_factory

    made = fake_picamera2(monkeypatch, MODULE3_CONTROLS)
    (tmp_path / "gate.toml").write_text('[camera]\nexposure_us = 2500\nmetering = "spot"\n')
    camera = camera_factory(load_config(home=tmp_path))()
    camera.close()
    controls = made[0].calls[1][1]["controls"]
    assert (controls["ExposureTime"], controls["AeMeteringMode"], controls["AfMode"]) == (2500, 1, 2)


def test_open_camera_names_valid_kinds() -> None:
    with pytest.raises(UnknownBackend, match="picamera2, opencv, files, wedge, fake"):
        open_camera("kinect")
