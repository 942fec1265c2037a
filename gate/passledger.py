"""A gate serving a check-in list with an arbiter: each list transition's outbox entry, in the gate's own store.

This module owns the ``pass_outbox`` table of the gate's file (migration 7); the passes and the audit log
(which is the list scans journal) it changes only through `gate.store.StoreTx`, in the same transaction.  It speaks
in the gate's own terms (`Scan`, `CheckinList`, `PassRuling`): sync/ turns them into MQTT payloads and back
(sync/gateside/passclaimer.py).  Every method is one BEGIN IMMEDIATE transaction (synchronous=FULL).

One entry per transition sent, in the states of the single-use outbox (gate/ledger.py):

``claim``
    written (durably) BEFORE the transition is published; nobody let through yet.
``late``
    let through here without the arbiter's answer (provisional, or an exit): the transition, marked
    ``admitted``, must still reach the arbiter, which applies it as a fact (a conflict if it would have
    refused it).
``void``
    nobody was let through for this scan; the arbiter must undo whatever it applied for it and never
    apply it later.
``done``
    the arbiter's answer is recorded in ``answer``.

Crash rule (as for claims): a ``claim`` entry older than the budget plus STALE_GRACE has no waiter left, so
`pending` turns it into ``void``; a waiter settles only by a compare-and-set from ``claim``.

What a caller may rely on: an ADMIT (an entry or an exit) is durable, with its audit row, before
it returns; the arbiter's answer is what the gate shows whenever it comes within the budget; without it
the gate judges by its own copy of the ticket's state (gate/admission.py) under the offline policy, and
exits are always let through (people must be able to leave).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gate.admission import Direction, judge
from gate.ledger import STALE_GRACE, OfflinePolicy
from gate.outcomes import Outcome, Reason
from gate.passes import ListScan, PassRuling, PassState
from gate.rules import CheckinList
from gate.store import Redemption, Scan, Store, StoreTx

__all__ = ["STALE_GRACE", "Move", "PassLedger"]


@dataclass(frozen=True)
class Move:
    """One transition to (re)send: the scan, the list's name and version, the way, the product, the entry's
    state (`late`: admitted, or `void`)."""

    scan: Scan
    list: str
    version: int
    direction: str
    product: str
    state: str


class PassLedger:
    """The list transitions' outbox in a gate Store; safe to share between the decide thread and the sync worker."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # -- the claim path ----------------------------------------------------------------------------
    def begin(self, scan: Scan, lst: CheckinList, direction: Direction, product: str) -> Redemption | None:
        """Answer with no round trip (revoked, superseded, a replayed scan id), or durably note the intent."""
        with self.store.transaction() as tx:
            known = tx.list_known(scan)
            if known is not None:
                return known
            if not self._enqueue(tx, scan, lst, direction, product, "claim"):
                return _deny(tx, scan, lst, direction, "scan id already claimed")
            return None

    def settle(self, scan: Scan, lst: CheckinList, direction: Direction, ruling: PassRuling) -> Redemption:
        """Record the arbiter's answer to a transition from `begin`: the gate shows what the arbiter said."""
        with self.store.transaction() as tx:
            if not self._take(tx, scan.scan_id, "done", _mark(ruling)):
                return _deny(tx, scan, lst, direction, "answer came after the transition was given up")
            if ruling.state is not None:
                tx.put_pass(scan.event or "", scan.ticket_id or "", lst.name, ruling.state, scan.scan_id)
            try:
                outcome, reason = Outcome(ruling.outcome), Reason(ruling.reason)
            except ValueError:  # a code this gate does not know: never ADMIT by accident
                outcome, reason = Outcome.INVALID, Reason.REFUSED
            return _decided(tx, scan, lst, direction, outcome, reason, ruling.detail)

    def abandon(self, scan: Scan, lst: CheckinList, direction: Direction, product: str, policy: OfflinePolicy | str,
                why: str) -> Redemption:
        """No usable answer in time: the local judgement under the policy.  Let through: `late`; else `void`."""
        with self.store.transaction() as tx:
            ruling = judge(lst, product, tx.pass_state(scan.event or "", scan.ticket_id or "", lst.name), scan.at,
                           direction)
            through = ruling.admitted and (direction == "out" or OfflinePolicy(policy).admits)
            if not self._take(tx, scan.scan_id, "late" if through else "void"):
                return _deny(tx, scan, lst, direction, "transition was given up twice")
            return _local(tx, scan, lst, direction, ruling.outcome, ruling.reason, ruling.detail, ruling.state,
                          through, why)

    def offline(self, scan: Scan, lst: CheckinList, direction: Direction, product: str,
                policy: OfflinePolicy | str) -> Redemption:
        """No link to the arbiter: the local judgement under the policy; what is let through is queued `late`."""
        with self.store.transaction() as tx:
            known, state = tx.list_lookup(scan, lst.name)
            if known is not None:
                return known
            ruling = judge(lst, product, state, scan.at, direction)
            through = ruling.admitted and (direction == "out" or OfflinePolicy(policy).admits)
            if through and not self._enqueue(tx, scan, lst, direction, product, "late"):
                return _deny(tx, scan, lst, direction, "scan id already claimed")
            return _local(tx, scan, lst, direction, ruling.outcome, ruling.reason, ruling.detail, ruling.state,
                          through, "the arbiter is unreachable")

    # -- the outbox drain ----------------------------------------------------------------------------
    def pending(self, gate_id: str, limit: int, stale_before: float) -> list[Move]:
        """Late and void transitions to (re)send, oldest first; orphaned `claim` entries become void."""
        with self.store.transaction() as tx:
            tx.db.execute("UPDATE pass_outbox SET state = 'void', updated = ? WHERE state = 'claim' AND created < ?",
                          (self.clock(), stale_before))
            rows = tx.db.execute(
                "SELECT scan_id, state, event, ticket_id, generation, gate_id, at, text, list, list_version, direction,"
                " product FROM pass_outbox WHERE state IN ('late', 'void') AND gate_id = ? ORDER BY created LIMIT ?",
                (gate_id, limit)).fetchall()
            tx.db.executemany("UPDATE pass_outbox SET attempts = attempts + 1 WHERE scan_id = ?",
                              [(r[0],) for r in rows])
        return [Move(Scan(r[0], r[5], r[6], r[2], r[3], r[4], r[7]), r[8], r[9], r[10], r[11], r[1]) for r in rows]

    def settle_sent(self, rulings: list[PassRuling]) -> dict[str, int]:
        """Record the answers to late and void transitions; returns them counted (`conflict`, `late`, `void`)."""
        tally: dict[str, int] = {}
        with self.store.transaction() as tx:
            for r in rulings:
                row = tx.db.execute("SELECT state, event, ticket_id, list FROM pass_outbox WHERE scan_id = ? AND"
                                    " state IN ('late', 'void')", (r.scan,)).fetchone()
                if row is None:
                    continue  # a duplicate answer: already settled
                kind = "conflict" if r.conflict else row[0]
                tally[kind] = tally.get(kind, 0) + 1
                self._take(tx, r.scan, "done", _mark(r), source=row[0])
                if r.state is not None and tx.pass_scan_id(row[1], row[2], row[3]) == r.scan:
                    tx.put_pass(row[1], row[2], row[3], r.state, r.scan)  # nothing moved it here since
        return tally

    def outbox_counts(self) -> dict[str, int]:
        """Entries not yet answered, by state (``pass_late``, ``pass_void``, ``pass_claim``)."""
        with self.store.transaction() as tx:
            return {f"pass_{state}": n for state, n in tx.db.execute(
                "SELECT state, count(*) FROM pass_outbox WHERE state != 'done' GROUP BY state")}

    # -- helpers -----------------------------------------------------------------------------------------
    def _enqueue(self, tx: StoreTx, scan: Scan, lst: CheckinList, direction: str, product: str, state: str) -> bool:
        now = self.clock()
        return bool(tx.db.execute(
            "INSERT INTO pass_outbox (scan_id, state, event, ticket_id, generation, gate_id, at, list, list_version,"
            " direction, product, text, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (scan.scan_id, state, scan.event, scan.ticket_id, scan.generation, scan.gate_id, scan.at, lst.name,
             lst.version, direction, product, scan.text, now, now)).rowcount)

    def _take(self, tx: StoreTx, scan_id: str, state: str, answer: str = "", *, source: str = "claim") -> bool:
        """Compare-and-set the entry from `source`: False if another path took it first."""
        return tx.db.execute("UPDATE pass_outbox SET state = ?, answer = ?, updated = ? WHERE scan_id = ? AND"
                             " state = ?", (state, answer, self.clock(), scan_id, source)).rowcount == 1


def _mark(r: PassRuling) -> str:
    return f"{r.outcome} {r.reason}".strip() + (" conflict" if r.conflict else "")


def _local(tx: StoreTx, scan: Scan, lst: CheckinList, direction: Direction, outcome: Outcome, reason: Reason,
           detail: str, state: PassState, through: bool, why: str) -> Redemption:
    """The local judgement applied: let through (provisional for an entry), refused by the list, or denied."""
    if through:
        tx.set_pass(scan, lst.name, state)
        _decided(tx, scan, lst, direction, outcome, reason, detail, "provisional")
        return Redemption(outcome, reason=reason, detail=detail, provisional=direction == "in")
    if outcome is Outcome.ADMIT:  # the list would let it through, the policy does not (deny)
        return _deny(tx, scan, lst, direction, why)
    return _decided(tx, scan, lst, direction, outcome, reason, detail)


def _decided(tx: StoreTx, scan: Scan, lst: CheckinList, direction: Direction, outcome: Outcome, reason: Reason,
             detail: str, note: str = "") -> Redemption:
    tx.journal(scan, ListScan(scan.scan_id, lst.name, lst.version, direction, outcome.value, reason.value, detail),
               note)
    return Redemption(outcome, reason=reason, detail=detail)


def _deny(tx: StoreTx, scan: Scan, lst: CheckinList, direction: Direction, why: str) -> Redemption:
    return _decided(tx, scan, lst, direction, Outcome.FAULT, Reason.OFFLINE, why)
