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
    """One scan decided by a list, as the journal keeps it (the list's name and version, the direction)."""

    scan_id: str
    list: str
    list_version: int
    direction: str
    outcome: str
    reason: str
    detail: str
