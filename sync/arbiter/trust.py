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
* `ClaimCheck.load(keys_dir, gates_file)` rereads both on `refresh()` once
  they change (a gate provisioned, a key imported or retired), without a
  restart; a file that no longer loads keeps the last good check, logged.
"""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gate.exc import GateError
from gate.keys import Keyring, KeyStore
from gate.verify import Verifier
from sync.exc import SyncError
from sync.wire import Claim

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
        self._files: tuple[Path, Path | None] | None = None
        self._seen: object = None

    @classmethod
    def load(cls, keys_dir: Path, gates_file: Path | None, *, skew: float = 120.0) -> ClaimCheck:
        """The check of an arbiter home; SyncError or KeyFileError if a file is unusable at start."""
        check = cls(KeyStore(keys_dir).keyring(), GateEvents.load(gates_file), skew=skew)
        check._files, check._seen = (keys_dir, gates_file), _stamp(keys_dir, gates_file)
        return check

    def refresh(self) -> bool:
        """Reread the key folder and gates file if they changed since; True if the check changed."""
        if self._files is None:
            return False
        stamp = _stamp(*self._files)
        if stamp == self._seen:
            return False
        self._seen = stamp
        keys_dir, gates_file = self._files
        try:
            keyring, gates = KeyStore(keys_dir).keyring(), GateEvents.load(gates_file)
        except GateError as exc:
            log.error("keeping the last good keys and gates: %s", exc)
            return False
        self.verifier, self.gates = Verifier(keyring, skew=self.skew, clock=self.clock), gates
        log.info("reloaded the arbiter's keys (%d) and gates file", len(keyring))
        return True

    def refusal(self, claim: Claim) -> str | None:
        if not claim.text:
            return f"{NO_TICKET}: the claim carries no ticket"
        now = self.clock()
        if claim.admitted and claim.at > now + self.skew:
            return f"{FUTURE_CLAIM}: admitted at {claim.at:.0f}, after the arbiter's time {now:.0f}"
        verdict = self.verifier.verify(claim.text, claim.at if claim.admitted else now)
        ticket = verdict.ticket
        if ticket is not None and (ticket.event, ticket.ticket_id, ticket.generation) != (
                claim.event, claim.ticket, claim.gen):
            return f"{MISMATCH}: the code is for {ticket.event}/{ticket.ticket_id} generation {ticket.generation}"
        if not verdict.ok:
            return f"{verdict.reason.value}: {verdict.detail}" if verdict.detail else verdict.reason.value
        return self.gates.refusal(claim.gate, claim.event)


def _stamp(keys_dir: Path, gates_file: Path | None) -> object:
    files = sorted(keys_dir.glob("*.json")) if keys_dir.is_dir() else []
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
