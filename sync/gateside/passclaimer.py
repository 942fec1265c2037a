"""PassClaimer: a check-in list gate's transitions (gate/checkin.py) decided by the arbiter over MQTT.

For one verified scan of a ticket of the list, in this order (docs/checkin-lists.md, docs/mqtt.md):

1. The local store answers with no round trip: REVOKED (revoked, superseded) or a replayed scan id.
2. Not connected, or the arbiter known to be gone: the gate's own copy of the ticket's state decides
   under the offline policy (gate/passledger.py); what it lets through is queued ``late``.
3. Otherwise the intent is written durably, the transition is published on the claim topic and the
   arbiter's ruling (its compare-and-set, sync/arbiter/passes.py) is shown: ADMIT, exit, already_inside,
   entries_exhausted, area_full, ...
4. No usable answer within the budget: the local judgement under the offline policy, and the entry
   becomes ``late`` (let through) or ``void`` (nobody was: the arbiter undoes what it may have applied).

`PassDrain` delivers the late and void entries whenever the arbiter answers (GateSync.drains).
Nothing is ADMIT without its durable journal and audit rows; a StoreError reaches the Decider
(FAULT/store_fault) and marks the gate's status "fault".
"""

from __future__ import annotations

import logging
import time

from gate.admission import Direction
from gate.exc import StoreError
from gate.ledger import OfflinePolicy
from gate.passledger import STALE_GRACE, PassLedger
from gate.rules import CheckinList
from gate.store import Redemption, Scan
from sync import wire
from sync.gateside.session import GateSync
from sync.gateside.terms import pass_ruling_of, transition_of

log = logging.getLogger(__name__)

#: the outcomes of an answer that settle a live transition (anything else: the offline policy decides)
SETTLING = ("ADMIT", "ALREADY_USED", "REVOKED", "INVALID")


class PassClaimer:
    """Implements gate.checkin.ListClaimer under an offline policy (admit-if-unseen or deny)."""

    def __init__(self, ledger: PassLedger, sync: GateSync, policy: OfflinePolicy | str) -> None:
        self.ledger = ledger
        self.sync = sync
        self.policy = OfflinePolicy(policy)

    def redeem(self, scan: Scan, lst: CheckinList, direction: Direction, product: str) -> Redemption:
        try:
            redemption = self._redeem(scan, lst, direction, product)
        except StoreError as exc:
            self.sync.note_fault(str(exc))
            raise
        self.sync.note_fault("")
        return redemption

    def _redeem(self, scan: Scan, lst: CheckinList, direction: Direction, product: str) -> Redemption:
        if not self.sync.should_claim():
            redemption = self.ledger.offline(scan, lst, direction, product, self.policy)
            self._offline()
            return redemption
        early = self.ledger.begin(scan, lst, direction, product)
        if early is not None:
            return early
        answer = self.sync.transition(transition_of(scan, lst.name, lst.version, direction, product))
        if answer is not None and answer.outcome in SETTLING:
            return self.ledger.settle(scan, lst, direction, pass_ruling_of(answer))
        why = "no answer from the arbiter in time" if answer is None else f"the arbiter answered {answer.outcome!r}"
        redemption = self.ledger.abandon(scan, lst, direction, product, self.policy, why)
        self._offline()
        return redemption

    def _offline(self) -> None:
        self.sync.counters.add("offline_decisions")
        self.sync.kick()


class PassDrain:
    """One pass over the list transitions' outbox (a GateSync drain): False if the arbiter did not answer."""

    def __init__(self, ledger: PassLedger, sync: GateSync) -> None:
        self.ledger = ledger
        self.sync = sync

    def __call__(self) -> bool:
        stale = time.time() - self.sync.budget - STALE_GRACE
        while True:
            moves = self.ledger.pending(self.sync.gate_id, self.sync.batch, stale)
            if not moves:
                return True
            entries = [transition_of(m.scan, m.list, m.version, m.direction, m.product, admitted=m.state == "late",
                                     void=m.state == "void") for m in moves]
            settled = 0
            for payload in wire.requests("transitions", entries):
                reply = self.sync.ask(payload)
                if reply is None:
                    return False
                tally = self.ledger.settle_sent([pass_ruling_of(a) for a in wire.parse_pass_answers(reply)])
                settled += sum(tally.values())
                for kind, n in tally.items():
                    self.sync.counters.add(f"pass_{kind}_settled", n)
                if tally.get("conflict"):
                    log.warning("the arbiter recorded %d offline list transitions as conflicts", tally["conflict"])
            if not settled:  # answered, but none of them settled: try again later, not in a loop
                return False
