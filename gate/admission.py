"""Deciding a scan by a check-in list: the ticket's state on the list in, a ruling and the next state out.

Pure functions on small values, so the gate's store (gate/store.py), the arbiter and the benchmarks share
one judgement.  What a caller may rely on:

* `judge` never raises for a valid list and state, and never admits what the list forbids; its reasons
  are the stable codes of gate.outcomes.Reason, its `detail` a sentence for people ("next entry allowed
  after 14:05", in the venue's time zone).
* An exit (`direction` "out") is always let through for a ticket of the list (people must be able to
  leave) and leaves the ticket outside; it never spends an entry.
* With `reentry`, an entry after an exit in the same counting period (the same venue day with
  `per_day`, else ever) is free: it spends no entry.  A second entry while inside is `already_inside`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from gate.outcomes import Outcome, Reason
from gate.passes import PassState
from gate.rules import CheckinList

Direction = Literal["in", "out"]
__all__ = ["Direction", "PassState", "Ruling", "entered", "judge"]


@dataclass(frozen=True)
class Ruling:
    """What the list says of one scan; `state` is the ticket's next state (the old one when refused)."""

    outcome: Outcome
    reason: Reason
    detail: str
    state: PassState

    @property
    def admitted(self) -> bool:
        return self.outcome is Outcome.ADMIT


def judge(lst: CheckinList, product: str, state: PassState, at: float, direction: Direction) -> Ruling:
    """The ruling of `lst` on a ticket of `product` in `state`, scanned at `at` going `direction`."""
    if not lst.admits_product(product):
        shown = product or "no product"
        return _refuse(state, Outcome.INVALID, Reason.NOT_THIS_LIST,
                       f"list {lst.name} admits {', '.join(lst.products)}, not {shown}")
    if direction == "out":
        return Ruling(Outcome.ADMIT, Reason.EXIT, "" if state.inside else "was not recorded inside",
                      replace(state, inside=False))
    if not lst.open_at(at):
        return _refuse(state, Outcome.INVALID, Reason.OUTSIDE_TIME_WINDOW,
                       f"list {lst.name} is closed at {lst.local(at)}")
    return _enter(lst, state, at)


def _enter(lst: CheckinList, state: PassState, at: float) -> Ruling:
    day = lst.day(at) if lst.per_day else ""
    spent = (state.day_entries if state.day == day else 0) if lst.per_day else state.entries
    if lst.reentry and state.inside:
        return _refuse(state, Outcome.ALREADY_USED, Reason.ALREADY_INSIDE,
                       f"already inside since {lst.local(state.last_entry)}")
    free = lst.reentry and spent > 0  # back in after an exit, in the same counting period
    if lst.entries and spent >= lst.entries and not free:
        return _exhausted(lst, state, at)
    if lst.min_gap and state.last_entry and at < state.last_entry + lst.min_gap * 60:
        return _refuse(state, Outcome.ALREADY_USED, Reason.TOO_SOON,
                       f"next entry allowed after {lst.local(state.last_entry + lst.min_gap * 60)}")
    return Ruling(Outcome.ADMIT, Reason.NONE, "re-entry" if free else "", entered(lst, state, at, free=free, day=day))


def entered(lst: CheckinList, state: PassState, at: float, *, free: bool = False, day: str | None = None) -> PassState:
    """The state after an entry at `at` (spending one unless `free`): inside, counted on the venue day
    (`day`: `lst.day(at)` if the caller has it; the time zone conversion is the costly part)."""
    if day is None:
        day = lst.day(at) if lst.per_day else ""
    spent = state.day_entries if state.day == day else 0
    counted = 0 if free else 1
    return PassState(entries=state.entries + counted, day=day, day_entries=spent + counted, inside=True,
                     last_entry=at)


def _exhausted(lst: CheckinList, state: PassState, at: float) -> Ruling:
    if lst.per_day:
        return _refuse(state, Outcome.ALREADY_USED, Reason.ENTRIES_EXHAUSTED,
                       f"{lst.entries} entr{'y' if lst.entries == 1 else 'ies'} a day used; next entry allowed "
                       f"from {lst.local(lst.next_day_starts(at))}")
    if lst.entries == 1:
        return _refuse(state, Outcome.ALREADY_USED, Reason.ALREADY_USED,
                       f"entered at {lst.local(state.last_entry)}")
    return _refuse(state, Outcome.ALREADY_USED, Reason.ENTRIES_EXHAUSTED,
                   f"all {lst.entries} entries used")


def _refuse(state: PassState, outcome: Outcome, reason: Reason, detail: str) -> Ruling:
    return Ruling(outcome, reason, detail, state)
