"""The decision core: ticket text in, a durable Decision out.

`Decider.decide` is the one path that `gate check`, the scan daemon and the
demo share.  Nothing is ADMIT unless its redemption row has been committed
durably first; a store error denies with FAULT/store_fault (fail closed).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gate.exc import StoreError
from gate.outcomes import Outcome, Reason
from gate.store import FirstUse, Redemption, Scan, Store
from gate.verify import Verdict, Verifier

if TYPE_CHECKING:
    from gate.admission import Direction
    from gate.checkin import CheckinGate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What happened to one scan; `outcome` and `reason` are stable codes."""

    outcome: Outcome
    reason: Reason
    scan_id: str
    gate_id: str
    at: float
    event: str | None = None
    ticket_id: str | None = None
    seat: str | None = None
    generation: int = 0
    first_gate: str | None = None
    first_at: float | None = None
    provisional: bool = False
    detail: str = ""

    @property
    def admitted(self) -> bool:
        return self.outcome is Outcome.ADMIT

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = dict(vars(self))  # every field is immutable: no deep copy (asdict's) needed
        d["outcome"], d["reason"] = self.outcome.value, self.reason.value
        return d


def new_scan_id() -> str:
    """A new scan's id: 32 hex digits in the UUIDv7 layout (48 bits of Unix milliseconds, then 74 random bits).
    Random enough never to repeat, and in time order, so every table and index keyed by scan id (the audit's
    replay index here, the arbiter's scans) grows at its end instead of splitting pages all over the tree."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 \
        | 0b10 << 62 | rand & ((1 << 62) - 1)
    return f"{value:032x}"


class Claimer(Protocol):
    """The claim step: spend a verified scan's ticket once across gates.

    `redeem` keeps the contract of `Store.redeem`: an ADMIT is durable in the
    local store before it returns, storage faults raise StoreError, and it may
    also answer FAULT with a reason.  `sync.GateClaimer` claims at the arbiter
    over MQTT; a Decider without a claimer decides from its local store alone.
    """

    def redeem(self, scan: Scan) -> Redemption: ...


class OwnershipLookup(Protocol):
    """The online check (design note 002, steps 35-39): the most recent ownership generation of a ticket,
    from the box office.

    `current` answers the generation the box office holds now, or None when it does not know the ticket
    or does not answer in time; it never raises and waits a bounded time (the gate then decides offline,
    from the generations it has heard of).  `gate.ownership.gatecheck.OnlineOwnership` asks over HTTP.
    """

    def current(self, event: str, ticket_id: str) -> int | None: ...


#: told of every decision once it is final (sync.dashboard.GateFeed publishes it); must not raise or block
DecisionListener = Callable[[Decision], None]


class Decider:
    """Verify offline, then spend the ticket once in the local store."""

    def __init__(
        self,
        verifier: Verifier,
        store: Store,
        gate_id: str,
        *,
        clock: Callable[[], float] = time.time,
        claimer: Claimer | None = None,
        on_decision: DecisionListener | None = None,
        checkin: CheckinGate | None = None,
        ownership: OwnershipLookup | None = None,
    ) -> None:
        self.verifier = verifier
        self.store = store
        self.gate_id = gate_id
        self.clock = clock
        self.claimer = claimer
        self.on_decision = on_decision
        #: the check-in list this gate serves (gate/checkin.py); None: today's single use
        self.checkin = checkin
        #: the online check of a holder ticket's generation at the box office; None: the generation stream alone
        self.ownership = ownership

    def decide(self, text: str, *, scan_id: str | None = None, now: float | None = None,
               direction: Direction | None = None) -> Decision:
        """Decide one scan.  Never raises for any input text; never ADMIT without a durable record.

        `direction` is the way of this scan at a "both" gate of a check-in list (default in)."""
        decision = self._decide(text, scan_id, now, direction)
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    def _decide(self, text: str, scan_id: str | None, now: float | None, direction: Direction | None) -> Decision:
        scan_id = scan_id or new_scan_id()
        at = self.clock() if now is None else now
        verdict = self.verifier.verify(text, at)
        ticket = verdict.ticket
        scan = Scan(scan_id, self.gate_id, at,
                    ticket.event if ticket else None, ticket.ticket_id if ticket else None,
                    ticket.generation if ticket else 0, text if verdict.ok else "")
        if not verdict.ok:
            return self._reject(scan, verdict)
        try:
            if self.ownership is not None and ticket is not None and ticket.generation > 0:
                self._learn_ownership(scan)
            if self.checkin is not None and ticket is not None:
                redemption = self.checkin.redeem(self.store, scan, ticket, direction)
            else:
                redemption = (self.claimer or self.store).redeem(scan)
        except StoreError as exc:
            return self._fault(scan, verdict, exc)
        except Exception as exc:  # a bug in the claim path: deny (fail closed) and say so, never a traceback
            log.exception("scan %s denied: the claim path failed", scan.scan_id)
            return self._fault(scan, verdict, StoreError(f"unexpected error: {exc}"))
        return self._decision(scan, verdict, redemption.outcome, redemption.first, redemption.reason,
                              redemption.detail, provisional=redemption.provisional)

    def _learn_ownership(self, scan: Scan) -> None:
        """Ask the box office for the ticket's current generation and record a newer one, so that the redemption
        below answers an older code REVOKED superseded (as if the generation stream had brought it)."""
        assert self.ownership is not None and scan.event is not None and scan.ticket_id is not None
        current = self.ownership.current(scan.event, scan.ticket_id)
        if current is not None and current > scan.generation:
            self.store.supersede(scan.event, scan.ticket_id, current, at=scan.at, by="boxoffice (online check)")

    def _reject(self, scan: Scan, verdict: Verdict) -> Decision:
        decision = self._decision(scan, verdict, Outcome.INVALID, None, verdict.reason, verdict.detail)
        try:
            self.store.record(scan, decision.outcome, decision.reason, decision.detail)
        except StoreError as exc:
            # Still INVALID (it is denied either way); the missing audit row is the fault.
            log.error("scan %s not audited: %s", scan.scan_id, exc)
        return decision

    def _fault(self, scan: Scan, verdict: Verdict, exc: StoreError) -> Decision:
        log.error("store fault, scan %s denied: %s", scan.scan_id, exc)
        return self._decision(scan, verdict, Outcome.FAULT, None, Reason.STORE_FAULT, str(exc))

    def _decision(
        self,
        scan: Scan,
        verdict: Verdict,
        outcome: Outcome,
        first: FirstUse | None,
        reason: Reason | None = None,
        detail: str = "",
        *,
        provisional: bool = False,
    ) -> Decision:
        if reason is None:
            reason = {Outcome.ALREADY_USED: Reason.ALREADY_USED, Outcome.REVOKED: Reason.REVOKED}.get(
                outcome, Reason.NONE)
        ticket = verdict.ticket
        return Decision(
            outcome=outcome, reason=reason, scan_id=scan.scan_id, gate_id=scan.gate_id, at=scan.at,
            event=scan.event, ticket_id=scan.ticket_id, seat=ticket.seat if ticket else None,
            generation=scan.generation,
            first_gate=first.gate_id if first else None, first_at=first.at if first else None,
            provisional=outcome is Outcome.ADMIT and (provisional or bool(first and first.provisional)),
            detail=detail,
        )
