"""What each outcome looks and sounds like, as data, and the player for it.

`PATTERNS` is the one place the patterns are defined; docs/hardware.md and
the README show it (`pattern_table()` renders it as Markdown).  The player is
independent of GPIO: it drives named channels through a callable, so the
gpio backend and its tests share it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from gate.outcomes import Outcome
from hardware.exc import FeedbackError

__all__ = ["CHANNELS", "PATTERNS", "REPEAT_LOOK", "Pattern", "PatternPlayer", "pattern_table", "repeat_pattern"]

_log = logging.getLogger(__name__)

#: (seconds on, seconds off after it)
Pulse = tuple[float, float]

#: The channels a pattern drives, besides the relay.
CHANNELS = ("green", "red", "amber", "buzzer")


def _repeat(on: float, off: float, n: int) -> tuple[Pulse, ...]:
    # The last pulse has no trailing gap, so the pattern ends when it goes dark.
    return tuple((on, off if i < n - 1 else 0.0) for i in range(n))


@dataclass(frozen=True)
class Pattern:
    """Pulses per channel, played from the same start; ``relay`` is how long
    the relay is held on (0: untouched).  ``look`` says it in words for
    people: it is what the docs show ops staff."""

    look: str
    green: tuple[Pulse, ...] = ()
    red: tuple[Pulse, ...] = ()
    amber: tuple[Pulse, ...] = ()
    buzzer: tuple[Pulse, ...] = ()
    relay: float = 0.0

    def events(self, scale: float = 1.0) -> list[tuple[float, str, bool]]:
        """(time from start, channel, on) for every switch, in time order."""
        out: list[tuple[float, str, bool]] = []
        for channel in CHANNELS:
            t = 0.0
            for on, off in getattr(self, channel):
                out.append((t, channel, True))
                t += on * scale
                out.append((t, channel, False))
                t += off * scale
        # Stable sort: a channel's own switches keep their order on a tie.
        return sorted(out, key=lambda e: e[0])


#: One pattern per outcome.  Red means "stop", green "go", amber "the gate
#: needs attention"; the buzzer makes the difference audible to staff who are
#: looking at the person, not the box.
PATTERNS: Mapping[Outcome, Pattern] = {
    Outcome.ADMIT: Pattern(
        "green 1 s, one short beep, relay pulse 1 s", green=((1.0, 0.0),), buzzer=((0.08, 0.0),), relay=1.0
    ),
    Outcome.ALREADY_USED: Pattern("red 1.5 s, two short beeps", red=((1.5, 0.0),), buzzer=_repeat(0.1, 0.1, 2)),
    Outcome.INVALID: Pattern("red 1.5 s, one long beep", red=((1.5, 0.0),), buzzer=((0.6, 0.0),)),
    Outcome.REVOKED: Pattern(
        "red blinking 1.5 s, three short beeps", red=_repeat(0.15, 0.15, 5), buzzer=_repeat(0.1, 0.1, 3)
    ),
    Outcome.FAULT: Pattern(
        "amber blinking 2 s with red on, one long beep",
        red=((2.0, 0.0),),
        amber=_repeat(0.2, 0.2, 5),
        buzzer=((1.0, 0.0),),
    ),
}

#: The standing offline indication, shown between patterns.
OFFLINE_LOOK = "amber steady on"

#: The same scan again within the holdoff (a wedge scanner's double read): the
#: light of the answer a moment ago, and three quick ticks that no outcome
#: uses, so it is heard as "that one again", never as a second admission.
REPEAT_TICKS = _repeat(0.03, 0.07, 3)
REPEAT_LOOK = "the same light as the first answer, three quick ticks, no relay"


def repeat_pattern(pattern: Pattern) -> Pattern:
    """`pattern`'s lights with the repeat ticks for its sound and no relay pulse."""
    return replace(pattern, look=REPEAT_LOOK, buzzer=REPEAT_TICKS, relay=0.0)


def check_patterns(patterns: Mapping[Outcome, Pattern]) -> None:
    """Refuse a table that lacks an outcome or pulses the relay for anything
    but ADMIT: a door that opens on a rejected ticket is the one failure a
    gate must never have."""
    missing = set(Outcome) - set(patterns)
    if missing:
        raise FeedbackError(f"feedback patterns missing for {', '.join(sorted(missing))}")
    for outcome, pattern in patterns.items():
        if pattern.relay and outcome is not Outcome.ADMIT:
            raise FeedbackError(f"the relay may only pulse on ADMIT, not on {outcome}")


check_patterns(PATTERNS)


def pattern_table(patterns: Mapping[Outcome, Pattern] = PATTERNS) -> str:
    """The patterns as a Markdown table, for the docs."""
    rows = ["| outcome | what staff see and hear |", "| --- | --- |"]
    rows += [f"| {outcome} | {pattern.look} |" for outcome, pattern in patterns.items()]
    rows.append(f"| (the same code again within the holdoff, wedge) | {REPEAT_LOOK} |")
    rows.append(f"| (offline) | {OFFLINE_LOOK}, between patterns |")
    return "\n".join(rows)


@dataclass
class _State:
    events: list[tuple[float, str, bool]] = field(default_factory=list)
    started: float = 0.0
    relay_off_at: float | None = None
    pending: Pattern | None = None
    offline: bool = False
    closing: bool = False
    busy: bool = False


class PatternPlayer:
    """Plays patterns on one background thread through ``drive(channel, on)``.

    A new pattern cuts the running one short (channels back to rest first),
    except the relay: a relay pulse always runs its full time, so a person
    admitted a moment ago is not locked out by the next scan.  ``scale``
    multiplies every duration (tests use a small one).  A failing ``drive``
    is counted in ``errors`` and logged; the player keeps going, because the
    other outputs may still work.
    """

    def __init__(self, drive: Callable[[str, bool], None], *, scale: float = 1.0) -> None:
        self._drive = drive
        self._scale = scale
        self._state = _State()
        self._cond = threading.Condition()
        self._outputs: dict[str, bool] = {}
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="qrgate-feedback", daemon=True)
        self._thread.start()

    def play(self, pattern: Pattern, *, relay: bool) -> None:
        """Start `pattern`; its relay pulse only if `relay` (the caller's ADMIT)."""
        with self._cond:
            self._state.pending = pattern if relay else _without_relay(pattern)
            self._state.busy = True
            self._cond.notify_all()

    def set_offline(self, offline: bool) -> None:
        with self._cond:
            self._state.offline = offline
            # A running pattern that blinks amber restores it when it ends.
            if not any(channel == "amber" for _t, channel, _on in self._state.events):
                self._set("amber", offline)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no pattern or relay pulse is running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._state.busy, timeout)

    def close(self) -> None:
        with self._cond:
            self._state.closing = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        s = self._state
        with self._cond:
            while not s.closing:
                now = time.monotonic()
                if s.pending is not None:
                    self._start(s.pending, now)
                    s.pending = None
                while s.events and s.started + s.events[0][0] <= now:
                    _t, channel, on = s.events.pop(0)
                    self._set(channel, on)
                    if not s.events:
                        self._rest()
                if s.relay_off_at is not None and s.relay_off_at <= now:
                    self._set("relay", False)
                    s.relay_off_at = None
                due = [t for t in (s.started + s.events[0][0] if s.events else None, s.relay_off_at) if t is not None]
                s.busy = bool(due)
                if not s.busy:
                    self._cond.notify_all()
                self._cond.wait(max(0.0, min(due) - time.monotonic()) if due else None)
            s.events = []
            s.offline = False  # closed means dark, amber included
            self._rest()
            self._set("relay", False)
            s.busy = False
            self._cond.notify_all()

    def _start(self, pattern: Pattern, now: float) -> None:
        self._rest()
        self._state.events = pattern.events(self._scale)
        self._state.started = now
        if pattern.relay:
            self._set("relay", True)
            self._state.relay_off_at = max(self._state.relay_off_at or 0.0, now + pattern.relay * self._scale)

    def _rest(self) -> None:
        for channel in CHANNELS:
            self._set(channel, channel == "amber" and self._state.offline)

    def _set(self, channel: str, on: bool) -> None:
        if self._outputs.get(channel) == on:
            return
        try:
            self._drive(channel, on)
        except FeedbackError as exc:
            self.errors += 1
            _log.error("feedback output %s failed (%d errors so far): %s", channel, self.errors, exc)
            return
        self._outputs[channel] = on


def _without_relay(pattern: Pattern) -> Pattern:
    return replace(pattern, relay=0.0)
