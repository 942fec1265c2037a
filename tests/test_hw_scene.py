"""The synthetic scene renderer and the decode bench that relies on it."""

from __future__ import annotations

import importlib.util
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from hardware import open_decoder
from hardware.scene import DIFFICULTIES, HARD_AXES, Conditions, hard_set, render_empty, render_frame, render_scene


def test_frames_are_grayscale_of_the_requested_size() -> None:
    for size in [(640, 480), (1280, 720), (320, 240)]:
        frame = render_frame("SIZE-TEST", size=size, seed=1)
        assert frame.shape == (size[1], size[0]) and frame.dtype == np.uint8
        assert render_empty(size, seed=1).shape == (size[1], size[0])


def test_a_seed_renders_the_same_frame_every_time() -> None:
    assert np.array_equal(render_frame("SEEDED", seed=5), render_frame("SEEDED", seed=5))
    assert not np.array_equal(render_frame("SEEDED", seed=5), render_frame("SEEDED", seed=6))


def test_default_difficulty_always_decodes_with_the_pipeline() -> None:
    pipeline = open_decoder("pipeline")
    ticket = "QG1:" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 $%*+-./:" * 3
    for seed in range(40):
        assert pipeline.decode(render_frame(ticket, seed=seed)) == [ticket], seed


def test_difficulties_are_validated() -> None:
    with pytest.raises(ValueError, match="default"):
        render_frame("X", seed=1, difficulty="brutal")
    assert set(DIFFICULTIES) >= {"easy", "default", "hard", "sample"}
    exact = Conditions(module_px=5, rotation=45, tilt=20)
    assert render_scene(["X"], seed=1, difficulty=exact).shape == (480, 640)


def test_hard_set_spans_every_axis() -> None:
    samples = list(hard_set(n=2 * len(HARD_AXES), seed=3))
    assert [s.axis for s in samples] == list(HARD_AXES) * 2
    by_axis = {s.axis: s.conditions for s in samples}
    assert by_axis["rotation"].rotation != 0
    assert by_axis["small"].module_px < 2.5
    assert by_axis["low_contrast"].contrast < 0.4
    assert by_axis["glare"].glare > 0.5
    assert by_axis["screen_grid"].grid >= 0.3 and by_axis["dark_scene"].dark_scene >= 0.4
    assert by_axis["inverted"].inverted and by_axis["edge_covered"].cover >= 0.15
    assert by_axis["steep_tilt"].tilt >= 55 and by_axis["far_small"].module_px < 2.7
    assert not any(s.conditions.inverted for s in samples if s.axis != "inverted")
    assert all(len(s.texts) == 1 and s.image.shape == (480, 640) for s in samples)


def test_a_dark_mode_screen_is_light_on_dark_and_a_finger_covers_an_edge() -> None:
    plain = Conditions(module_px=5.0)
    normal = render_frame("DARK-MODE-1", seed=2, difficulty=plain)
    inverted = render_frame("DARK-MODE-1", seed=2, difficulty=Conditions(module_px=5.0, inverted=True))
    covered = render_frame("DARK-MODE-1", seed=2, difficulty=Conditions(module_px=5.0, cover=0.3))
    changed = np.abs(normal.astype(int) - inverted.astype(int)) > 100
    assert changed.mean() > 0.1  # the whole screen flipped, not a few pixels
    assert (np.abs(normal.astype(int) - covered.astype(int)) > 40).mean() > 0.01  # a finger, not a speck
    assert open_decoder("zxing", try_invert=True).decode(inverted) == ["DARK-MODE-1"]


def test_error_correction_level_is_drawn_as_asked() -> None:
    import zxingcpp

    for level in "mqh":
        frame = render_frame("EC-LEVEL", seed=1, difficulty="easy", error=level)
        (barcode,) = zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
        assert barcode.ec_level == level.upper()


def test_hard_set_uses_the_given_texts() -> None:
    assert {s.texts[0] for s in hard_set(["ONLY-THIS"], n=4, seed=1)} == {"ONLY-THIS"}


def run_bench(monkeypatch: pytest.MonkeyPatch, name: str, args: list[str]) -> str:
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, f"bench_{name}", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    out = io.StringIO()
    with redirect_stdout(out):
        bench.main(args)
    return out.getvalue()


def test_bench_runs_and_prints_its_table_and_goals(monkeypatch: pytest.MonkeyPatch) -> None:
    text = run_bench(monkeypatch, "decode", ["--frames", "2", "--repeat", "1", "--hard", str(2 * len(HARD_AXES))])
    for name in ("zxing", "zxing_inv", "zbar", "opencv", "pipeline", "1280x720 code", "goals:", "inverted",
                 "edge_covered", "far_small"):
        assert name in text
    # Timings are the bench's business, not a unit test's: only the read
    # goal, which does not depend on machine load, is checked here.
    assert "PASS  pipeline reads" in text


def test_ecc_bench_prints_versions_per_level_and_read_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    text = run_bench(monkeypatch, "ecc", ["--frames", "1"])
    lines = text.splitlines()
    # The sizes the issue quotes: the holder code is 143 characters under HMAC, 215 under Ed25519.
    assert any(line.split()[:7] == ["hmac", "ticket", "57", "3", "(29)", "3", "(29)"] for line in lines)
    assert any(line.split()[:3] == ["ed25519", "holder", "215"] for line in lines)
    assert "level M:" in text and "level Q:" in text and "level H:" in text
