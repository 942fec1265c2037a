"""A gate serving a check-in list in a direction: the list's ruling applied to the gate's store.

What a caller may rely on (the Decider calls `redeem` in place of `Store.redeem` when `gate.list` is set):

* One transaction (``BEGIN IMMEDIATE``) holds the revocation check, the ticket's state on the list, the
  ruling (gate/admission.py), the new state and the audit row, which names the list, its version and the
  direction (the journal a replay is found in): an ADMIT is durable before it returns, and two processes
  on one file cannot both spend the last entry.
* A replay of a scan id already decided by the list answers the same outcome again and writes nothing.
* A ticket of another event than the list's is `not_this_list`; a malformed product is `malformed`.
* With a `claimer` (a gate with `sync.broker`: sync/gateside/passclaimer.py) every other scan is the
  arbiter's transition to decide, and the local judgement is its fallback when the arbiter does not
  answer (gate/passledger.py).
"""

from __future__ import annotations

from typing import Literal, Protocol

from gate.admission import Direction, judge
from gate.exc import TicketFormatError
from gate.outcomes import Outcome, Reason
from gate.passes import ListScan
from gate.product import product_of
from gate.rules import CheckinList
from gate.store import Redemption, Scan, Store, list_words
from gate.ticket import Ticket

GateDirection = Literal["in", "out", "both"]


class ListClaimer(Protocol):
    """The transition step at the arbiter: `redeem` keeps CheckinGate.redeem's contract (an ADMIT is durable
    in the local store before it returns; storage faults raise StoreError)."""

    def redeem(self, scan: Scan, lst: CheckinList, direction: Direction, product: str) -> Redemption: ...


class CheckinGate:
    """One list served in one direction; a "both" gate is told the way of each scan (default in)."""

    def __init__(self, lst: CheckinList, direction: GateDirection = "in", claimer: ListClaimer | None = None) -> None:
        self.list = lst
        self.direction = direction
        #: None: the gate decides alone, in its store; else the arbiter decides each transition
        self.claimer = claimer

    def way(self, asked: Direction | None) -> Direction:
        """The direction of one scan: a one-way gate's own, or what a "both" gate was told."""
        if self.direction == "both":
            return asked or "in"
        return self.direction

    def redeem(self, store: Store, scan: Scan, ticket: Ticket, asked: Direction | None = None) -> Redemption:
        direction, lst = self.way(asked), self.list
        try:
            product = product_of(ticket)
        except TicketFormatError as exc:
            return self._refuse(store, scan, Outcome.INVALID, Reason.MALFORMED, str(exc))
        if ticket.event != lst.event:
            return self._refuse(store, scan, Outcome.INVALID, Reason.NOT_THIS_LIST,
                                f"list {lst.name} is for event {lst.event}")
        if self.claimer is not None:
            return self.claimer.redeem(scan, lst, direction, product)
        with store.transaction() as tx:
            known, state = tx.list_lookup(scan, lst.name)
            if known is not None:
                return known
            ruling = judge(lst, product, state, scan.at, direction)
            if ruling.admitted:
                tx.set_pass(scan, lst.name, ruling.state)
            tx.journal(scan, ListScan(scan.scan_id, lst.name, lst.version, direction, ruling.outcome.value,
                                      ruling.reason.value, ruling.detail))
            return Redemption(ruling.outcome, reason=ruling.reason, detail=ruling.detail)

    def _refuse(self, store: Store, scan: Scan, outcome: Outcome, reason: Reason, detail: str) -> Redemption:
        store.record(scan, outcome, reason, list_words(self.list.name, self.list.version, detail))
        return Redemption(outcome, reason=reason, detail=detail)
