"""The state of a ticket on a check-in list: the value the gate's store keeps and gate/admission.py judges."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PassState:
    """A ticket on one list: entries spent (in total and on `day`), inside or not, the last entry's time."""

    entries: int = 0
    day: str = ""
    day_entries: int = 0
    inside: bool = False
    last_entry: float = 0.0


@dataclass(frozen=True)
class ListScan:
    """One scan decided by a list, as its audit row keeps it (the list's name and version, the direction)."""

    scan_id: str
    list: str
    list_version: int
    direction: str
    outcome: str
    reason: str
    detail: str


@dataclass(frozen=True)
class PassRuling:
    """The arbiter's answer to one list transition, in the gate's terms (sync.wire.PassAnswer carries it).

    `outcome` and `reason` are gate.outcomes codes; `conflict`: an offline admission the arbiter would have
    refused; `state`: the ticket's state on the list at the arbiter when it answered (None: it holds none).
    """

    scan: str
    outcome: str
    reason: str = ""
    detail: str = ""
    seq: int | None = None
    conflict: bool = False
    state: PassState | None = None
