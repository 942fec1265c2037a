"""The gate's side of sync, kept in the gate's own store (tables of migration 2).

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

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from gate.outcomes import Outcome, Reason
from gate.store import FirstUse, Redemption, Scan, Store
from sync.wire import Answer, Claim, Json, Release

log = logging.getLogger(__name__)

#: seconds past the claim budget after which a `claim` entry is an orphan of a crash
STALE_GRACE = 2.0
ADMIT_POLICY = "admit-if-unseen"


@dataclass(frozen=True)
class Held:
    """The local redeemed row of a ticket."""

    scan_id: str
    gate_id: str
    at: float
    provisional: bool
    source: str
    arbiter: str

    def first(self) -> FirstUse:
        return FirstUse(self.gate_id, self.at, self.scan_id, self.provisional)


def claim_of(scan: Scan, *, admitted: bool = False) -> Claim:
    assert scan.event is not None and scan.ticket_id is not None
    return Claim(scan.scan_id, scan.event, scan.ticket_id, scan.gate_id, scan.at, scan.generation, admitted)


class Ledger:
    """Sync state in a gate Store; safe to share between the decide thread and the sync worker."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # -- the claim path ------------------------------------------------------------------------
    def begin(self, scan: Scan) -> Redemption | None:
        """Answer from the local set with no round trip, or durably note the claim intent and return None."""
        with self.store.transaction() as db:
            known = self._known(db, scan)
            if known is not None:
                return known
            if not self._enqueue(db, scan, "claim"):
                return self._deny(db, scan, "scan id already claimed")
            return None

    def offline(self, scan: Scan, policy: str) -> Redemption:
        """Decide with no link to the arbiter: the local set, then the policy (a provisional ADMIT goes `late`)."""
        with self.store.transaction() as db:
            known = self._known(db, scan)
            if known is not None:
                return known
            if policy != ADMIT_POLICY:
                return self._deny(db, scan, "the arbiter is unreachable")
            if not self._enqueue(db, scan, "late"):
                return self._deny(db, scan, "scan id already claimed")
            self._admit(db, scan, provisional=True)
            return Redemption(Outcome.ADMIT, provisional=True)

    def settle(self, scan: Scan, answer: Answer) -> Redemption:
        """Record the arbiter's answer to a claim from `begin`; ADMIT only for "won"."""
        with self.store.transaction() as db:
            held = self._held(db, scan)
            if not self._take(db, scan, "done", answer.answer):
                return self._deny(db, scan, "answer came after the claim was given up")
            if answer.answer == "won":
                if held is None:
                    self._admit(db, scan, arbiter="won", seq=answer.seq)
                    return Redemption(Outcome.ADMIT)
                if held.scan_id == scan.scan_id:  # the stream brought our own win first
                    return self._adopt(db, scan, answer.seq)
                self._set_state(db, scan.scan_id, "release")  # a local offline admission of it came first
                return self._already_used(db, scan, held.first())
            if answer.answer == "lost" and answer.first is not None:
                f = answer.first
                if held is None:
                    self._insert(db, scan.event, scan.ticket_id, 0, f.scan, f.gate, f.at, source="arbiter",
                                 arbiter="won")
                return self._already_used(db, scan, held.first() if held else FirstUse(f.gate, f.at, f.scan))
            if answer.answer == "revoked":
                self._revoke_locally(db, scan)
                return self._revoked(db, scan)
            if answer.answer == "superseded":  # an older owner's code; the generation item is on the stream
                Store.audit_in(db, scan, Outcome.REVOKED, Reason.SUPERSEDED, answer.detail)
                return Redemption(Outcome.REVOKED, reason=Reason.SUPERSEDED, detail=answer.detail)
            self._set_state(db, scan.scan_id, "release")
            return self._deny(db, scan, f"the arbiter answered {answer.answer!r}")

    def abandon(self, scan: Scan, policy: str, why: str) -> Redemption:
        """No usable answer in time: the local set, then the policy.  An ADMIT stays `late`, all else `release`."""
        with self.store.transaction() as db:
            held = self._held(db, scan)
            if held is not None and held.scan_id == scan.scan_id:  # the stream says we won
                if not self._take(db, scan, "done", "won"):
                    return self._deny(db, scan, "answer came after the claim was given up")
                return self._adopt(db, scan, None)
            revoked = Store.revoked_in(db, scan.event or "", scan.ticket_id or "")
            admit = policy == ADMIT_POLICY and held is None and not revoked
            if not self._take(db, scan, "late" if admit else "release"):
                return self._deny(db, scan, "claim was given up twice")
            if held is not None:
                return self._already_used(db, scan, held.first())
            if revoked:
                return self._revoked(db, scan)
            if not admit:
                return self._deny(db, scan, why)
            self._admit(db, scan, provisional=True)
            return Redemption(Outcome.ADMIT, provisional=True, detail=why)

    # -- the outbox drain --------------------------------------------------------------------------
    def pending(self, gate_id: str, limit: int, stale_before: float) -> tuple[list[Claim], list[Release]]:
        """Late claims and releases to (re)send, oldest first; orphaned `claim` entries become releases."""
        with self.store.transaction() as db:
            db.execute("UPDATE outbox SET state = 'release', updated = ? WHERE state = 'claim' AND created < ?",
                       (self.clock(), stale_before))
            rows = db.execute("SELECT scan_id, state, event, ticket_id, generation, gate_id, at FROM outbox"
                              " WHERE state IN ('late', 'release') AND gate_id = ? ORDER BY created LIMIT ?",
                              (gate_id, limit)).fetchall()
            db.executemany("UPDATE outbox SET attempts = attempts + 1 WHERE scan_id = ?", [(r[0],) for r in rows])
        claims = [Claim(s, e, t, g, at, gen, admitted=True) for s, st, e, t, gen, g, at in rows if st == "late"]
        releases = [Release(s, e, t, g) for s, st, e, t, _gen, g, _at in rows if st == "release"]
        return claims, releases

    def settle_late(self, answers: list[Answer]) -> dict[str, int]:
        """Record the answers to late claims: won confirms, lost is a conflict; returns answers by kind."""
        tally: dict[str, int] = {}
        with self.store.transaction() as db:
            for a in answers:
                row = db.execute("SELECT event, ticket_id, gate_id, at FROM outbox WHERE scan_id = ? AND"
                                 " state = 'late'", (a.scan,)).fetchone()
                if row is None:
                    continue  # a duplicate answer: already settled
                tally[a.answer] = tally.get(a.answer, 0) + 1
                self._set_state(db, a.scan, "done", a.answer)
                mark = {"won": "won", "lost": "conflict", "revoked": "revoked"}.get(a.answer, a.answer)
                db.execute("UPDATE redeemed SET arbiter = ?, arbiter_seq = ? WHERE event = ? AND ticket_id = ?"
                           " AND scan_id = ? AND source = 'local'", (mark, a.seq, row[0], row[1], a.scan))
                if a.answer == "lost" and a.first is not None:
                    self._conflict(db, row[0], row[1], a.first.gate, a.first.at, a.first.scan, row[2], row[3],
                                   a.scan, None, "open")
        return tally

    def settle_released(self, answers: list[Answer]) -> int:
        with self.store.transaction() as db:
            return sum(db.execute("UPDATE outbox SET state = 'done', answer = ?, updated = ? WHERE scan_id = ?"
                                  " AND state = 'release'", (a.answer, self.clock(), a.scan)).rowcount
                       for a in answers)

    # -- the arbiter's stream -----------------------------------------------------------------------
    def position(self) -> tuple[str, int]:
        """(epoch, last applied sequence number) of the arbiter's stream."""
        with self.store.transaction() as db:
            return self._position(db)

    def apply_stream(self, epoch: str, entries: list[Json]) -> tuple[int, bool]:
        """Apply items in order from the stored position: (applied, gap).

        Items at or below the position are skipped (duplicates, replays); an
        item past position + 1 stops the batch (a gap: catch up first).  A new
        epoch is only adopted from position 0 (see `reset_stream`).
        """
        with self.store.transaction() as db:
            stored, seq = self._position(db)
            if stored and stored != epoch:
                return 0, True
            applied, gap = 0, False
            for item in entries:
                if item["seq"] <= seq:
                    continue
                if item["seq"] != seq + 1:
                    gap = True
                    break
                self._apply_item(db, item)
                seq, applied = item["seq"], applied + 1
            if applied or not stored:
                self._save_position(db, epoch, seq)
            return applied, gap

    def reset_stream(self, epoch: str) -> None:
        """Follow a new arbiter database from sequence 0 (the rows already applied stay)."""
        with self.store.transaction() as db:
            self._save_position(db, epoch, 0)

    def _apply_item(self, db: sqlite3.Connection, item: Json) -> None:
        kind, event, ticket = item["kind"], item["event"], item["ticket"]
        if kind == "redemption":
            held = self._held_key(db, event, ticket)
            if held is None:
                self._insert(db, event, ticket, item.get("gen", 0), item["scan"], item["gate"], item["at"],
                             source="arbiter", arbiter="won", seq=item["seq"])
            elif held.scan_id == item["scan"]:
                db.execute("UPDATE redeemed SET arbiter = 'won', arbiter_seq = ? WHERE event = ? AND ticket_id = ?",
                           (item["seq"], event, ticket))
            # else: a local offline admission holds it; its late claim will settle it as a conflict
        elif kind == "release":  # an admin's un-redeem drops the row whoever made it (sync/dashboard/override.py)
            source = "" if item.get("override") else " AND source = 'arbiter'"
            db.execute("DELETE FROM redeemed WHERE event = ? AND ticket_id = ? AND scan_id = ?" + source,
                       (event, ticket, item["scan"]))
        elif kind == "revocation":
            db.execute("INSERT INTO revoked (event, ticket_id, at, by, reason) VALUES (?, ?, ?, ?, ?)"
                       " ON CONFLICT DO NOTHING", (event, ticket, item.get("at", 0.0), item.get("by", "arbiter"),
                                                   item.get("reason", "")))
        elif kind == "generation":  # the highest generation wins, as in Store.supersede (docs/ownership.md)
            db.execute("INSERT INTO generations (event, ticket_id, generation, at, by) VALUES (?, ?, ?, ?, ?)"
                       " ON CONFLICT (event, ticket_id) DO UPDATE SET generation = excluded.generation,"
                       " at = excluded.at, by = excluded.by WHERE excluded.generation > generations.generation",
                       (event, ticket, item["gen"], item.get("at", 0.0), item.get("by", "arbiter")))
        elif kind == "conflict":
            f, late = item["first"], item["late"]
            self._conflict(db, event, ticket, f["gate"], f["at"], f["scan"], late["gate"], late["at"], late["scan"],
                           item["seq"], item["state"])

    # -- reading ------------------------------------------------------------------------------------
    def outbox_counts(self) -> dict[str, int]:
        with self.store.transaction() as db:
            return dict(db.execute("SELECT state, count(*) FROM outbox WHERE state != 'done' GROUP BY state"))

    def conflicts(self) -> list[dict[str, object]]:
        with self.store.transaction() as db:
            cur = db.execute("SELECT * FROM conflicts ORDER BY recorded_at, late_scan_id")
            names = [c[0] for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # -- helpers --------------------------------------------------------------------------------------
    def _known(self, db: sqlite3.Connection, scan: Scan) -> Redemption | None:
        refused = Store.refused_in(db, scan)  # revoked or superseded: the same check as Store.redeem
        if refused is not None:
            return refused
        held = self._held(db, scan)
        if held is None:
            return None
        if held.scan_id == scan.scan_id and held.source == "local":
            return Redemption(Outcome.ADMIT, held.first(), replay=True)
        return self._already_used(db, scan, held.first())

    def _held(self, db: sqlite3.Connection, scan: Scan) -> Held | None:
        return self._held_key(db, scan.event or "", scan.ticket_id or "")

    @staticmethod
    def _held_key(db: sqlite3.Connection, event: str, ticket: str) -> Held | None:
        row = db.execute("SELECT scan_id, gate_id, at, provisional, source, arbiter FROM redeemed"
                         " WHERE event = ? AND ticket_id = ?", (event, ticket)).fetchone()
        return Held(row[0], row[1], row[2], bool(row[3]), row[4], row[5]) if row else None

    def _enqueue(self, db: sqlite3.Connection, scan: Scan, state: str) -> bool:
        now = self.clock()
        return bool(db.execute(
            "INSERT INTO outbox (scan_id, state, event, ticket_id, generation, gate_id, at, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (scan.scan_id, state, scan.event, scan.ticket_id, scan.generation, scan.gate_id, scan.at, now, now),
        ).rowcount)

    def _take(self, db: sqlite3.Connection, scan: Scan, state: str, answer: str = "") -> bool:
        """Compare-and-set the entry from `claim`: False if the crash recovery took it first."""
        return db.execute("UPDATE outbox SET state = ?, answer = ?, updated = ? WHERE scan_id = ? AND state = 'claim'",
                          (state, answer, self.clock(), scan.scan_id)).rowcount == 1

    def _set_state(self, db: sqlite3.Connection, scan_id: str, state: str, answer: str = "") -> None:
        db.execute("UPDATE outbox SET state = ?, answer = ?, updated = ? WHERE scan_id = ?",
                   (state, answer, self.clock(), scan_id))

    @staticmethod
    def _insert(db: sqlite3.Connection, event: str | None, ticket: str | None, gen: int, scan_id: str, gate: str,
                at: float, *, provisional: bool = False, source: str = "local", arbiter: str = "",
                seq: int | None = None) -> None:
        db.execute("INSERT INTO redeemed (event, ticket_id, generation, scan_id, gate_id, at, provisional, source,"
                   " arbiter, arbiter_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (event, ticket, gen, scan_id, gate, at, int(provisional), source, arbiter, seq))

    def _admit(self, db: sqlite3.Connection, scan: Scan, *, provisional: bool = False, arbiter: str = "",
               seq: int | None = None) -> None:
        self._insert(db, scan.event, scan.ticket_id, scan.generation, scan.scan_id, scan.gate_id, scan.at,
                     provisional=provisional, arbiter=arbiter, seq=seq)
        Store.audit_in(db, scan, Outcome.ADMIT, Reason.NONE, "provisional" if provisional else "")

    @staticmethod
    def _adopt(db: sqlite3.Connection, scan: Scan, seq: int | None) -> Redemption:
        db.execute("UPDATE redeemed SET source = 'local', arbiter = 'won', arbiter_seq = coalesce(?, arbiter_seq)"
                   " WHERE scan_id = ? AND event = ? AND ticket_id = ?", (seq, scan.scan_id, scan.event, scan.ticket_id))
        Store.audit_in(db, scan, Outcome.ADMIT, Reason.NONE)
        return Redemption(Outcome.ADMIT)

    @staticmethod
    def _already_used(db: sqlite3.Connection, scan: Scan, first: FirstUse) -> Redemption:
        Store.audit_in(db, scan, Outcome.ALREADY_USED, Reason.ALREADY_USED, f"first used at {first.gate_id}")
        return Redemption(Outcome.ALREADY_USED, first)

    @staticmethod
    def _revoked(db: sqlite3.Connection, scan: Scan) -> Redemption:
        Store.audit_in(db, scan, Outcome.REVOKED, Reason.REVOKED)
        return Redemption(Outcome.REVOKED)

    @staticmethod
    def _deny(db: sqlite3.Connection, scan: Scan, why: str) -> Redemption:
        Store.audit_in(db, scan, Outcome.FAULT, Reason.OFFLINE, why)
        return Redemption(Outcome.FAULT, reason=Reason.OFFLINE, detail=why)

    def _revoke_locally(self, db: sqlite3.Connection, scan: Scan) -> None:
        db.execute("INSERT INTO revoked (event, ticket_id, at, by, reason) VALUES (?, ?, ?, 'arbiter', '')"
                   " ON CONFLICT DO NOTHING", (scan.event, scan.ticket_id, self.clock()))

    def _conflict(self, db: sqlite3.Connection, event: str, ticket: str, first_gate: str, first_at: float,
                  first_scan: str, late_gate: str, late_at: float, late_scan: str, seq: int | None,
                  state: str) -> None:
        db.execute("INSERT INTO conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (late_scan_id) DO"
                   " UPDATE SET state = excluded.state, seq = coalesce(excluded.seq, seq),"
                   " first_gate = excluded.first_gate, first_at = excluded.first_at,"
                   " first_scan_id = excluded.first_scan_id",
                   (late_scan, event, ticket, first_gate, first_at, first_scan, late_gate, late_at, seq, state,
                    self.clock()))
        mark = "conflict" if state == "open" else "won"
        db.execute("UPDATE redeemed SET arbiter = ? WHERE event = ? AND ticket_id = ? AND scan_id = ?"
                   " AND source = 'local'", (mark, event, ticket, late_scan))

    @staticmethod
    def _position(db: sqlite3.Connection) -> tuple[str, int]:
        rows = dict(db.execute("SELECT key, value FROM sync_state WHERE key IN ('epoch', 'seq')").fetchall())
        return rows.get("epoch", ""), int(rows.get("seq", "0"))

    @staticmethod
    def _save_position(db: sqlite3.Connection, epoch: str, seq: int) -> None:
        db.executemany("INSERT INTO sync_state VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       [("epoch", epoch), ("seq", str(seq))])
