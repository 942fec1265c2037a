"""Between the gate's ledger (gate/ledger.py, in the gate's own terms) and the wire (sync/wire.py)."""

from __future__ import annotations

from gate.ledger import Ruling
from gate.store import FirstUse, Scan
from sync.wire import Answer, Claim, Release


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
