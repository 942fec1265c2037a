"""Between the gate's ledger (gate/ledger.py, in the gate's own terms) and the wire (sync/wire.py)."""

from __future__ import annotations

from gate.ledger import Ruling
from gate.passes import PassRuling, PassState
from gate.store import FirstUse, Scan
from sync.wire import Answer, Claim, PassAnswer, Release, Transition


def claim_of(scan: Scan, *, admitted: bool = False) -> Claim:
    """The claim of a verified scan (`admitted`: the gate let the holder in offline already)."""
    assert scan.event is not None and scan.ticket_id is not None
    return Claim(scan.scan_id, scan.event, scan.ticket_id, scan.gate_id, scan.at, scan.generation, admitted,
                 scan.text)


def release_of(scan: Scan) -> Release:
    assert scan.event is not None and scan.ticket_id is not None
    return Release(scan.scan_id, scan.event, scan.ticket_id, scan.gate_id)


def ruling_of(answer: Answer) -> Ruling:
    first = FirstUse(answer.first.gate, answer.first.at, answer.first.scan) if answer.first is not None else None
    return Ruling(answer.scan, answer.answer, answer.seq, first, answer.detail)


def transition_of(scan: Scan, lst: str, version: int, direction: str, product: str, *, admitted: bool = False,
                  void: bool = False) -> Transition:
    """The transition of a verified scan on list `lst` (`admitted`: let through offline; `void`: nobody was)."""
    assert scan.event is not None and scan.ticket_id is not None
    return Transition(scan.scan_id, scan.event, scan.ticket_id, scan.gate_id, scan.at, lst, version, direction,
                      product, admitted, scan.text, scan.generation, void)


def pass_ruling_of(answer: PassAnswer) -> PassRuling:
    s = answer.state
    state = PassState(s["entries"], s["day"], s["day_entries"], s["inside"], s["last_entry"]) if s else None
    return PassRuling(answer.scan, answer.outcome, answer.reason, answer.detail, answer.seq, answer.conflict, state)
