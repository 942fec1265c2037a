"""A both gate's second input: the exit button (the gpio button on gpiozero's MockFactory, the way it gives each
scan, the scan loop and `gate run` deciding exits and entries by it: hardware/buttons/, gate/daemon/ways.py) and
the exit scanner (scanner.exit_source)."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT, gate_env, mint
from gpiozero.pins.mock import MockFactory

from gate.config import Config, load_config
from gate.daemon.scanloop import ScanLoop
from gate.daemon.ways import ButtonWay
from gate.decide import Decider, Decision
from gate.keys import IssuerKey
from gate.outcomes import Outcome, Reason
from gate.store import Store
from gate.wiring import build_loop, build_ways, exit_scanner, gate_session
from hardware import (
    BackendUnavailable,
    ButtonError,
    Camera,
    FakeButton,
    Frame,
    RecordingFeedback,
    UnknownBackend,
    open_button,
    open_decoder,
)

Cli = Callable[..., subprocess.CompletedProcess[str]]
PIN = 5
LIST = ("gate.list=lists/stadium.list.json", "gate.direction=both")


# -- the button ------------------------------------------------------------------------------------------
def test_a_gpio_button_is_held_while_its_pin_is_low_and_remembers_its_press() -> None:
    factory = MockFactory()
    with open_button("gpio", pin=PIN, pin_factory=factory) as button:
        assert (button.held, button.pressed_at) == (False, None)
        factory.pin(PIN).drive_low()  # wired to ground, the pin's pull-up: pressed is low
        assert button.held and button.pressed_at is not None
        pressed_at = button.pressed_at
        factory.pin(PIN).drive_high()
        assert not button.held and button.pressed_at == pressed_at  # a press that is over is not lost
    open_button("gpio", pin=PIN, pin_factory=factory).close()  # closed: the pin is free again


def test_a_pin_in_use_is_a_button_error() -> None:
    factory = MockFactory()
    with open_button("gpio", pin=PIN, pin_factory=factory), pytest.raises(ButtonError, match="pin 5"):
        open_button("gpio", pin=PIN, pin_factory=factory)


def test_no_pin_library_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with pytest.raises(BackendUnavailable, match=r"python3-lgpio.*leave gate\.exit_button out"):
        open_button("gpio", pin=PIN)


def test_open_button_names_valid_kinds() -> None:
    with pytest.raises(UnknownBackend, match="gpio, fake"):
        open_button("keypad")


# -- the way of each scan ----------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_press_then_scan_is_one_exit_within_the_window() -> None:
    button, clock = FakeButton(), Clock()
    way = ButtonWay(button, 10.0, clock=clock)
    assert way() is None  # never pressed: the gate's default, in
    button.press()
    clock.now = button.pressed_at + 9.5  # type: ignore[operator]
    assert [way(), way()] == ["out", None]  # that press is spent by the first scan
    button.press()
    clock.now = button.pressed_at + 10.5  # type: ignore[operator]
    assert way() is None  # a press regretted runs out


def test_held_every_scan_is_an_exit_and_the_release_leaves_no_exit_behind() -> None:
    button, clock = FakeButton(), Clock()
    way = ButtonWay(button, 10.0, clock=clock)
    button.hold()
    clock.now = button.pressed_at  # type: ignore[assignment]
    assert [way(), way(), way()] == ["out", "out", "out"]
    button.release()
    assert way() is None  # the press it was held for is spent


# -- through the scan loop and `gate run` ---------------------------------------------------------------
@pytest.fixture
def stadium(gate_cli: Cli, issuer: IssuerKey, home: Path, tmp_path: Path) -> Path:
    """A signed re-entry list for the issuer's event, at lists/stadium.list.json under home."""
    src = tmp_path / "lists.toml"
    src.write_text('[[list]]\nname = "stadium"\nevent = "show7"\nreentry = true\nversion = 1\n')
    assert gate_cli("lists", "sign", str(src), "--out", str(home / "lists")).returncode == 0
    return home / "lists" / "stadium.list.json"


def both_gate(home: Path, **overrides: object) -> Config:
    return load_config(home, env={}, overrides={"gate.list": "lists/stadium.list.json", "gate.direction": "both",
                                                "scanner.holdoff": 0, **overrides})


class Script(Camera):
    """A wedge scanner and the attendant beside it: each item is a scanned line or an action done before the next."""

    def __init__(self, items: list[str | Callable[[], None]]) -> None:
        self.items = items

    def frames(self) -> Iterator[Frame]:
        for item in self.items:
            if callable(item):
                item()
            else:
                yield Frame(None, 0.0, (item,))

    def close(self) -> None:
        pass


def scan(config: Config, items: list[str | Callable[[], None]], factory: MockFactory,
         feedback: RecordingFeedback | None = None) -> list[Decision]:
    decisions: list[Decision] = []
    ways = build_ways(config, pin_factory=factory)
    assert ways is not None
    with gate_session(config) as decider, ways:
        loop = build_loop(config, lambda: Script(items), open_decoder("fake"), feedback or RecordingFeedback(), decider,
                          on_decision=decisions.append, way=ways)
        loop.run()
    return decisions


def inside(config: Config, ticket_id: str) -> bool:
    with Store.open(config.store_path) as store, store.transaction() as tx:
        return tx.pass_state("show7", ticket_id, "stadium").inside


def test_pressed_the_scan_is_an_exit_not_pressed_an_entry(stadium: Path, issuer: IssuerKey, home: Path) -> None:
    factory = MockFactory()
    pin = factory.pin(PIN)
    config = both_gate(home, **{"gate.exit_button": PIN})
    a, b = mint(issuer, "a1"), mint(issuer, "b1")
    feedback = RecordingFeedback()
    decisions = scan(config, [a, lambda: (pin.drive_low(), pin.drive_high()), a, a,  # press, then scan: one exit
                              lambda: pin.drive_low(), b, a, lambda: pin.drive_high(), b],  # held: all exits
                     factory, feedback)
    assert [(d.ticket_id, d.outcome, d.reason) for d in decisions] == [
        ("a1", Outcome.ADMIT, Reason.NONE), ("a1", Outcome.ADMIT, Reason.EXIT), ("a1", Outcome.ADMIT, Reason.NONE),
        ("b1", Outcome.ADMIT, Reason.EXIT), ("a1", Outcome.ADMIT, Reason.EXIT), ("b1", Outcome.ADMIT, Reason.NONE)]
    assert not inside(config, "a1") and inside(config, "b1")
    assert feedback.shown[1] == (Outcome.ADMIT, Reason.EXIT)  # an exit shows ADMIT's green


def test_an_exit_read_twice_is_a_repeat_of_the_exit_never_an_entry(stadium: Path, issuer: IssuerKey,
                                                                     home: Path) -> None:
    factory = MockFactory()
    pin = factory.pin(PIN)
    config = both_gate(home, **{"gate.exit_button": PIN, "scanner.holdoff": 3600})
    a = mint(issuer, "a1")
    decisions = scan(config, [a, lambda: (pin.drive_low(), pin.drive_high()), a, a], factory)
    assert [d.reason for d in decisions] == [Reason.NONE, Reason.EXIT]  # the third read answered as a repeat
    assert not inside(config, "a1")


def test_a_both_gate_without_a_button_admits_entries_and_says_so_once(
        stadium: Path, issuer: IssuerKey, home: Path) -> None:
    a = mint(issuer, "a1")
    result = subprocess.run([sys.executable, "-m", "gate.cli", "run", "--camera", "wedge", "--source", "-",
                             "--feedback", "console", *(x for kv in LIST for x in ("--set", kv)),
                             "--set", "scanner.holdoff=0"], input=f"{a}\n{a}\n", capture_output=True, text=True,
                            env=gate_env(home), cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line[:1] in "✔✖"] == [
        "✔ ADMIT", "✖ ALREADY_USED (already_inside)"]
    assert result.stderr.count("without an exit button or exit scanner (gate.exit_button, scanner.exit_source): "
                               "every scan is an entry") == 1
    assert inside(both_gate(home), "a1")


def test_an_in_gate_ignores_the_button_and_never_opens_its_pin(stadium: Path, issuer: IssuerKey, home: Path) -> None:
    """Here no pin library is needed: the pin is not opened (off a Pi, opening it would refuse to start)."""
    result = subprocess.run([sys.executable, "-m", "gate.cli", "run", "--camera", "wedge", "--source", "-",
                             "--feedback", "console", "--set", LIST[0], "--set", "gate.direction=in",
                             "--set", f"gate.exit_button={PIN}"], input=f"{mint(issuer, 'a1')}\n",
                            capture_output=True, text=True, env=gate_env(home, GPIOZERO_PIN_FACTORY="no-such"),
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "✔ ADMIT" in result.stdout.splitlines()
    assert result.stderr.count("gate.exit_button = 5 is ignored") == 1 and "going in" in result.stderr


def test_a_both_gate_with_a_button_and_no_pin_library_refuses_to_start_in_one_line(
        stadium: Path, issuer: IssuerKey, home: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gate.cli", "run", "--camera", "wedge", "--source", "-",
                             "--feedback", "console", *(x for kv in LIST for x in ("--set", kv)),
                             "--set", f"gate.exit_button={PIN}"], input="", capture_output=True, text=True,
                            env=gate_env(home, GPIOZERO_PIN_FACTORY="no-such"), cwd=ROOT, timeout=120)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("gate: error: gpiozero found no GPIO pin library for the exit button") and \
        "leave gate.exit_button out" in line, line


# -- the second input: an exit scanner (scanner.exit_source) ----------------------------------------------
def test_every_scan_of_the_exit_scanner_is_an_exit_and_the_cameras_are_entries(
        stadium: Path, issuer: IssuerKey, home: Path) -> None:
    config = both_gate(home, **{"scanner.exit_source": "/dev/input/by-id/exit-kbd"})
    a, b = mint(issuer, "a1"), mint(issuer, "b1")
    entered, exited = threading.Event(), threading.Event()
    # the gate's scanner: a1 and b1 in; the exit scanner (once both are in): a1 out; then b1 in again
    gate_side = Script([a, b, entered.set, lambda: exited.wait(10), b])
    exit_side = Script([lambda: entered.wait(10), a, lambda: time.sleep(0.3), exited.set])
    decisions: list[Decision] = []
    with gate_session(config) as decider:
        loop = build_loop(config, lambda: gate_side, open_decoder("fake"), RecordingFeedback(), decider,
                          on_decision=decisions.append, exit_camera=lambda: exit_side)
        loop.run()
    assert [(d.ticket_id, d.reason.value or d.outcome.value) for d in decisions] == [
        ("a1", "ADMIT"), ("b1", "ADMIT"), ("a1", "exit"), ("b1", "already_inside")]
    assert not inside(config, "a1") and inside(config, "b1")


def test_an_exit_scanner_on_stdin_beside_a_camera_through_gate_run(
        gate_cli: Cli, stadium: Path, issuer: IssuerKey, home: Path) -> None:
    a = mint(issuer, "a1")
    assert gate_cli("check", "--set", LIST[0], "--set", LIST[1], a).returncode == 0  # in, by the gate's own scan
    proc = subprocess.Popen([sys.executable, "-m", "gate.cli", "run", "--camera", "files", "--source",
                             str(ROOT / "images" / "empty.png"), "--feedback", "console",
                             *(x for kv in (*LIST, "camera.loops=0", "camera.fps=20", "scanner.exit_source=-")
                               for x in ("--set", kv))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=gate_env(home), cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        proc.stdin.write(f"{a}\n")
        proc.stdin.flush()
        line = lines.get(timeout=60)  # the first thing it says is the exit scanner's decision
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert line.strip() == "✔ ADMIT (exit)", err
    assert proc.returncode == 0, err
    assert err.count("exit scanner -: every scan it reads is an exit") == 1 and "without an exit" not in err
    assert not inside(both_gate(home), "a1")


def test_an_exit_scanner_on_the_stdin_the_camera_reads_refuses_to_start(
        gate_cli: Cli, stadium: Path, home: Path) -> None:
    result = gate_cli("run", "--camera", "wedge", "--source", "-", "--feedback", "console", "--set", LIST[0],
                      "--set", LIST[1], "--set", "scanner.exit_source=-")
    assert result.returncode == 2 and "reads stdin already" in result.stderr and "Traceback" not in result.stderr


def test_an_in_gate_ignores_the_exit_scanner(caplog: pytest.LogCaptureFixture, stadium: Path, home: Path) -> None:
    config = load_config(home, env={}, overrides={"gate.list": LIST[0].split("=")[1], "gate.direction": "in",
                                                  "scanner.exit_source": "/dev/input/event9"})
    assert exit_scanner(config) is None
    assert "scanner.exit_source = '/dev/input/event9' is ignored" in caplog.text and "going in" in caplog.text


def test_the_exit_scanner_never_feeds_the_watchdog(make_decider: Callable[..., Decider], issuer: IssuerKey) -> None:
    """The systemd watchdog is proof that the camera's loop is not hung: the exit scanner's frames prove nothing."""
    done, alive = threading.Event(), []
    loop = ScanLoop(lambda: Script([lambda: done.wait(10), mint(issuer, "c1")]), open_decoder("fake"),
                    make_decider(issuer).decide, RecordingFeedback(), on_alive=lambda: alive.append(1),
                    exit_camera=lambda: Script([mint(issuer, "e1"), mint(issuer, "e2"), done.set]))
    stats = loop.run()
    assert (stats.frames, len(alive)) == (3, 1)
