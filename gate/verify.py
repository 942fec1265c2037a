"""Offline verification: ticket text to a verified Ticket or a stable reason."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from gate import holder
from gate.clock import TimeTrust
from gate.exc import TicketFormatError
from gate.keys import Keyring
from gate.outcomes import Reason
from gate.ticket import Ticket, parse


@dataclass(frozen=True)
class Verdict:
    """The result of checking a ticket offline: `reason` is NONE when it is genuine and in date."""

    reason: Reason
    ticket: Ticket | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is Reason.NONE


class Verifier:
    """Checks signature, key, event and validity window; never raises for any text.

    `events` empty means any event for which the keyring holds a key.
    `skew` (seconds) widens the validity window: gates have no real-time clock.
    `code_skew` (slots) is the clock error tolerated for a holder's rotating
    code (gate/holder.py): a code of an older slot is a screenshot.
    `time_trust` (gate/clock.py) may refuse windowed tickets while this
    gate has no trustworthy time.
    """

    def __init__(
        self,
        keyring: Keyring,
        events: Collection[str] = (),
        *,
        skew: float = 120.0,
        clock: Callable[[], float] | None = None,
        code_skew: int = holder.DEFAULT_SKEW,
        time_trust: TimeTrust | None = None,
    ) -> None:
        self.keyring = keyring
        self.events = frozenset(events)
        self.skew = skew
        self.code_skew = code_skew
        self.clock = clock or time.time
        self.time_trust = time_trust

    def verify(self, text: str, now: float | None = None) -> Verdict:
        try:
            text, code = holder.split(text)  # "QH:" holder codes: the signed text and the rotating part
            signed = parse(text)
        except TicketFormatError as exc:
            return Verdict(Reason.MALFORMED, detail=str(exc))
        ticket = signed.ticket
        key = self.keyring.get(ticket.kid)
        if key is None:
            return Verdict(Reason.UNKNOWN_KEY, ticket, f"key id {ticket.kid} is not in the keyring")
        if key.retired:
            return Verdict(Reason.RETIRED_KEY, ticket, f"key id {ticket.kid} is retired")
        if key.event != ticket.event:
            return Verdict(Reason.WRONG_EVENT, ticket, f"key {key.kid} is for event {key.event!r}")
        if not key.verify(signed):
            return Verdict(Reason.BAD_SIGNATURE, ticket)
        if self.events and ticket.event not in self.events:
            return Verdict(Reason.WRONG_EVENT, ticket, f"this gate admits {', '.join(sorted(self.events))}")
        now = self.clock() if now is None else now
        if (ticket.valid_from or ticket.valid_until) and self.time_trust and self.time_trust.denies_windows():
            return Verdict(Reason.UNTRUSTED_TIME, ticket, "no trustworthy time to check its validity window "
                           "(clock not synchronised, no arbiter time; gate.untrusted_time = deny)")
        if ticket.valid_from and now + self.skew < ticket.valid_from:
            return Verdict(Reason.NOT_YET_VALID, ticket)
        if ticket.valid_until and now - self.skew > ticket.valid_until:
            return Verdict(Reason.EXPIRED, ticket)
        reason, detail = holder.check(ticket, code, now, self.code_skew, required=key.holder_only)
        return Verdict(reason, ticket, detail)
