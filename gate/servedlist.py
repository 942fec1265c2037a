"""The check-in list a gate serves, at the highest version it holds (docs/checkin-lists.md, "Lists on the stream").

A gate starts with the signed file of `gate.list`; with an arbiter, the arbiter also puts every signed list
document it holds on its stream (items of kind ``list``, sync/arbiter/store.py).  The arbiter is not trusted
with a list: the issuer's signature decides, checked here against the gate's own keyring.

What a caller may rely on:

* `ServedList.judge(doc, held)` is the list to adopt from a stream item's document, None for a document of
  another list (another name: another gate's list, not an error) or one this gate already holds (the same
  version, unchanged), and RulesError for one it refuses: not signed by a key of its keyring (forged,
  changed, or a retired key), of another event, or a changed list under the version `held`; OlderList (a
  RulesError) for a genuine one of a lower version.  It never adopts anything itself.
* `refused(exc)` counts a refusal: ``lists_older`` for an OlderList (logged at info: the stream keeps old
  versions), ``lists_refused`` for the rest (logged as a warning).
* `adopted(lst)` (after the document is durable: gate/ledger.py stores it in ``checkin_lists`` in the
  stream's own transaction) makes `lst` what every served CheckinGate decides by from its next scan on,
  and logs "list NAME version N adopted from the stream".
* `choose(file_list, stored_doc, keyring)` is the list a gate starts with: the adopted document if it still
  verifies and is for the same list and event at a higher version, else the file's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gate.keys import Keyring
from gate.rules import CheckinList, RulesError, canonical, verify

if TYPE_CHECKING:
    from gate.checkin import CheckinGate

log = logging.getLogger(__name__)


class OlderList(RulesError):
    """A genuine document of this gate's list at a version not higher than the one it holds: the stream keeps
    every version the arbiter held, so a gate catching up from the start meets the older ones."""


class ServedList:
    """The list of `gate.list` (one per gate process), and the versions the stream brings."""

    def __init__(self, current: CheckinList, keyring: Keyring) -> None:
        self.current = current
        self.keyring = keyring
        self.gates: list[CheckinGate] = []
        #: counts what the stream brought: "lists_adopted", "lists_refused" (GateSync's counters, once linked)
        self.count: Callable[[str], object] = lambda _name: None

    @property
    def name(self) -> str:
        return self.current.name

    def judge(self, doc: Any, held: int, where: str = "list item") -> CheckinList | None:
        """The list to adopt from `doc`, None if it is not this gate's or already held; RulesError if refused."""
        fields = doc.get("list") if isinstance(doc, Mapping) else None
        if not isinstance(fields, Mapping) or fields.get("name") != self.current.name:
            return None  # another list's document: every gate of the venue receives them all
        lst = verify(doc, self.keyring, where)  # the issuer's signature decides, never the arbiter
        if lst.event != self.current.event:
            raise RulesError(f"{where}: list {lst.name} is for event {lst.event!r}, this gate's for "
                             f"{self.current.event!r}")
        if lst.version == held == self.current.version and canonical(lst) == canonical(self.current):
            return None  # the version this gate holds (a catch-up from 0 sends it again)
        if lst.version == held:
            raise RulesError(f"{where}: list {lst.name} version {lst.version} differs from the version {held} "
                             f"this gate holds (the issuer signed two lists under one version)")
        if lst.version < held:
            raise OlderList(f"{where}: list {lst.name} version {lst.version} is not higher than the version "
                            f"{held} this gate holds")
        return lst

    def adopted(self, lst: CheckinList, seq: int) -> None:
        """`lst` is durable: decide by it from the next scan on."""
        self.current = lst
        for gate in self.gates:
            gate.list = lst
        self.count("lists_adopted")
        # a warning, so it is in the journal at the default level: from now on this gate decides differently
        log.warning("list %s version %d adopted from the stream (seq %d)", lst.name, lst.version, seq)

    def refused(self, exc: RulesError) -> None:
        """Count and log a document `judge` refused: an older version quietly (lists_older), the rest loudly."""
        if isinstance(exc, OlderList):
            self.count("lists_older")
            log.info("not adopting an older check-in list from the stream: %s", exc)
            return
        self.count("lists_refused")
        log.warning("refused a check-in list from the stream, keeping version %d: %s", self.current.version, exc)

    def serve(self, gate: CheckinGate) -> None:
        """`gate` decides by this list, at the highest version known now and from each adoption on."""
        if gate.list.name == self.current.name and gate.list.version < self.current.version:
            gate.list = self.current
        self.gates.append(gate)


def choose(file_list: CheckinList, stored: str | None, keyring: Keyring, where: str) -> CheckinList:
    """The list a gate starts with: `file_list` (gate.list), or the document adopted from the stream
    (`stored`, JSON) if that still verifies and is the same list and event at a higher version."""
    if stored is None:
        return file_list
    try:
        lst = verify(json.loads(stored), keyring, where)
    except (RulesError, ValueError) as exc:
        log.warning("not using the list adopted from the stream: %s", exc)
        return file_list
    if (lst.name, lst.event) != (file_list.name, file_list.event) or lst.version <= file_list.version:
        return file_list
    log.info("list %s: using version %d adopted from the stream (gate.list holds version %d)", lst.name,
             lst.version, file_list.version)
    return lst
