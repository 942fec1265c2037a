"""`gate demo`: the worked example through the real scan daemon, on a throwaway key and store.

It mints tickets, renders them into camera frames (a phone screen in a
scene: perspective, blur, noise), writes the frames to a folder and runs the
daemon's own loop over that folder (camera kind "files", the pipeline
decoder, console feedback), then prints the story and checks it.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from gate.cli.common import HOME_UNUSED, SubParsers, command, format_decision
from gate.config import Config, load_config
from gate.decide import Decision
from gate.keys import IssuerKey, KeyStore
from gate.outcomes import Outcome
from gate.ticket import Ticket, encode_text, parse
from gate.wiring import build_decoder, build_feedback, build_loop, camera_factory, open_store

GATE_ID = "gate-north-1"
FRAMES_PER_SHOWING = 12
GAP_FRAMES = 8


def add(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = command(sub, common, "demo", run_demo, "the worked example on a throwaway key and store", "gate demo",
                home=HOME_UNUSED)
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="use DIR as the demo home and keep it (frames in DIR/frames, try `gate decode` on them)")


def forge(text: str) -> str:
    """The same ticket with the seat changed and the old tag kept: all a forger can do without the key."""
    signed = parse(text)
    return encode_text(signed.ticket.replace(seat="1A").body(), signed.tag)


def run_demo(args: argparse.Namespace, _config: Config) -> int:
    if args.keep:
        return _run(Path(args.keep))
    with tempfile.TemporaryDirectory(prefix="qrgate-demo-") as tmp:
        return _run(Path(tmp))


def _run(home: Path) -> int:
    started = time.monotonic()
    config = load_config(home, env={}, overrides={"gate.id": GATE_ID})
    config = dataclasses.replace(
        config, scanner=dataclasses.replace(config.scanner, health_every=3600),
        camera=dataclasses.replace(config.camera, kind="files", source=str(home / "frames"), fps=0.0),
        feedback=dataclasses.replace(config.feedback, kind="console"))
    key = IssuerKey.new("show7")
    KeyStore(config.keys_dir).add_issuer_key(key)
    ticket = key.sign(Ticket(event="show7", ticket_id="9f2", seat="12B"))
    refunded = key.sign(Ticket(event="show7", ticket_id="a11", seat="14C"))
    print(f"issuer key {key.kid} (Ed25519, throwaway) in {config.keys_dir}")
    print(f"minted show7|12B|9f2: {ticket}")
    story = [
        ("a friend's screenshot of the ticket", ticket, Outcome.ADMIT),
        ("the holder's phone, the same image", ticket, Outcome.ALREADY_USED),
        ("a forged ticket (seat changed to 1A)", forge(ticket), Outcome.INVALID),
        ("a refunded ticket (revoked)", refunded, Outcome.REVOKED),
    ]
    count = write_frames(home / "frames", [text for _, text, _ in story])
    print(f"rendered {count} camera frames (640x480, phone in a scene) in {home / 'frames'}\n")
    return scan(config, story, started)


def write_frames(folder: Path, showings: list[str]) -> int:
    """Idle frames, then each code held up for a while, with idle frames between (the code leaves the view)."""
    import cv2

    from hardware.scene import render_empty, render_frame

    folder.mkdir(parents=True, exist_ok=True)
    frames = [render_empty(seed=s) for s in range(3)]
    idle = frames[:]
    for n, text in enumerate(showings):
        held = [render_frame(text, seed=100 * n + s) for s in range(4)]  # a hand moves: a few distinct views
        frames += [held[i % len(held)] for i in range(FRAMES_PER_SHOWING)]
        frames += [idle[i % len(idle)] for i in range(GAP_FRAMES)]
    for i, image in enumerate(frames):
        cv2.imwrite(str(folder / f"frame-{i:04d}.png"), image)
    return len(frames)


def scan(config: Config, story: list[tuple[str, str, Outcome]], started: float) -> int:
    with open_store(config) as store:
        store.revoke("show7", "a11", at=time.time(), by="box-office", reason="refunded")
    from hardware import BackendUnavailable

    try:
        decoder = build_decoder(config)
    except BackendUnavailable as exc:  # said out loud, not a silent fallback: the demo frames need no rescue
        print(f"note: {exc}\nnote: the demo goes on with the pipeline's rescue step off (decoder.second = none)\n")
        config = dataclasses.replace(config, decoder=dataclasses.replace(config.decoder, second="none"))
        decoder = build_decoder(config)
    decisions: list[Decision] = []
    with build_feedback(config) as feedback:
        loop = build_loop(config, camera_factory(config), decoder, feedback,
                          on_decision=decisions.append)
        stats = loop.run()
    print()
    failed = len(decisions) != len(story)
    for (what, _text, expected), decision in zip(story, decisions, strict=False):
        ok = decision.outcome is expected
        failed |= not ok
        print(f"{what:38} -> {format_decision(decision)}{'' if ok else f'   <-- expected {expected}'}")
    print(f"\n{stats.frames} frames, {sum(stats.decisions.values())} decisions "
          f"(one per showing, not one per frame), {time.monotonic() - started:.1f} s")
    if failed:
        print(f"demo FAILED: expected {[e.value for *_, e in story]}, got {[d.outcome.value for d in decisions]}")
        return 1
    print("demo ok: ADMIT, ALREADY_USED, INVALID, REVOKED as expected")
    return 0
