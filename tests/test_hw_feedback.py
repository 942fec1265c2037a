"""Feedback: gpio pin sequences on gpiozero's MockFactory, console, recording."""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import ROOT
from gpiozero.pins.mock import MockFactory

from gate.outcomes import Outcome, Reason
from hardware import (
    PATTERNS,
    BackendUnavailable,
    FeedbackError,
    Pattern,
    Pins,
    RecordingFeedback,
    UnknownBackend,
    open_feedback,
    pattern_table,
)
from hardware.feedback.gpio import GpioFeedback
from hardware.feedback.patterns import check_patterns, repeat_pattern

PINS = Pins(green=17, red=27, amber=22, buzzer=23, relay=24)
CHANNEL_PINS = {"green": 17, "red": 27, "amber": 22, "buzzer": 23, "relay": 24}


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def gpio(factory: MockFactory) -> Iterator[GpioFeedback]:
    # 1/1000 of the real durations: a pattern plays in about 2 ms.
    feedback = GpioFeedback(PINS, pin_factory=factory, time_scale=0.001)
    yield feedback
    feedback.close()


def states(factory: MockFactory, channel: str) -> list[bool]:
    return [s.state for s in factory.pin(CHANNEL_PINS[channel]).states]


def expected_states(pattern: Pattern, channel: str) -> list[bool]:
    """The switches a pattern's pulses make on one channel, from rest (off)."""
    out = [False]
    for _on, _off in getattr(pattern, channel):
        out += [True, False]
    return out


@pytest.mark.parametrize("outcome", list(Outcome))
def test_each_outcome_plays_its_pattern_on_the_pins(gpio: GpioFeedback, factory: MockFactory, outcome: Outcome) -> None:
    gpio.show(outcome, Reason.NONE)
    assert gpio.wait_idle(timeout=5)
    pattern = PATTERNS[outcome]
    for channel in ("green", "red", "amber", "buzzer"):
        assert states(factory, channel) == expected_states(pattern, channel), channel
    assert states(factory, "relay") == ([False, True, False] if outcome is Outcome.ADMIT else [False])
    assert gpio.errors == 0


def test_the_patterns_staff_learn(gpio: GpioFeedback, factory: MockFactory) -> None:
    # Spelled out once, so a change to PATTERNS that ops would notice fails here.
    expected = {
        Outcome.ADMIT: {"green": 1, "red": 0, "amber": 0, "buzzer": 1, "relay": 1},
        Outcome.ALREADY_USED: {"green": 0, "red": 1, "amber": 0, "buzzer": 2, "relay": 0},
        Outcome.INVALID: {"green": 0, "red": 1, "amber": 0, "buzzer": 1, "relay": 0},
        Outcome.REVOKED: {"green": 0, "red": 5, "amber": 0, "buzzer": 3, "relay": 0},
        Outcome.FAULT: {"green": 0, "red": 1, "amber": 5, "buzzer": 1, "relay": 0},
    }
    for outcome, pulses in expected.items():
        for pin in CHANNEL_PINS.values():
            factory.pin(pin).clear_states()
        gpio.show(outcome)
        assert gpio.wait_idle(timeout=5)
        counted = {channel: states(factory, channel).count(True) for channel in CHANNEL_PINS}
        assert counted == pulses, outcome
    assert PATTERNS[Outcome.INVALID].buzzer[0][0] >= 3 * PATTERNS[Outcome.ADMIT].buzzer[0][0]  # "long" beep


def test_relay_never_fires_for_a_rejection(gpio: GpioFeedback, factory: MockFactory) -> None:
    for outcome in [o for o in Outcome if o is not Outcome.ADMIT] * 3:
        gpio.show(outcome, Reason.BAD_SIGNATURE)
        gpio.fault()
    assert gpio.wait_idle(timeout=10)
    factory.pin(24).assert_states([False])
    assert len(factory.pin(24).states) == 1


@pytest.mark.parametrize("outcome", list(Outcome))
def test_a_repeat_shows_the_outcomes_light_with_three_ticks_and_never_the_relay(
        gpio: GpioFeedback, factory: MockFactory, outcome: Outcome) -> None:
    gpio.repeat(outcome)
    assert gpio.wait_idle(timeout=5)
    pattern = PATTERNS[outcome]
    for channel in ("green", "red", "amber"):
        assert states(factory, channel) == expected_states(pattern, channel), channel
    assert states(factory, "buzzer") == [False] + [True, False] * 3
    assert pattern.buzzer != repeat_pattern(pattern).buzzer  # heard apart from every outcome's own sound
    assert states(factory, "relay") == [False]  # nobody new was admitted, whatever the first answer


def test_a_table_that_pulses_the_relay_on_a_rejection_is_refused(factory: MockFactory) -> None:
    bad = dict(PATTERNS)
    bad[Outcome.INVALID] = Pattern("red and open the door?!", red=((1.0, 0.0),), relay=1.0)
    with pytest.raises(FeedbackError, match="only pulse on ADMIT"):
        check_patterns(bad)
    with pytest.raises(FeedbackError, match="only pulse on ADMIT"):
        GpioFeedback(PINS, pin_factory=factory, patterns=bad)
    incomplete = {Outcome.ADMIT: PATTERNS[Outcome.ADMIT]}
    with pytest.raises(FeedbackError, match="missing"):
        check_patterns(incomplete)


def wait_for(condition: Callable[[], bool], limit: float = 5.0) -> None:
    # Polls for a recorded state change; the bound only stops a broken test
    # from hanging, nothing is asserted about timing.
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "state never reached"
        time.sleep(0.001)


def test_a_new_show_cuts_the_running_pattern_short(factory: MockFactory) -> None:
    with GpioFeedback(PINS, pin_factory=factory, time_scale=1.0) as gpio:  # real durations
        gpio.show(Outcome.REVOKED)
        wait_for(lambda: True in states(factory, "red"))
        gpio.show(Outcome.ADMIT)
        assert gpio.wait_idle(timeout=5)
        red = states(factory, "red")
        assert red.count(True) < 5  # REVOKED's five blinks never finished
        assert red[-1] is False
        assert states(factory, "green") == [False, True, False]
        assert states(factory, "relay") == [False, True, False]


def test_a_relay_pulse_runs_its_full_time_through_a_new_show(factory: MockFactory) -> None:
    with GpioFeedback(PINS, pin_factory=factory, time_scale=0.5) as gpio:  # relay held 0.5 s
        gpio.show(Outcome.ADMIT)
        wait_for(lambda: states(factory, "relay")[-1])
        gpio.show(Outcome.INVALID)  # the next person, while the door is still open
        wait_for(lambda: True in states(factory, "red"))
        assert states(factory, "relay") == [False, True]  # still open
        assert gpio.wait_idle(timeout=5)
        assert states(factory, "relay") == [False, True, False]


def test_offline_is_amber_between_patterns(gpio: GpioFeedback, factory: MockFactory) -> None:
    gpio.offline(True)
    assert states(factory, "amber") == [False, True]
    gpio.show(Outcome.ADMIT)
    assert gpio.wait_idle(timeout=5)
    assert states(factory, "amber")[-1] is True
    gpio.fault()  # blinks amber, then back to the offline state
    assert gpio.wait_idle(timeout=5)
    assert states(factory, "amber")[-1] is True
    assert states(factory, "amber").count(True) > 2
    gpio.offline(False)
    assert states(factory, "amber")[-1] is False


def test_close_leaves_every_output_off(factory: MockFactory) -> None:
    gpio = GpioFeedback(PINS, pin_factory=factory, time_scale=1.0)
    gpio.offline(True)
    gpio.show(Outcome.ADMIT)
    wait_for(lambda: states(factory, "relay")[-1])
    gpio.close()
    gpio.close()
    for channel in CHANNEL_PINS:
        assert states(factory, channel)[-1] is False, channel


def test_optional_outputs_may_be_absent(factory: MockFactory) -> None:
    with GpioFeedback(Pins(amber=None, relay=None), pin_factory=factory, time_scale=0.001) as gpio:
        gpio.offline(True)
        gpio.show(Outcome.ADMIT)
        gpio.show(Outcome.FAULT)
        assert gpio.wait_idle(timeout=5)
        assert set(gpio.devices) == {"green", "red", "buzzer"}
        assert gpio.errors == 0


def test_active_low_relay_rests_high(factory: MockFactory) -> None:
    with GpioFeedback(Pins(relay=24, relay_active_high=False), pin_factory=factory, time_scale=0.001) as gpio:
        assert factory.pin(24).state is True  # off, for a board that switches on low
        gpio.show(Outcome.ADMIT)
        assert gpio.wait_idle(timeout=5)
        assert [s.state for s in factory.pin(24).states][-2:] == [False, True]


def test_pins_in_use_are_a_feedback_error(factory: MockFactory) -> None:
    with pytest.raises(FeedbackError, match="cannot set up"):
        GpioFeedback(Pins(green=17, red=17), pin_factory=factory)


def test_no_pin_library_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with pytest.raises(BackendUnavailable, match="python3-lgpio"):
        open_feedback("gpio")


def test_console_prints_one_line_per_outcome() -> None:
    out = io.StringIO()
    console = open_feedback("console", stream=out)
    console.show(Outcome.ADMIT)
    console.show(Outcome.ALREADY_USED, Reason.ALREADY_USED)
    console.fault()
    console.repeat(Outcome.ADMIT)
    console.offline(True)
    console.offline(True)
    console.offline(False)
    assert out.getvalue().splitlines() == [
        "✔ ADMIT",
        "✖ ALREADY_USED (already_used)",
        "⚠ FAULT",
        "↻ ADMIT, scanned again",
        "● offline",
        "● online",
    ]


def test_console_colours_when_asked() -> None:
    out = io.StringIO()
    open_feedback("console", stream=out, color=True).show(Outcome.INVALID, Reason.EXPIRED)
    assert out.getvalue() == "\033[31m✖ INVALID (expired)\033[0m\n"


def test_recording_feedback_and_its_assertion() -> None:
    with RecordingFeedback() as fb:
        fb.show(Outcome.ADMIT)
        fb.offline(True)
        fb.show(Outcome.ALREADY_USED, Reason.ALREADY_USED)
        fb.fault()
    fb.assert_shown([Outcome.ADMIT, (Outcome.ALREADY_USED, Reason.ALREADY_USED), Outcome.FAULT])
    assert fb.events[1] == ("offline", True)
    assert fb.events[-1] == ("close",)
    with pytest.raises(AssertionError, match="expected"):
        fb.assert_shown([Outcome.ADMIT])
    with pytest.raises(AssertionError):
        fb.assert_shown([Outcome.ADMIT, (Outcome.ALREADY_USED, Reason.REVOKED), Outcome.FAULT])


def test_pattern_table_lists_every_outcome() -> None:
    table = pattern_table()
    for outcome in Outcome:
        assert f"| {outcome} | {PATTERNS[outcome].look} |" in table
    assert "offline" in table


def test_open_feedback_names_valid_kinds() -> None:
    with pytest.raises(UnknownBackend, match="gpio, console, recording"):
        open_feedback("lcd")


def test_gate_run_off_a_pi_says_feedback_console_in_one_line(gate_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """Off a Pi gpiozero tries four pin libraries and warns about each: one error line, pointing to the console."""
    result = gate_cli("run", "--camera", "files", "--source", str(ROOT / "images" / "empty.png"))
    assert "Warning" not in result.stderr and "warnings.warn" not in result.stderr, result.stderr
    if result.returncode:  # no pin library here (not a Pi): the one line says what to do
        [line] = result.stderr.splitlines()
        assert line.startswith("gate: error: gpiozero found no GPIO pin library (lgpio: ") and \
            "`--feedback console`" in line, line
