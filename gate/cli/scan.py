"""`gate run` (the scan daemon, gate/daemon/run.py) and `gate decode` (why won't this gate scan?)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gate.cli.common import HOME_UNUSED, SubParsers, command
from gate.config import Config
from gate.wiring import build_decoder


def add(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = command(sub, common, "run", cmd_run,
                 "the gate daemon: camera, decode, decide, LED/buzzer/relay, until SIGTERM",
                 "gate run --home /var/lib/qrgate   (camera and pins from gate.toml)")
    p.add_argument("--camera", choices=("picamera2", "opencv", "files", "wedge"), help="override camera.kind")
    p.add_argument("--source", help="override camera.source (webcam index, file, URL, folder, '-' or device)")
    p.add_argument("--feedback", choices=("gpio", "console"), help="override feedback.kind")
    p = command(sub, common, "decode", cmd_decode,
                 "print what the decoder reads in each image (path, then the text or '-')",
                 "gate decode images/*.png", home=HOME_UNUSED)
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--decoder", choices=("pipeline", "zxing", "zbar", "opencv"), help="override decoder.kind")


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from gate.daemon.run import run
    from hardware import HardwareError

    try:
        print(run(config, camera=args.camera, source=args.source, feedback_kind=args.feedback, verbose=args.verbose))
    except HardwareError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_decode(args: argparse.Namespace, config: Config) -> int:
    import cv2

    from hardware import HardwareError

    try:
        decoder = build_decoder(config, args.decoder)
    except HardwareError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return 2
    unread = 0
    for path in args.images:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            print(f"{path}\t- (cannot read the image)")
            unread += 1
            continue
        # A still is a view held for a while: the pipeline looks for light-on-dark codes on every second frame.
        texts = decoder.decode(image) or decoder.decode(image)
        unread += not texts
        print(f"{path}\t{' | '.join(texts) if texts else '-'}")
    return 1 if unread else 0
