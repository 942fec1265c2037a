"""GateClaimer: the Decider's claim step (gate.decide.Claimer) over MQTT.

For one verified scan, in this order:

1. The local set answers with no round trip: REVOKED, ALREADY_USED (with
   where and when), or a replayed scan id's ADMIT.
2. Not connected, or the arbiter known to be gone: the offline policy decides
   at once (admit-if-unseen: a provisional ADMIT queued ``late``; deny:
   FAULT/offline).
3. Otherwise the claim intent is written durably to the outbox, the claim is
   published and answered within the budget: won -> ADMIT, lost ->
   ALREADY_USED with the first gate and time, revoked -> REVOKED.
4. No usable answer within the budget: the offline policy decides, and the
   outbox entry becomes ``late`` (admitted) or ``release`` (not admitted).

Nothing is ADMIT without its durable redemption row; a StoreError reaches the
Decider (FAULT/store_fault) and marks the gate's status "fault".
"""

from __future__ import annotations

from collections.abc import Callable

from gate.exc import StoreError
from gate.ledger import SETTLING, Ledger, OfflinePolicy
from gate.store import Redemption, Scan
from sync.gateside.session import GateSync
from sync.gateside.terms import claim_of, ruling_of
from sync.wire import Answer

#: called between the arbiter's answer and the local commit (tests inject a crash there)
AnswerHook = Callable[[Scan, Answer | None], None]


class GateClaimer:
    """Implements gate.decide.Claimer under an offline policy (admit-if-unseen or deny)."""

    def __init__(self, ledger: Ledger, sync: GateSync, policy: OfflinePolicy | str, *,
                 after_answer: AnswerHook | None = None) -> None:
        self.ledger = ledger
        self.sync = sync
        self.policy = OfflinePolicy(policy)
        self.after_answer = after_answer

    def redeem(self, scan: Scan) -> Redemption:
        try:
            redemption = self._redeem(scan)
        except StoreError as exc:
            self.sync.note_fault(str(exc))
            raise
        self.sync.note_fault("")
        return redemption

    def _redeem(self, scan: Scan) -> Redemption:
        if not self.sync.should_claim():
            redemption = self.ledger.offline(scan, self.policy)
            self._queued(redemption)
            return redemption
        early = self.ledger.begin(scan)
        if early is not None:
            return early
        answer = self.sync.claim(claim_of(scan))
        if self.after_answer is not None:
            self.after_answer(scan, answer)
        if answer is not None and answer.answer in SETTLING:
            return self.ledger.settle(scan, ruling_of(answer))
        why = "no answer from the arbiter in time" if answer is None else f"the arbiter answered {answer.answer!r}"
        redemption = self.ledger.abandon(scan, self.policy, why)
        self.sync.counters.add("offline_decisions")
        self.sync.kick()
        return redemption

    def _queued(self, redemption: Redemption) -> None:
        self.sync.counters.add("offline_decisions")
        if redemption.provisional:
            self.sync.kick()
