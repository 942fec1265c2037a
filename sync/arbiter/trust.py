"""What the arbiter checks before it spends anything: a claim proves its ticket (docs/security.md).

A gate's MQTT credential alone must not spend tickets: ticket ids are readable
in every QR and `gate mint --count` ids are sequential, so a claim naming only
(event, ticket id) would let a stolen credential lock holders out across a
venue.  Every claim therefore carries the code the gate was shown, and the
arbiter verifies it with its own keyring (public keys only under Ed25519)
before the compare-and-set.

What a caller may rely on:

* `ClaimCheck.refusal(claim)` is None for a claim to decide, else a stable
  reason code followed by ": " and a human detail; it never raises.
* The code must verify (signature, key, event, validity, holder code) and
  name the claim's event, ticket id and generation; the claiming gate must
  serve the event (the arbiter's gates file, `sync.arbiter_gates`).
* An online claim is checked at the arbiter's clock: the holder shows the
  code now.  A late claim (admitted offline, reported afterwards) is checked
  at the time the gate says it admitted, which may not lie in the future.
* A claim with no code is refused (`no_ticket`): gates from before claims
  carried their code must be upgraded before the arbiter (docs/operations.md).
* `ClaimCheck.transition_refusal(t)` checks a check-in list transition the
  same way (its code, event, ticket id, generation, the gate's events) and
  that the code's signed product is the one the transition names
  (`mismatch`); a void (it spends nothing, it undoes the gate's own scan)
  needs only the gate's events.
* `ClaimCheck.load(keys_dir, gates_file, lists_dir)` rereads them on
  `refresh()` once they change (a gate provisioned, a key imported or
  retired, a list signed), without a restart; a file that no longer loads
  keeps the last good check, logged.  `lists` holds the signed check-in
  lists of `lists_dir` (``*.list.json``, verified with the keyring; the
  highest version of each name) that the arbiter judges transitions by;
  `documents` their signed documents, unchanged, that it puts on the stream.
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.exc import GateError, TicketFormatError
from gate.keys import Keyring, KeyStore
from gate.product import product_of
from gate.rules import CheckinList, load_document
from gate.ticket import Ticket
from gate.verify import Verifier
from sync.exc import SyncError
from sync.wire import Claim, Transition

log = logging.getLogger(__name__)

#: reason codes of the arbiter's own (the others are gate.outcomes.Reason values of the verifier)
NO_TICKET = "no_ticket"
MISMATCH = "mismatch"
UNKNOWN_GATE = "unknown_gate"
GATE_EVENT = "gate_event"
FUTURE_CLAIM = "future_claim"


@dataclass(frozen=True)
class GateEvents:
    """Which events each gate serves, from the arbiter's gates file (written by `gate provision`).

    `gates` None: no file is configured, so any gate may claim any event the keyring holds a key for (the
    embedded default: one machine, no provisioned venue).  A gate listed with no events serves every event.
    """

    gates: Mapping[str, frozenset[str]] | None = None

    @classmethod
    def load(cls, path: Path | None) -> GateEvents:
        """Read `path` ([gates."gate-1"] events = ["show7"]); SyncError naming the file if unusable."""
        if path is None:
            return cls()
        try:
            data = tomllib.loads(path.read_text())
            gates = data.get("gates", {})
            if not isinstance(gates, dict):
                raise TypeError("[gates] must be a table")
            return cls({str(g): frozenset(_events(g, entry)) for g, entry in gates.items()})
        except (OSError, tomllib.TOMLDecodeError, TypeError) as exc:
            raise SyncError(f"arbiter gates file {path}: {exc}") from exc

    def refusal(self, gate: str, event: str) -> str | None:
        if self.gates is None:
            return None
        served = self.gates.get(gate)
        if served is None:
            return f"{UNKNOWN_GATE}: gate {gate!r} is not in the arbiter's gates file"
        if served and event not in served:
            return f"{GATE_EVENT}: gate {gate!r} does not serve event {event!r}"
        return None


def _events(gate: str, entry: object) -> list[str]:
    events = entry.get("events", []) if isinstance(entry, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise TypeError(f"gates.{gate}.events must be a list of event names")
    return events


class ClaimCheck:
    """Verifies the code a claim carries; one per arbiter (safe to share: it holds no mutable state)."""

    def __init__(self, keyring: Keyring, gates: GateEvents | None = None, *, skew: float = 120.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.verifier = Verifier(keyring, skew=skew, clock=clock)
        self.gates = gates or GateEvents()
        self.skew = skew
        self.clock = clock
        self._files: tuple[Path, Path | None, Path | None] | None = None
        self._seen: object = None
        #: the verified check-in lists by name (what the arbiter judges transitions by)
        self.lists: dict[str, CheckinList] = {}
        #: the signed document of each of `lists`, as its file holds it (what the arbiter puts on the stream)
        self.documents: dict[str, tuple[CheckinList, dict[str, Any]]] = {}

    @classmethod
    def load(cls, keys_dir: Path, gates_file: Path | None, lists_dir: Path | None = None, *,
             skew: float = 120.0) -> ClaimCheck:
        """The check of an arbiter home; SyncError, KeyFileError or RulesError if a file is unusable at start."""
        keyring = KeyStore(keys_dir).keyring()
        check = cls(keyring, GateEvents.load(gates_file), skew=skew)
        check.documents = load_documents(lists_dir, keyring)
        check.lists = {name: lst for name, (lst, _doc) in check.documents.items()}
        check._files, check._seen = (keys_dir, gates_file, lists_dir), _stamp(keys_dir, gates_file, lists_dir)
        return check

    def refresh(self) -> bool:
        """Reread the key folder and gates file if they changed since; True if the check changed."""
        if self._files is None:
            return False
        stamp = _stamp(*self._files)
        if stamp == self._seen:
            return False
        self._seen = stamp
        keys_dir, gates_file, lists_dir = self._files
        try:
            keyring, gates = KeyStore(keys_dir).keyring(), GateEvents.load(gates_file)
            documents = load_documents(lists_dir, keyring)
        except GateError as exc:
            log.error("keeping the last good keys, gates and lists: %s", exc)
            return False
        self.verifier, self.gates = Verifier(keyring, skew=self.skew, clock=self.clock), gates
        self.documents = documents
        self.lists = lists = {name: lst for name, (lst, _doc) in documents.items()}
        log.info("reloaded the arbiter's keys (%d), gates file and check-in lists (%d)", len(keyring), len(lists))
        return True

    def refusal(self, claim: Claim) -> str | None:
        return self._checked(claim)[0]

    def transition_refusal(self, t: Transition) -> str | None:
        """None for a transition to judge, else a stable reason code, ": " and a detail (never raises)."""
        if t.void:  # spends nothing: it undoes what this gate's own scan id applied (passes.py checks the owner)
            return self.gates.refusal(t.gate, t.event)
        why, ticket = self._checked(Claim(t.scan, t.event, t.ticket, t.gate, t.at, t.gen, t.admitted, t.text))
        if why is not None or ticket is None:
            return why
        try:
            product = product_of(ticket)
        except TicketFormatError as exc:
            return f"malformed: {exc}"
        if product != t.product:
            return f"{MISMATCH}: the code's product is {product or 'none'!r}, the transition says {t.product!r}"
        return None

    def _checked(self, claim: Claim) -> tuple[str | None, Ticket | None]:
        if not claim.text:
            return f"{NO_TICKET}: the claim carries no ticket", None
        now = self.clock()
        if claim.admitted and claim.at > now + self.skew:
            return f"{FUTURE_CLAIM}: admitted at {claim.at:.0f}, after the arbiter's time {now:.0f}", None
        verdict = self.verifier.verify(claim.text, claim.at if claim.admitted else now)
        ticket = verdict.ticket
        if ticket is not None and (ticket.event, ticket.ticket_id, ticket.generation) != (
                claim.event, claim.ticket, claim.gen):
            return (f"{MISMATCH}: the code is for {ticket.event}/{ticket.ticket_id} generation {ticket.generation}",
                    ticket)
        if not verdict.ok:
            return (f"{verdict.reason.value}: {verdict.detail}" if verdict.detail else verdict.reason.value), ticket
        return self.gates.refusal(claim.gate, claim.event), ticket


def load_lists(folder: Path | None, keyring: Keyring) -> dict[str, CheckinList]:
    """The signed lists of `folder` (``*.list.json``), each verified; the highest version of each name.
    No folder (or none there): no lists, and every transition is answered ``not_this_list``."""
    return {name: lst for name, (lst, _doc) in load_documents(folder, keyring).items()}


def load_documents(folder: Path | None, keyring: Keyring) -> dict[str, tuple[CheckinList, dict[str, Any]]]:
    """`load_lists` with each list's signed document, unchanged (what the stream carries to the gates)."""
    lists: dict[str, tuple[CheckinList, dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.list.json")) if folder is not None and folder.is_dir() else []:
        lst, doc = load_document(path, keyring)
        if lst.name not in lists or lists[lst.name][0].version < lst.version:
            lists[lst.name] = (lst, doc)
    return lists


def _stamp(keys_dir: Path, gates_file: Path | None, lists_dir: Path | None = None) -> object:
    files = sorted(keys_dir.glob("*.json")) if keys_dir.is_dir() else []
    if lists_dir is not None and lists_dir.is_dir():
        files += sorted(lists_dir.glob("*.list.json"))
    if gates_file is not None:
        files.append(gates_file)
    stamp = []
    for f in files:
        try:
            st = f.stat()
        except OSError:  # not there (yet, or any more): its absence is part of the stamp
            continue
        stamp.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(stamp)
