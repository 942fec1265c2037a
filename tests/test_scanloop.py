"""The scan daemon's loop on real decoders and a real store: frames in, decisions and signals out."""

from __future__ import annotations

import io
import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import mint

from gate.daemon.scanloop import Debouncer, ScanLoop
from gate.decide import Decider, Decision
from gate.keys import IssuerKey
from gate.outcomes import Outcome, Reason
from hardware import Camera, FakeCamera, Frame, RecordingFeedback, open_camera, open_decoder
from hardware.exc import CameraError
from hardware.scene import render_empty, render_frame, render_scene


@pytest.fixture
def key() -> IssuerKey:
    return IssuerKey.new("show7", "hmac")


@pytest.fixture
def decider(make_decider: Callable[..., Decider], key: IssuerKey) -> Decider:
    return make_decider(key)


def frames_of(text: str | None, n: int, seed: int = 0) -> list[np.ndarray]:
    views = [render_frame(text, seed=seed + s) if text else render_empty(seed=seed + s) for s in range(3)]
    return [views[i % 3] for i in range(n)]


def run(decider: Decider, items: list, **kw: object) -> tuple[ScanLoop, list[Decision], RecordingFeedback]:
    decisions: list[Decision] = []
    feedback = RecordingFeedback()
    cameras = kw.pop("cameras", None)
    factory = (lambda: cameras.pop(0)) if cameras else (lambda: FakeCamera(items))  # type: ignore[union-attr]
    loop = ScanLoop(factory, open_decoder("pipeline"), decider.decide, feedback, on_decision=decisions.append,
                    retry_delays=(0.0,), **kw)  # type: ignore[arg-type]
    loop.run()
    return loop, decisions, feedback


def test_a_code_held_for_60_frames_is_one_decision_and_again_after_leaving_is_already_used(
        decider: Decider, key: IssuerKey) -> None:
    ticket = mint(key)
    items = frames_of(ticket, 60) + frames_of(None, 6) + frames_of(ticket, 30, seed=10)
    loop, decisions, feedback = run(decider, items, debouncer=Debouncer(holdoff=3600, leave_frames=5))
    assert [d.outcome for d in decisions] == [Outcome.ADMIT, Outcome.ALREADY_USED]
    assert [e[1] for e in feedback.events if e[0] == "show"] == [Outcome.ADMIT, Outcome.ALREADY_USED]
    assert loop.stats.frames == 96
    assert loop.stats.decisions == {"ADMIT": 1, "ALREADY_USED": 1}


def test_a_missed_frame_or_two_is_not_leaving_the_view(decider: Decider, key: IssuerKey) -> None:
    ticket = mint(key)
    items = frames_of(ticket, 10) + frames_of(None, 2) + frames_of(ticket, 10)
    _, decisions, _ = run(decider, items, debouncer=Debouncer(holdoff=3600, leave_frames=5))
    assert [d.outcome for d in decisions] == [Outcome.ADMIT]


def test_holdoff_decides_again_while_still_in_view() -> None:
    debounce = Debouncer(holdoff=2.0, leave_frames=5)
    fired = []
    for i in range(50):
        ts = i * 0.1  # 10 frames/s for 5 s
        for text in debounce.fresh(["T"], ts):
            debounce.accepted(text, ts)
            fired.append(ts)
    assert fired == pytest.approx([0.0, 2.0, 4.0])


def test_bad_frames_two_codes_and_a_non_ticket_are_counted_not_fatal(decider: Decider, key: IssuerKey) -> None:
    a, b = mint(key, "a1"), mint(key, "b1")
    items: list = [
        np.zeros((0, 0), np.uint8), np.ones((480, 640), np.float32), Frame(None, 1.0),
        np.random.default_rng(1).integers(0, 255, (480, 640), dtype=np.uint8),
        render_scene([a, b], size=(1280, 720), seed=3),
        render_frame("HELLO WORLD", seed=4),
        "",
    ]
    loop, decisions, _ = run(decider, items, debouncer=Debouncer(holdoff=3600, leave_frames=1))
    got = sorted((d.outcome.value, d.ticket_id or "", d.reason.value) for d in decisions)
    assert got == [("ADMIT", "a1", ""), ("ADMIT", "b1", ""), ("INVALID", "", "malformed"), ("INVALID", "", "malformed")]
    assert loop.stats.bad_frames == 1  # the frame with no image; the others decoded to nothing
    assert loop.stats.frames == len(items)


def test_a_camera_that_raises_mid_run_shows_fault_and_is_reopened(decider: Decider, key: IssuerKey) -> None:
    ticket = mint(key)
    first = FakeCamera(frames_of(None, 5), raise_after=3)
    second = FakeCamera(frames_of(ticket, 5))
    loop, decisions, feedback = run(decider, [], cameras=[first, second])
    assert loop.stats.camera_faults == 1
    assert ("show", Outcome.FAULT) in [e[:2] for e in feedback.events]
    assert [d.outcome for d in decisions] == [Outcome.ADMIT]  # scanning went on after the reopen


def test_a_camera_that_keeps_failing_stops_after_the_limit(decider: Decider) -> None:
    def broken() -> FakeCamera:
        raise CameraError("no camera on /dev/video0")
    feedback = RecordingFeedback()
    loop = ScanLoop(broken, open_decoder("pipeline"), decider.decide, feedback, retry_delays=(0.0,),
                    max_camera_faults=3)
    stats = loop.run()
    assert stats.camera_faults == 3
    assert [e[1] for e in feedback.events if e[0] == "show"] == [Outcome.FAULT] * 3


def blocked(decider: Decider) -> tuple[Callable[[str], Decision], threading.Event]:
    """decider.decide held until the returned event is set: a store stuck while scans arrive."""
    gate = threading.Event()

    def slow(text: str) -> Decision:
        gate.wait(10)
        return decider.decide(text)
    return slow, gate


def run_until_read(loop: ScanLoop, frames: int, release: threading.Event) -> None:
    """Run `loop` until its camera has handed on `frames` frames, then free the store and let it finish."""
    runner = threading.Thread(target=loop.run)
    runner.start()
    deadline = time.monotonic() + 20
    while loop.stats.frames < frames and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.stats.frames == frames, "the camera loop was held up by the store"
    release.set()
    runner.join(20)
    assert not runner.is_alive()


def test_a_slow_store_never_holds_up_the_camera(decider: Decider, key: IssuerKey) -> None:
    tickets = [mint(key, f"q{i}") for i in range(8)]
    items = [render_frame(t, seed=i, difficulty="easy") for i, t in enumerate(tickets)]
    slow, release = blocked(decider)
    loop = ScanLoop(lambda: FakeCamera(items), open_decoder("pipeline"), slow, RecordingFeedback(), queue_size=2)
    run_until_read(loop, len(items), release)
    assert loop.stats.dropped >= len(items) - 3  # bounded hand-off: the rest were dropped, to be re-read
    assert sum(loop.stats.decisions.values()) == len(items) - loop.stats.dropped


def wedge_lines(lines: list[str]) -> Callable[[], Camera]:
    return lambda: open_camera("wedge", stream=io.StringIO("".join(f"{line}\n" for line in lines)))


def test_a_burst_of_50_wedge_lines_gives_50_decisions_in_order(decider: Decider, key: IssuerKey) -> None:
    """A handheld scanner's lines arrive while the store is busy: every one is decided, in order, none dropped."""
    tickets = [mint(key, f"w{i}") for i in range(50)]
    slow, release = blocked(decider)
    decisions: list[Decision] = []
    feedback = RecordingFeedback()
    loop = ScanLoop(wedge_lines(tickets), open_decoder("pipeline"), slow, feedback, on_decision=decisions.append)
    run_until_read(loop, 50, release)
    assert [d.ticket_id for d in decisions] == [f"w{i}" for i in range(50)]
    assert {d.outcome for d in decisions} == {Outcome.ADMIT}
    assert feedback.shown == [(Outcome.ADMIT, Reason.NONE)] * 50
    assert (loop.stats.dropped, loop.stats.refused) == (0, 0)


def test_a_flood_past_the_line_queue_is_refused_out_loud(decider: Decider, key: IssuerKey) -> None:
    tickets = [mint(key, f"x{i}") for i in range(20)]
    slow, release = blocked(decider)
    refused: list[str] = []
    decided: list[Decision] = []
    feedback = RecordingFeedback()
    loop = ScanLoop(wedge_lines(tickets), open_decoder("pipeline"), slow, feedback, line_queue=8,
                    on_refused=refused.append, on_decision=decided.append)
    run_until_read(loop, 20, release)
    assert 8 <= len(decided) <= 9  # the queue's 8, and one the worker may already have taken
    assert loop.stats.refused == 20 - len(decided) == len(refused)
    # Each scan was either decided (in order) or refused and reported: none vanished.
    assert sorted(refused + [tickets[int(d.ticket_id[1:])] for d in decided]) == sorted(tickets)
    assert [d.ticket_id for d in decided] == sorted((d.ticket_id for d in decided), key=lambda t: int(t[1:]))
    assert feedback.shown.count((Outcome.FAULT, Reason.NONE)) == loop.stats.refused  # on the light, every time
    assert f"refused {loop.stats.refused}" in loop.stats.health()


def test_a_wedge_repeat_within_the_holdoff_gives_the_repeat_signal(decider: Decider, key: IssuerKey) -> None:
    """A handheld's double read answers at once with the first answer's light; past the holdoff it is decided."""
    ticket, forged = mint(key), mint(key, "f1")[:-2] + "00"
    items = [Frame(None, ts, (text,)) for ts, text in
             [(0.0, ticket), (0.4, ticket), (1.0, forged), (1.5, forged), (2.0, ticket), (9.0, ticket)]]
    loop, decisions, feedback = run(decider, items, debouncer=Debouncer(holdoff=5.0))
    assert [d.outcome for d in decisions] == [Outcome.ADMIT, Outcome.INVALID, Outcome.ALREADY_USED]
    assert [e[:2] for e in feedback.events if e[0] in ("show", "repeat")] == [
        ("show", Outcome.ADMIT), ("repeat", Outcome.ADMIT), ("show", Outcome.INVALID), ("repeat", Outcome.INVALID),
        ("repeat", Outcome.ADMIT), ("show", Outcome.ALREADY_USED)]
    assert loop.stats.repeats == 3 and "repeats 3" in loop.stats.health()
    assert decider.store.counts() == {"ADMIT": 1, "INVALID": 1, "ALREADY_USED": 1}  # a repeat is not a new scan


def test_a_repeat_queued_behind_its_first_scan_answers_with_that_decision(decider: Decider, key: IssuerKey) -> None:
    ticket = mint(key)
    slow, release = blocked(decider)
    feedback = RecordingFeedback()
    loop = ScanLoop(wedge_lines([ticket, ticket, ticket]), open_decoder("pipeline"), slow, feedback)
    run_until_read(loop, 3, release)
    assert loop.stats.decisions == {"ADMIT": 1}
    assert feedback.repeated == [(Outcome.ADMIT, Reason.NONE)] * 2


def test_wedge_text_skips_the_decoder(decider: Decider, key: IssuerKey) -> None:
    ticket = mint(key)
    loop, decisions, _ = run(decider, [ticket, ticket], debouncer=Debouncer(holdoff=0, leave_frames=1))
    assert [d.outcome for d in decisions] == [Outcome.ADMIT, Outcome.ALREADY_USED]
    assert loop.stats.decode_ms_total == 0


def test_health_line_reports_rates_and_counts(decider: Decider, key: IssuerKey) -> None:
    loop, _, _ = run(decider, frames_of(mint(key), 5))
    line = loop.stats.health()
    assert "frames/s" in line and "decode" in line and "ADMIT=1" in line
    time.sleep(0.2)  # e.g. the outbox drains before `gate run` prints it: the rates are those of the loop's run
    assert loop.stats.health() == line


def test_demo_frames_decode(tmp_path: Path) -> None:
    """The files the demo writes, read back from disk and decoded: idle frames, then each showing's code for a
    while, then idle again (what the demo's scan relies on), the files in name order."""
    import cv2

    from gate.cli.demo import FRAMES_PER_SHOWING, GAP_FRAMES, write_frames
    write_frames(tmp_path, ["HELLO", "QG:WORLD"])
    decoder = open_decoder("pipeline")
    seen = [decoder.decode(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)) for f in sorted(tmp_path.glob("*.png"))]
    shown = [["HELLO"]] * FRAMES_PER_SHOWING + [[]] * GAP_FRAMES + [["QG:WORLD"]] * FRAMES_PER_SHOWING
    assert seen == [[]] * 3 + shown + [[]] * GAP_FRAMES


def test_frames_to_decisions_to_pin_states_end_to_end(decider: Decider, key: IssuerKey) -> None:
    """Camera frames of four showings -> the real pipeline decoder -> decisions -> LEDs, buzzer, relay."""
    from gpiozero.pins.mock import MockFactory

    from gate.cli.demo import forge
    from hardware import Pins
    from hardware.feedback.gpio import GpioFeedback

    ticket, refunded = mint(key), mint(key, "a11", "14C")
    decider.store.revoke("show7", "a11", at=0.0, by="test")
    items = []
    for n, text in enumerate([ticket, ticket, forge(ticket), refunded]):
        items += frames_of(text, 8, seed=20 * n) + frames_of(None, 6, seed=500 + n)
    factory = MockFactory()
    pins = Pins(green=17, red=27, amber=22, buzzer=23, relay=24)
    with GpioFeedback(pins, pin_factory=factory, time_scale=0.001) as feedback:
        def settle(_d: Decision) -> None:
            assert feedback.wait_idle(timeout=5)  # let each pattern finish before the next person
        decisions: list[Decision] = []
        loop = ScanLoop(lambda: FakeCamera(items), open_decoder("pipeline"), decider.decide, feedback,
                        debouncer=Debouncer(holdoff=3600, leave_frames=5),
                        on_decision=lambda d: (decisions.append(d), settle(d)))
        loop.run()
        assert feedback.wait_idle(timeout=5)

    def pulses(pin: int) -> int:
        states = [s.state for s in factory.pin(pin).states]
        assert all(a != b for a, b in itertools.pairwise(states)), states  # every change is a switch
        return states.count(True)

    assert [d.outcome for d in decisions] == [Outcome.ADMIT, Outcome.ALREADY_USED, Outcome.INVALID, Outcome.REVOKED]
    assert pulses(17) == 1  # green: the one ADMIT
    assert pulses(24) == 1  # relay: the one ADMIT, never a rejection
    assert pulses(27) == 1 + 1 + 5  # red: ALREADY_USED, INVALID, REVOKED blinking five times
    assert pulses(23) == 1 + 2 + 1 + 3  # buzzer: 1 short, 2 short, 1 long, 3 short
    assert pulses(22) == 0  # amber: no fault, not offline


def test_a_dark_mode_phone_is_read_through_the_loop_to_the_green_light(decider: Decider, key: IssuerKey) -> None:
    """Light-on-dark codes (dark-mode wallets), real pipeline, real store, gpiozero's MockFactory."""
    from gpiozero.pins.mock import MockFactory

    from hardware import Pins
    from hardware.feedback.gpio import GpioFeedback
    from hardware.scene import Conditions

    ticket = mint(key)
    dark = [render_frame(ticket, seed=s, difficulty=Conditions(module_px=4.5, tilt=12, rotation=8, blur=0.4,
                                                                noise=2, inverted=True)) for s in range(3)]
    items = [dark[i % 3] for i in range(8)] + frames_of(None, 6)
    factory = MockFactory()
    decisions: list[Decision] = []
    with GpioFeedback(Pins(green=17, red=27, amber=22, buzzer=23, relay=24), pin_factory=factory,
                      time_scale=0.001) as feedback:
        loop = ScanLoop(lambda: FakeCamera(items), open_decoder("pipeline"), decider.decide, feedback,
                        debouncer=Debouncer(holdoff=3600, leave_frames=5), on_decision=decisions.append)
        loop.run()
        assert feedback.wait_idle(timeout=5)
    assert [d.outcome for d in decisions] == [Outcome.ADMIT]
    assert [s.state for s in factory.pin(17).states] == [False, True, False]  # green, once
    assert [s.state for s in factory.pin(24).states] == [False, True, False]  # the door, once
    assert [s.state for s in factory.pin(27).states] == [False]  # never red


def test_a_feedback_that_fails_never_stops_the_decisions_or_the_shutdown(decider: Decider, key: IssuerKey) -> None:
    """A closed stdout (console) or a dead LED driver: every scan is still decided and run() returns."""
    class Broken(RecordingFeedback):
        def show(self, outcome: Outcome, reason: object = None, **_kw: object) -> None:  # type: ignore[override]
            raise BrokenPipeError("stdout is gone")

    tickets = [mint(key, f"f{i}") for i in range(12)]
    items = [Frame(None, float(i), (t,)) for i, t in enumerate(tickets)]
    loop = ScanLoop(lambda: FakeCamera(items), open_decoder("pipeline"), decider.decide, Broken(), queue_size=2)
    stats = loop.run()
    assert sum(stats.decisions.values()) + stats.dropped == 12
    assert stats.feedback_errors == sum(stats.decisions.values()) > 0
    assert "feedback errors" in stats.health()


def test_gate_run_counts_refused_scans_in_the_gates_mqtt_status() -> None:
    from types import SimpleNamespace

    from gate.daemon.run import _count_refused
    from sync.counters import Counters

    counters = Counters()
    count = _count_refused(SimpleNamespace(claimer=SimpleNamespace(sync=SimpleNamespace(counters=counters))))
    assert count is not None
    count("QG:...")
    count("QG:...")
    assert counters["scans_refused"] == 2  # published in the retained status's `counters`
    assert _count_refused(SimpleNamespace(claimer=None)) is None  # no broker: the health line says it
