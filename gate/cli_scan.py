"""`gate run` (the scan daemon) and `gate decode` (why won't this gate scan?)."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.app import build_decider, gate_session
from gate.config import Config
from gate.exc import ConfigError
from gate.signals import on_stop_signals

if TYPE_CHECKING:  # hardware pulls in OpenCV: only the commands that scan pay for it
    from gate.decide import Decider
    from gate.scanloop import ScanLoop
    from gate.sdnotify import Watchdog
    from hardware import Camera, Decoder, Feedback

log = logging.getLogger(__name__)


def add_scan(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    from gate.cli import _command

    p = _command(sub, common, "run", cmd_run,
                 "the gate daemon: camera, decode, decide, LED/buzzer/relay, until SIGTERM",
                 "gate run --home /var/lib/qrgate   (camera and pins from gate.toml)")
    p.add_argument("--camera", choices=("picamera2", "opencv", "files", "wedge"), help="override camera.kind")
    p.add_argument("--source", help="override camera.source (webcam index, file, URL, folder, '-' or device)")
    p.add_argument("--feedback", choices=("gpio", "console"), help="override feedback.kind")
    p = _command(sub, common, "decode", cmd_decode,
                 "print what the decoder reads in each image (path, then the text or '-')",
                 "gate decode images/*.png")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--decoder", choices=("pipeline", "zxing", "zbar", "opencv"), help="override decoder.kind")


def camera_factory(config: Config, kind: str | None = None, source: str | None = None) -> Any:
    """A no-argument callable opening the configured camera (the loop reopens it after a fault)."""
    cam = config.camera
    kind = kind or cam.kind
    source = source if source is not None else cam.source
    options: dict[str, Any]
    if kind == "picamera2":
        options = {"camera_num": cam.camera_num, "size": (cam.width, cam.height), "fps": cam.fps or None}
    elif kind == "opencv":
        options = {"source": source, "width": cam.width, "height": cam.height, "fps": cam.fps or None}
    elif kind == "files":
        if not Path(source).exists():  # a typo in the config, not a camera that may come back: refuse to start
            raise ConfigError(f"camera.source: {source!r} does not exist (camera.kind = files wants an image or a folder)")
        options = {"path": source, "fps": cam.fps or None, "loops": cam.loops or None}
    else:
        options = {"stream": sys.stdin} if source in ("-", "0", "") else {"device": source}

    def open_it() -> Camera:
        from hardware import open_camera
        return open_camera(kind, **options)
    return open_it


def build_feedback(config: Config, kind: str | None = None) -> Feedback:
    from hardware import Pins, open_feedback

    fb = config.feedback
    kind = kind or fb.kind
    if kind == "gpio":
        pins = Pins(green=fb.green, red=fb.red, amber=fb.amber, buzzer=fb.buzzer, relay=fb.relay,
                    relay_active_high=fb.relay_active_high)
        return open_feedback("gpio", pins=pins)
    return open_feedback(kind)


def build_decoder(config: Config, kind: str | None = None) -> Decoder:
    from hardware import open_decoder

    kind = kind or config.decoder.kind
    if kind == "pipeline":
        return open_decoder(kind, second=config.decoder.second)
    return open_decoder(kind)


def build_loop(config: Config, open_cam: Any, decoder: Decoder, feedback: Feedback, decider: Decider | None = None,
               **hooks: Any) -> ScanLoop:
    from gate.scanloop import Debouncer, ScanLoop

    sc = config.scanner
    decider = decider or build_decider(config)
    return ScanLoop(open_cam, decoder, decider.decide, feedback,
                    debouncer=Debouncer(sc.holdoff, sc.leave_frames), queue_size=sc.queue,
                    health_every=sc.health_every, **hooks)


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from hardware import HardwareError

    try:
        return _run(args, config)
    except HardwareError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, config: Config) -> int:
    from gate.sdnotify import Notifier, Watchdog

    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.INFO)
    notifier = Notifier.from_env()  # systemd (Type=notify): READY, WATCHDOG, STATUS; a no-op elsewhere
    watchdog = Watchdog(notifier)
    feedback = build_feedback(config, args.feedback)
    # gate_session opens the store, which runs PRAGMA quick_check: READY=1 only once that passed.  With
    # sync.broker set, every scan is claimed at the arbiter (the same path as `gate check --broker`).
    with feedback, gate_session(config) as decider:
        loop = build_loop(config, camera_factory(config, args.camera, args.source), build_decoder(config), feedback,
                          decider, on_alive=watchdog.feed)
        _show_link_state(decider, feedback, loop)
        watchdog.status = loop.stats.health

        def on_term(signum: int) -> None:
            log.info("signal %d: stopping after the current frame", signum)
            loop.stop()
        on_stop_signals(on_term)
        kind = args.camera or config.camera.kind
        log.info("gate %s scanning (camera %s, decoder %s, feedback %s)", config.gate_id,
                 kind, config.decoder.kind, args.feedback or config.feedback.kind)
        notifier.ready(f"gate {config.gate_id} scanning; store {config.store_path} checked")
        running = threading.Event()
        running.set()
        if kind == "wedge" and watchdog.every is not None:
            # A wedge scanner blocks in a read while nobody scans: no frames, yet nothing is hung.  Its
            # watchdog says only that the process runs (a dead capture thread ends the loop, and the
            # service is restarted then).
            threading.Thread(target=_keep_fed, args=(watchdog, running), name="watchdog", daemon=True).start()
        try:
            stats = loop.run()
        finally:
            running.clear()
        notifier.stopping(stats.health())
    print(stats.health())
    return 0


def _show_link_state(decider: Decider, feedback: Feedback, loop: ScanLoop) -> None:
    """Keep the amber offline light in step with the arbiter link (only for a gate with a broker)."""
    claimer = decider.claimer
    sync = getattr(claimer, "sync", None)
    if sync is None:
        return

    def watch() -> None:
        while not loop.stopped:
            feedback.offline(not sync.can_claim())
            time.sleep(1.0)
    threading.Thread(target=watch, name="link-state", daemon=True).start()


def _keep_fed(watchdog: Watchdog, running: threading.Event) -> None:
    pause = (watchdog.every or 1.0) / 2
    while running.is_set():
        watchdog.feed()
        time.sleep(pause)


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
        texts = decoder.decode(image)
        unread += not texts
        print(f"{path}\t{' | '.join(texts) if texts else '-'}")
    return 1 if unread else 0
