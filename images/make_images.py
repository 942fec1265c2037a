"""Write the sample camera frames (640x480 grayscale PNG) used by the demo and tests.

    python images/make_images.py --out images/ --text ticket=TEXT --text screenshot=TEXT2

Writes one frame per ``--text name=TEXT`` (at most 5; default: two
placeholder tickets), plus:

- ``two_codes.png``: the first two texts side by side (a second placeholder
  if only one text is given),
- ``not_a_ticket.png``: a QR code that is not a ticket ("HELLO WORLD"),
- ``empty.png``: an idle frame with no code,

and ``manifest.json`` (file -> texts it shows, for tests and the demo) and
``README.md`` describing them.  Every frame is checked to decode to exactly its
texts with the default decoder before it is written; the seed is advanced
until it does, so the committed frames are known-good and the run is
repeatable.  Exit status 1 if a frame cannot be made decodable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardware.decoders import open_decoder
from hardware.scene import render_empty, render_scene

DEFAULT_TEXTS = ("ticket=QRGATE-SAMPLE-TICKET-0001", "ticket2=QRGATE-SAMPLE-TICKET-0002")
NOT_A_TICKET = "HELLO WORLD"
MAX_TEXTS = 5
MAX_BYTES = 60_000
SIZE = (640, 480)
SEED_TRIES = 50


def parse_texts(items: Sequence[str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name or not text:
            raise SystemExit(f"--text wants name=TEXT, got {item!r}")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise SystemExit(f"--text name {name!r}: use letters, digits, - and _ (it becomes a file name)")
        if name in texts or name in ("two_codes", "not_a_ticket", "empty"):
            raise SystemExit(f"--text name {name!r} is used twice or is reserved")
        texts[name] = text
    if len(texts) > MAX_TEXTS:
        raise SystemExit(f"at most {MAX_TEXTS} --text (the sample set stays small)")
    return texts


def decodable(texts: Sequence[str], seed: int, decode: object) -> tuple[np.ndarray, int]:
    """The first frame from `seed` on that decodes to exactly `texts`."""
    for attempt in range(seed, seed + SEED_TRIES):
        image = (
            render_scene(list(texts), size=SIZE, seed=attempt, difficulty="sample")
            if texts
            else render_empty(SIZE, attempt, difficulty="sample")
        )
        # 64 grey levels: a third smaller as PNG, and no decoder reads worse
        # for it (the check below runs on exactly what is written).
        image = (image // 4) * 4 + 2
        if sorted(decode(image)) == sorted(texts):  # type: ignore[operator]
            return image, attempt
    raise SystemExit(f"no decodable frame for {list(texts)} in seeds {seed}..{seed + SEED_TRIES - 1}")


def write_png(path: Path, image: np.ndarray) -> int:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise SystemExit(f"cannot encode {path}")
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{path.name} would be {len(data)} bytes, over {MAX_BYTES}")
    path.write_bytes(data.tobytes())
    return len(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="folder (default: images/)")
    parser.add_argument(
        "--text", action="append", metavar="NAME=TEXT", help="a frame NAME.png showing TEXT (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    texts = parse_texts(args.text or DEFAULT_TEXTS)
    args.out.mkdir(parents=True, exist_ok=True)
    decoder = open_decoder("pipeline")

    values = list(texts.values())
    pair = values[:2] if len(values) >= 2 else [values[0], "QRGATE-SAMPLE-TICKET-0002"]
    frames: dict[str, tuple[list[str], str]] = {
        **{name: ([text], f"one phone showing the ticket text `{text}`") for name, text in texts.items()},
        "two_codes": (pair, "two phones side by side, one code each: both texts must be read"),
        "not_a_ticket": (
            [NOT_A_TICKET],
            f"a QR code that is not a ticket (`{NOT_A_TICKET}`): must be INVALID/malformed",
        ),
        "empty": ([], "no code at all (an idle frame): must decode to nothing"),
    }
    _remove_stale(args.out, {f"{name}.png" for name in frames})
    manifest: dict[str, list[str]] = {}
    lines = []
    for i, (name, (shown, what)) in enumerate(frames.items()):
        image, seed = decodable(shown, args.seed + 1000 * i, decoder.decode)
        size = write_png(args.out / f"{name}.png", image)
        manifest[f"{name}.png"] = shown
        lines.append(f"| `{name}.png` | {what} | {seed} |")
        print(f"{name}.png  {size:>6} bytes  seed {seed}  {shown}")
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (args.out / "README.md").write_text(_readme(lines))
    return 0


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Delete frames an earlier run wrote (per its manifest) that this run does
    not: a renamed --text must not leave an old ticket image behind."""
    old = out / "manifest.json"
    if not old.is_file():
        return
    for name in json.loads(old.read_text()):
        if name not in keep and Path(name).name == name and name.endswith(".png"):
            (out / name).unlink(missing_ok=True)


def _readme(lines: list[str]) -> str:
    return "\n".join(
        [
            "# Sample frames",
            "",
            "Synthetic 640x480 grayscale camera frames: a phone showing a QR ticket in a",
            "cluttered scene (hardware/scene.py, difficulty `sample`).  The demo replays them",
            "with the `files` camera and the tests decode them.  Generated, not drawn by hand:",
            "",
            "    python images/make_images.py --out images/ --text name=TEXT ...",
            "",
            "rewrites them, this file and `manifest.json` (file name -> the texts the frame",
            "shows, in left-to-right order).  Each frame was checked to decode to exactly",
            "those texts with the default decoder before it was written.  They are stored",
            "with 64 grey levels, which keeps each under 60 KB and changes no decode.",
            "",
            "| file | what it shows | seed |",
            "| --- | --- | --- |",
            *lines,
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
