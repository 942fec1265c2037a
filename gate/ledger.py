"""The gate's side of sync, kept in the gate's own store: claim intents, the outbox, conflicts, the stream.

This module owns the outbox, conflict and stream-position tables of the
gate's file (migration 2), the list documents adopted from the stream
(``checkin_lists``, migration 8: gate/servedlist.py judges them) and the list conflicts the stream
reported (``pass_conflicts``, migration 9: every gate's, like ``conflicts``); the redeemed set, revocations, generations and
the audit log it changes only through `gate.store.StoreTx`, inside the same
transaction.  It speaks in the gate's own terms (`Scan`, `Ruling`): sync/
turns those into MQTT payloads and back.

Every method is one BEGIN IMMEDIATE transaction (synchronous=FULL): a
decision, its audit row and its outbox entry commit together or not at all.

One outbox entry per claimed scan id, in one of these states:

``claim``
    written (durably) BEFORE the claim is published; nobody admitted yet.
``late``
    admitted here without the arbiter's answer (provisional); the claim, now
    marked ``admitted``, must still reach the arbiter.
``release``
    nobody was admitted for this scan; the arbiter must drop whatever it
    granted it and never grant it again.
``done``
    the arbiter's answer is recorded in ``answer``.

Crash rule: a ``claim`` entry older than the claim budget plus STALE_GRACE
has no waiter left (the process died between its claim and its commit, or
the commit failed), so `pending` turns it into ``release``.  A waiter
settles only by a compare-and-set from ``claim``, so exactly one of the two
happens; a waiter that loses that race denies.  ``late`` and ``release``
entries are re-sent until answered: the arbiter is idempotent on scan ids.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gate.outcomes import Outcome, Reason
from gate.passes import PassState
from gate.rules import CheckinList, RulesError
from gate.sequence import in_sequence
from gate.store import FirstUse, Redemption, Scan, Store, StoreTx

if TYPE_CHECKING:
    from gate.servedlist import ServedList

log = logging.getLogger(__name__)

#: seconds past the claim budget after which a `claim` entry is an orphan of a crash
STALE_GRACE = 2.0
#: what the arbiter may answer to a claim that settles it (anything else: the offline policy decides)
SETTLING = ("won", "lost", "revoked", "superseded", "refused")


class OfflinePolicy(enum.StrEnum):
    """What a gate does with a scan the arbiter cannot answer in time (``sync.offline_policy``)."""

    #: admit what the local set has not seen, provisionally, and reconcile later
    ADMIT_IF_UNSEEN = "admit-if-unseen"
    #: deny (FAULT offline)
    DENY = "deny"

    @property
    def admits(self) -> bool:
        return self is OfflinePolicy.ADMIT_IF_UNSEEN


@dataclass(frozen=True)
class Ruling:
    """The arbiter's answer for one scan id as the ledger records it (sync.wire.Answer carries it).

    `answer` is one of won, lost (then `first` holds the ticket), revoked, superseded, released, refused,
    invalid; `seq` is the stream sequence number of the redemption it made, if any.
    """

    scan: str
    answer: str
    seq: int | None = None
    first: FirstUse | None = None
    detail: str = ""


#: a validated stream item (sync.wire.check_item): seq, kind, event, ticket and the fields of its kind
Item = Mapping[str, Any]


class Ledger:
    """Sync state in a gate Store; safe to share between the decide thread and the sync worker."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time, lists: ServedList | None = None) -> None:
        self.store = store
        self.clock = clock
        #: the check-in list this gate serves: `list` items of the stream are judged by it (gate/servedlist.py);
        #: None: this gate serves no list and skips them
        self.lists = lists

    # -- the claim path ------------------------------------------------------------------------
    def begin(self, scan: Scan) -> Redemption | None:
        """Answer from the local set with no round trip, or durably note the claim intent and return None."""
        with self.store.transaction() as tx:
            known = self._known(tx, scan)
            if known is not None:
                return known
            if not self._enqueue(tx, scan, "claim"):
                return self._deny(tx, scan, "scan id already claimed")
            return None

    def offline(self, scan: Scan, policy: OfflinePolicy | str) -> Redemption:
        """Decide with no link to the arbiter: the local set, then the policy (a provisional ADMIT goes `late`)."""
        with self.store.transaction() as tx:
            known = self._known(tx, scan)
            if known is not None:
                return known
            if not OfflinePolicy(policy).admits:
                return self._deny(tx, scan, "the arbiter is unreachable")
            if not self._enqueue(tx, scan, "late"):
                return self._deny(tx, scan, "scan id already claimed")
            tx.admit(scan, provisional=True)
            return Redemption(Outcome.ADMIT, provisional=True)

    def settle(self, scan: Scan, ruling: Ruling) -> Redemption:
        """Record the arbiter's answer to a claim from `begin`; ADMIT only for "won"."""
        event, ticket = scan.event or "", scan.ticket_id or ""
        with self.store.transaction() as tx:
            held = tx.holder(event, ticket)
            if not self._take(tx, scan, "done", ruling.answer):
                return self._deny(tx, scan, "answer came after the claim was given up")
            if ruling.answer == "won":
                if held is None:
                    tx.admit(scan, arbiter="won", seq=ruling.seq)
                    return Redemption(Outcome.ADMIT)
                if held.scan_id == scan.scan_id:  # the stream brought our own win first
                    return self._adopt(tx, scan, ruling.seq)
                self._set_state(tx, scan.scan_id, "release")  # a local offline admission of it came first
                return self._already_used(tx, scan, held.first())
            if ruling.answer == "lost" and ruling.first is not None:
                if held is None:
                    tx.hold_for(event, ticket, 0, ruling.first)
                return self._already_used(tx, scan, held.first() if held else ruling.first)
            if ruling.answer == "revoked":
                tx.revoke(scan.event, ticket, at=self.clock(), by="arbiter")
                tx.audit(scan, Outcome.REVOKED, Reason.REVOKED)
                return Redemption(Outcome.REVOKED)
            if ruling.answer == "superseded":  # an older owner's code; the generation item is on the stream
                tx.audit(scan, Outcome.REVOKED, Reason.SUPERSEDED, ruling.detail)
                return Redemption(Outcome.REVOKED, reason=Reason.SUPERSEDED, detail=ruling.detail)
            if ruling.answer == "refused":  # the arbiter's check of the code failed: nothing was spent there
                tx.audit(scan, Outcome.INVALID, Reason.REFUSED, ruling.detail)
                return Redemption(Outcome.INVALID, reason=Reason.REFUSED, detail=ruling.detail)
            self._set_state(tx, scan.scan_id, "release")
            return self._deny(tx, scan, f"the arbiter answered {ruling.answer!r}")

    def abandon(self, scan: Scan, policy: OfflinePolicy | str, why: str) -> Redemption:
        """No usable answer in time: the local set, then the policy.  An ADMIT stays `late`, all else `release`."""
        event, ticket = scan.event or "", scan.ticket_id or ""
        with self.store.transaction() as tx:
            held = tx.holder(event, ticket)
            if held is not None and held.scan_id == scan.scan_id:  # the stream says we won
                if not self._take(tx, scan, "done", "won"):
                    return self._deny(tx, scan, "answer came after the claim was given up")
                return self._adopt(tx, scan, None)
            revoked = tx.is_revoked(event, ticket)
            admit = OfflinePolicy(policy).admits and held is None and not revoked
            if not self._take(tx, scan, "late" if admit else "release"):
                return self._deny(tx, scan, "claim was given up twice")
            if held is not None:
                return self._already_used(tx, scan, held.first())
            if revoked:
                tx.audit(scan, Outcome.REVOKED, Reason.REVOKED)
                return Redemption(Outcome.REVOKED)
            if not admit:
                return self._deny(tx, scan, why)
            tx.admit(scan, provisional=True)
            return Redemption(Outcome.ADMIT, provisional=True, detail=why)

    # -- the outbox drain --------------------------------------------------------------------------
    def pending(self, gate_id: str, limit: int, stale_before: float) -> tuple[list[Scan], list[Scan]]:
        """(late admissions, releases) to (re)send, oldest first; orphaned `claim` entries become releases."""
        with self.store.transaction() as tx:
            tx.db.execute("UPDATE outbox SET state = 'release', updated = ? WHERE state = 'claim' AND created < ?",
                          (self.clock(), stale_before))
            rows = tx.db.execute("SELECT scan_id, state, event, ticket_id, generation, gate_id, at, text FROM outbox"
                                 " WHERE state IN ('late', 'release') AND gate_id = ? ORDER BY created LIMIT ?",
                                 (gate_id, limit)).fetchall()
            tx.db.executemany("UPDATE outbox SET attempts = attempts + 1 WHERE scan_id = ?", [(r[0],) for r in rows])
        scans = {state: [Scan(s, g, at, e, t, gen, text) for s, st, e, t, gen, g, at, text in rows if st == state]
                 for state in ("late", "release")}
        return scans["late"], scans["release"]

    def settle_late(self, rulings: list[Ruling]) -> dict[str, int]:
        """Record the answers to late claims: won confirms, lost is a conflict; returns answers by kind."""
        tally: dict[str, int] = {}
        with self.store.transaction() as tx:
            for r in rulings:
                row = tx.db.execute("SELECT event, ticket_id, gate_id, at FROM outbox WHERE scan_id = ? AND"
                                    " state = 'late'", (r.scan,)).fetchone()
                if row is None:
                    continue  # a duplicate answer: already settled
                tally[r.answer] = tally.get(r.answer, 0) + 1
                self._set_state(tx, r.scan, "done", r.answer)
                mark = {"won": "won", "lost": "conflict", "revoked": "revoked"}.get(r.answer, r.answer)
                tx.confirm(row[0], row[1], r.scan, mark, r.seq, only_local=True)
                if r.answer == "lost" and r.first is not None:
                    self._conflict(tx, row[0], row[1], r.first, FirstUse(row[2], row[3], r.scan), None, "open")
        return tally

    def settle_released(self, rulings: list[Ruling]) -> int:
        with self.store.transaction() as tx:
            return sum(tx.db.execute("UPDATE outbox SET state = 'done', answer = ?, updated = ? WHERE scan_id = ?"
                                     " AND state = 'release'", (r.answer, self.clock(), r.scan)).rowcount
                       for r in rulings)

    # -- the arbiter's stream -----------------------------------------------------------------------
    def position(self) -> tuple[str, int]:
        """(epoch, last applied sequence number) of the arbiter's stream."""
        with self.store.transaction() as tx:
            return self._position(tx)

    def apply_stream(self, epoch: str, entries: Sequence[Item]) -> tuple[int, bool]:
        """Apply items in order from the stored position (gate/sequence.py): (applied, gap).

        A new epoch is only adopted from position 0 (see `reset_stream`).
        """
        adopted: list[tuple[CheckinList, int]] = []
        with self.store.transaction() as tx:
            stored, seq = self._position(tx)
            if stored and stored != epoch:
                return 0, True
            follow, gap = in_sequence(entries, seq)
            for item in follow:
                if item["kind"] == "list":
                    self._offer_list(tx, item, adopted)
                else:
                    self._apply_item(tx, item)
            if follow or not stored:
                self._save_position(tx, epoch, int(follow[-1]["seq"]) if follow else seq)
        if self.lists is not None:
            for lst, at_seq in adopted:  # durable now: decide by it from the next scan on
                self.lists.adopted(lst, at_seq)
        return len(follow), gap

    def _offer_list(self, tx: StoreTx, item: Item, adopted: list[tuple[CheckinList, int]]) -> None:
        """A signed list document from the stream: stored (replacing the one adopted before) if this gate's list
        judges it a higher version of itself (gate/servedlist.py); refused ones are counted and logged."""
        if self.lists is None:
            return
        held = adopted[-1][0].version if adopted else self.lists.current.version
        try:
            lst = self.lists.judge(item.get("doc"), held, f"list item {item['seq']} of the stream")
        except RulesError as exc:
            self.lists.refused(exc)
            return
        if lst is None:
            return
        tx.db.execute("INSERT INTO checkin_lists VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                      " event = excluded.event, version = excluded.version, document = excluded.document,"
                      " seq = excluded.seq, adopted_at = excluded.adopted_at",
                      (lst.name, lst.event, lst.version, json.dumps(item["doc"], sort_keys=True), int(item["seq"]),
                       self.clock()))
        adopted.append((lst, int(item["seq"])))

    def reset_stream(self, epoch: str) -> None:
        """Follow a new arbiter database from sequence 0 (the rows already applied stay)."""
        with self.store.transaction() as tx:
            self._save_position(tx, epoch, 0)

    def _apply_item(self, tx: StoreTx, item: Item) -> None:
        kind, event, ticket = item["kind"], item["event"], item["ticket"]
        if kind == "redemption":
            held = tx.holder(event, ticket)
            if held is None:
                tx.hold_for(event, ticket, item.get("gen", 0), FirstUse(item["gate"], item["at"], item["scan"]),
                            seq=item["seq"])
            elif held.scan_id == item["scan"]:
                tx.confirm(event, ticket, item["scan"], "won", item["seq"])
            # else: a local offline admission holds it; its late claim will settle it as a conflict
        elif kind == "release":  # an admin's un-redeem drops the row whoever made it (docs/dashboard.md)
            tx.drop(event, ticket, item["scan"], any_source=bool(item.get("override")))
        elif kind == "revocation":
            tx.revoke(event, ticket, at=item.get("at", 0.0), by=item.get("by", "arbiter"),
                      reason=item.get("reason", ""))
        elif kind == "generation":  # the highest generation wins, as in Store.supersede (docs/ownership.md)
            tx.supersede(event, ticket, item["gen"], at=item.get("at", 0.0), by=item.get("by", "arbiter"))
        elif kind == "pass":  # a ticket's state on a check-in list, as the arbiter holds it (gate/passledger.py)
            s = item["state"]
            tx.arbiter_pass(event, ticket, item["list"], PassState(s["entries"], s["day"], s["day_entries"],
                                                                   s["inside"], s["last_entry"]), item["scan"])
            if item.get("conflict"):
                self._pass_conflict(tx, item)
        elif kind == "conflict":
            f, late = item["first"], item["late"]
            self._conflict(tx, event, ticket, FirstUse(f["gate"], f["at"], f["scan"]),
                           FirstUse(late["gate"], late["at"], late["scan"]), item["seq"], item["state"])

    # -- reading ------------------------------------------------------------------------------------
    def adopted_list(self, name: str) -> str | None:
        """The signed document (JSON) of list `name` adopted from the stream, if any: unverified here
        (gate/servedlist.py's `choose` verifies it again with the keyring of the day)."""
        rows = self.store.database.rows("SELECT document FROM checkin_lists WHERE name = ?", (name,))
        return str(rows[0]["document"]) if rows else None

    def adoption(self, name: str) -> dict[str, object] | None:
        """List `name` as adopted from the stream: its `version`, `document` (JSON, unverified here), the
        stream's `seq` and `adopted_at` (this gate's clock), if any (`gate lists show`)."""
        rows = self.store.database.rows("SELECT version, document, seq, adopted_at FROM checkin_lists WHERE name = ?",
                                        (name,))
        return rows[0] if rows else None

    def outbox_counts(self) -> dict[str, int]:
        with self.store.transaction() as tx:
            return dict(tx.db.execute("SELECT state, count(*) FROM outbox WHERE state != 'done' GROUP BY state"))

    def conflicts(self) -> list[dict[str, object]]:
        """The double entries this gate knows of (its own late claims that lost, and the stream's)."""
        return self.store.database.rows("SELECT * FROM conflicts ORDER BY recorded_at, late_scan_id")

    def pass_conflicts(self) -> list[dict[str, object]]:
        """The list conflicts the stream reported (every gate's), in the columns of `conflicts` plus `list`,
        `reason` and `detail`; `first_*` is None when the arbiter named no earlier entry."""
        return self.store.database.rows("SELECT * FROM pass_conflicts ORDER BY recorded_at, late_scan_id")

    # -- helpers --------------------------------------------------------------------------------------
    def _known(self, tx: StoreTx, scan: Scan) -> Redemption | None:
        refused = tx.refused(scan)  # revoked or superseded: the same check as Store.redeem
        if refused is not None:
            return refused
        held = tx.holder(scan.event or "", scan.ticket_id or "")
        if held is None:
            return None
        if held.scan_id == scan.scan_id and held.source == "local":
            return Redemption(Outcome.ADMIT, held.first(), replay=True)
        return self._already_used(tx, scan, held.first())

    def _enqueue(self, tx: StoreTx, scan: Scan, state: str) -> bool:
        now = self.clock()
        return bool(tx.db.execute(
            "INSERT INTO outbox (scan_id, state, event, ticket_id, generation, gate_id, at, created, updated, text)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (scan.scan_id, state, scan.event, scan.ticket_id, scan.generation, scan.gate_id, scan.at, now, now,
             scan.text),
        ).rowcount)

    def _take(self, tx: StoreTx, scan: Scan, state: str, answer: str = "") -> bool:
        """Compare-and-set the entry from `claim`: False if the crash recovery took it first."""
        return tx.db.execute("UPDATE outbox SET state = ?, answer = ?, updated = ? WHERE scan_id = ? AND"
                             " state = 'claim'", (state, answer, self.clock(), scan.scan_id)).rowcount == 1

    def _set_state(self, tx: StoreTx, scan_id: str, state: str, answer: str = "") -> None:
        tx.db.execute("UPDATE outbox SET state = ?, answer = ?, updated = ? WHERE scan_id = ?",
                      (state, answer, self.clock(), scan_id))

    @staticmethod
    def _adopt(tx: StoreTx, scan: Scan, seq: int | None) -> Redemption:
        tx.confirm(scan.event or "", scan.ticket_id or "", scan.scan_id, "won", seq, adopt=True)
        tx.audit(scan, Outcome.ADMIT, Reason.NONE)
        return Redemption(Outcome.ADMIT)

    @staticmethod
    def _already_used(tx: StoreTx, scan: Scan, first: FirstUse) -> Redemption:
        tx.audit(scan, Outcome.ALREADY_USED, Reason.ALREADY_USED, f"first used at {first.gate_id}")
        return Redemption(Outcome.ALREADY_USED, first)

    @staticmethod
    def _deny(tx: StoreTx, scan: Scan, why: str) -> Redemption:
        tx.audit(scan, Outcome.FAULT, Reason.OFFLINE, why)
        return Redemption(Outcome.FAULT, reason=Reason.OFFLINE, detail=why)

    def _conflict(self, tx: StoreTx, event: str, ticket: str, first: FirstUse, late: FirstUse, seq: int | None,
                  state: str) -> None:
        tx.db.execute("INSERT INTO conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (late_scan_id) DO"
                      " UPDATE SET state = excluded.state, seq = coalesce(excluded.seq, seq),"
                      " first_gate = excluded.first_gate, first_at = excluded.first_at,"
                      " first_scan_id = excluded.first_scan_id",
                      (late.scan_id, event, ticket, first.gate_id, first.at, first.scan_id, late.gate_id, late.at,
                       seq, state, self.clock()))
        tx.confirm(event, ticket, late.scan_id, "conflict" if state == "open" else "won", only_local=True)

    def _pass_conflict(self, tx: StoreTx, item: Item) -> None:
        said = item.get("first")
        first: Mapping[str, Any] = said if isinstance(said, Mapping) else {}
        tx.db.execute("INSERT INTO pass_conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)"
                      " ON CONFLICT (late_scan_id) DO NOTHING",
                      (item["scan"], item["event"], item["ticket"], item["list"], str(item.get("reason", "")),
                       str(item.get("detail", "")), first.get("gate"), first.get("at"), first.get("scan"),
                       str(item.get("gate", "")), float(item.get("at", 0.0)), int(item["seq"]), self.clock()))

    @staticmethod
    def _position(tx: StoreTx) -> tuple[str, int]:
        rows = dict(tx.db.execute("SELECT key, value FROM sync_state WHERE key IN ('epoch', 'seq')").fetchall())
        return rows.get("epoch", ""), int(rows.get("seq", "0"))

    @staticmethod
    def _save_position(tx: StoreTx, epoch: str, seq: int) -> None:
        tx.db.executemany("INSERT INTO sync_state VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET"
                          " value = excluded.value", [("epoch", epoch), ("seq", str(seq))])
