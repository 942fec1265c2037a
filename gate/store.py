"""The local store: one SQLite file per gate, and the only code that writes its redeemed set and audit log.

What a caller may rely on:

* WAL mode; every write that decides or records a scan commits with
  ``synchronous=FULL`` before the method returns, so a decision returned as
  ADMIT survives a crash or power cut.
* ``redeem`` is an atomic add-if-absent on the redeemed set keyed by
  (event, ticket id), with the revocation check and the audit row in the same
  transaction (``BEGIN IMMEDIATE``): safe with several processes on one file.
* The audit log is append-only (triggers refuse UPDATE and DELETE).
* Every sqlite3 or OS error becomes a StoreError: callers fail closed.
* Schema migrations (gate/migrations.py) are recorded in ``schema_migrations``
  in the same transaction as the change; an integrity check runs at open.
* `transaction()` yields a `StoreTx`: the redeemed set, revocations,
  generations and audit log as domain verbs inside one transaction.  The sync
  ledger (gate/ledger.py, which owns the outbox, conflict and stream-position
  tables of the same file) extends a redemption with it; nothing else writes
  these tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gate.exc import StoreCorrupt, StoreError
from gate.migrations import MIGRATIONS
from gate.outcomes import Outcome, Reason
from gate.passes import ListScan, PassState
from gate.sqlite import Database

#: the event of a revocation that holds for every event
ANY_EVENT = "*"


@dataclass(frozen=True)
class Scan:
    """One presentation of a code at a gate (the audit log's row)."""

    scan_id: str
    gate_id: str
    at: float
    event: str | None = None
    ticket_id: str | None = None
    generation: int = 0
    #: the code as shown (signed ticket text, or a holder's QH code): a claim carries it to the arbiter,
    #: which verifies it before it spends anything; not part of the audit row
    text: str = ""


@dataclass(frozen=True)
class FirstUse:
    """Where and when a ticket was redeemed first."""

    gate_id: str
    at: float
    scan_id: str
    provisional: bool = False


@dataclass(frozen=True)
class Redemption:
    """The answer of the add-if-absent: ADMIT, ALREADY_USED or REVOKED.

    A claimer (sync/) may also answer FAULT; `reason` None lets the Decider
    derive it from the outcome; `provisional` marks an ADMIT decided offline.
    """

    outcome: Outcome
    first: FirstUse | None = None
    replay: bool = False
    reason: Reason | None = None
    provisional: bool = False
    detail: str = ""


@dataclass(frozen=True)
class Held:
    """The redeemed row of a ticket: who holds it, whether it was decided here, what the arbiter said of it.

    `source` is ``local`` (admitted here) or ``arbiter`` (applied from the arbiter's stream or answer);
    `arbiter` is ``''`` (not yet confirmed), ``won``, ``conflict`` (a late admission that lost) or ``revoked``.
    """

    scan_id: str
    gate_id: str
    at: float
    provisional: bool
    source: str
    arbiter: str

    def first(self) -> FirstUse:
        return FirstUse(self.gate_id, self.at, self.scan_id, self.provisional)


class StoreTx:
    """The gate's tables inside one `Store.transaction()`; every method runs on that transaction."""

    __slots__ = ("db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    # the redemption path ---------------------------------------------------------------------
    def refused(self, scan: Scan) -> Redemption | None:
        """REVOKED (revoked, or an older ownership generation: superseded), audited; None when the ticket may
        be spent.  The one check before any redemption, local or claimed."""
        # One statement for both lists: this runs on every redemption, inside its write lock.
        revoked, current = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM revoked WHERE ticket_id = ?1 AND event IN (?2, ?3)),"
            " (SELECT generation FROM generations WHERE event = ?2 AND ticket_id = ?1)",
            (scan.ticket_id, scan.event, ANY_EVENT)).fetchone()
        return self._refusal(scan, revoked, current)

    def _refusal(self, scan: Scan, revoked: object, current: int | None) -> Redemption | None:
        """`refused`'s answer from what it read: revoked, and the ticket's current generation (None: not known)."""
        if revoked:
            self.audit(scan, Outcome.REVOKED, Reason.REVOKED)
            return Redemption(Outcome.REVOKED)
        if current is None or scan.generation >= current:
            return None
        detail = f"generation {scan.generation} superseded by {current}"
        self.audit(scan, Outcome.REVOKED, Reason.SUPERSEDED, detail)
        return Redemption(Outcome.REVOKED, reason=Reason.SUPERSEDED, detail=detail)

    def take(self, scan: Scan, *, provisional: bool = False, arbiter: str = "", seq: int | None = None) -> bool:
        """Add-if-absent of the scan's ticket to the redeemed set, held by this scan; False if it was held."""
        return bool(self.db.execute(
            "INSERT INTO redeemed (event, ticket_id, generation, scan_id, gate_id, at, provisional, arbiter,"
            " arbiter_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (scan.event, scan.ticket_id, scan.generation, scan.scan_id, scan.gate_id, scan.at, int(provisional),
             arbiter, seq)).rowcount)

    def admit(self, scan: Scan, *, provisional: bool = False, arbiter: str = "", seq: int | None = None) -> None:
        """The scan's ticket held by this scan (it was not held), and its ADMIT in the audit log."""
        if not self.take(scan, provisional=provisional, arbiter=arbiter, seq=seq):
            raise StoreError(f"ticket {scan.event}/{scan.ticket_id} is held already")  # callers checked `holder`
        self.audit(scan, Outcome.ADMIT, Reason.NONE, "provisional" if provisional else "")

    def holder(self, event: str, ticket_id: str) -> Held | None:
        row = self.db.execute("SELECT scan_id, gate_id, at, provisional, source, arbiter FROM redeemed"
                              " WHERE event = ? AND ticket_id = ?", (event, ticket_id)).fetchone()
        return Held(row[0], row[1], row[2], bool(row[3]), row[4], row[5]) if row else None

    def first_use(self, event: str, ticket_id: str) -> FirstUse | None:
        row = self.db.execute("SELECT gate_id, at, scan_id, provisional FROM redeemed WHERE event = ? AND"
                              " ticket_id = ?", (event, ticket_id)).fetchone()
        return FirstUse(row[0], row[1], row[2], bool(row[3])) if row else None

    # the arbiter's word on the redeemed set (gate/ledger.py) -----------------------------------
    def hold_for(self, event: str, ticket_id: str, generation: int, first: FirstUse, *, seq: int | None = None) -> None:
        """The ticket held by another gate's winning scan (from the arbiter's answer or stream)."""
        self.db.execute("INSERT INTO redeemed (event, ticket_id, generation, scan_id, gate_id, at, provisional,"
                        " source, arbiter, arbiter_seq) VALUES (?, ?, ?, ?, ?, ?, 0, 'arbiter', 'won', ?)",
                        (event, ticket_id, generation, first.scan_id, first.gate_id, first.at, seq))

    def confirm(self, event: str, ticket_id: str, scan_id: str, mark: str, seq: int | None = None, *,
                adopt: bool = False, only_local: bool = False) -> None:
        """Record the arbiter's word (`mark`: won, conflict, revoked) on the row held by `scan_id`; `adopt`
        makes it a local admission (our own win came back on the stream first); `seq` None keeps the old."""
        self.db.execute("UPDATE redeemed SET arbiter = ?, arbiter_seq = coalesce(?, arbiter_seq)"
                        + (", source = 'local'" if adopt else "")
                        + " WHERE event = ? AND ticket_id = ? AND scan_id = ?"
                        + (" AND source = 'local'" if only_local else ""),
                        (mark, seq, event, ticket_id, scan_id))

    def drop(self, event: str, ticket_id: str, scan_id: str, *, any_source: bool = False) -> None:
        """The arbiter released the scan's redemption: the row goes (an admin's un-redeem: whoever made it)."""
        self.db.execute("DELETE FROM redeemed WHERE event = ? AND ticket_id = ? AND scan_id = ?"
                        + ("" if any_source else " AND source = 'arbiter'"), (event, ticket_id, scan_id))

    # revocations and generations ------------------------------------------------------------------
    def revoke(self, event: str | None, ticket_id: str, *, at: float, by: str, reason: str = "") -> bool:
        """Add to the revocation list (event None: every event); False if it was there already."""
        return bool(self.db.execute(
            "INSERT INTO revoked (event, ticket_id, at, by, reason) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (event or ANY_EVENT, ticket_id, at, by, reason)).rowcount)

    def is_revoked(self, event: str, ticket_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM revoked WHERE ticket_id = ? AND event IN (?, ?)",
                               (ticket_id, event, ANY_EVENT)).fetchone() is not None

    def supersede(self, event: str, ticket_id: str, generation: int, *, at: float, by: str = "") -> bool:
        """Keep the highest generation ever recorded; False if it (or a higher one) was known already."""
        return bool(self.db.execute(
            "INSERT INTO generations (event, ticket_id, generation, at, by) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (event, ticket_id) DO UPDATE SET generation = excluded.generation,"
            " at = excluded.at, by = excluded.by WHERE excluded.generation > generations.generation",
            (event, ticket_id, generation, at, by)).rowcount)

    # the audit log ---------------------------------------------------------------------------------
    def audit(self, scan: Scan, outcome: Outcome, reason: Reason, detail: str = "") -> None:
        self.db.execute(
            "INSERT INTO audit (at, gate_id, scan_id, event, ticket_id, outcome, reason, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (scan.at, scan.gate_id, scan.scan_id, scan.event, scan.ticket_id, outcome.value, reason.value, detail),
        )

    # check-in lists (gate/checkin.py decides; docs/checkin-lists.md) ---------------------------------------
    def pass_state(self, event: str, ticket_id: str, list_name: str) -> PassState:
        """The ticket's state on the list (a fresh PassState if it was never scanned there)."""
        row = self.db.execute("SELECT entries, day, day_entries, inside, last_entry FROM passes WHERE event = ?"
                              " AND ticket_id = ? AND list = ?", (event, ticket_id, list_name)).fetchone()
        return PassState(row[0], row[1], row[2], bool(row[3]), row[4]) if row else PassState()

    def set_pass(self, scan: Scan, list_name: str, state: PassState) -> None:
        """The ticket's new state on the list, written by `scan`."""
        self.db.execute(
            "INSERT INTO passes (event, ticket_id, list, entries, day, day_entries, inside, last_entry, scan_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event, ticket_id, list) DO UPDATE SET"
            " entries = excluded.entries, day = excluded.day, day_entries = excluded.day_entries,"
            " inside = excluded.inside, last_entry = excluded.last_entry, scan_id = excluded.scan_id",
            (scan.event, scan.ticket_id, list_name, state.entries, state.day, state.day_entries, int(state.inside),
             state.last_entry, scan.scan_id))

    def put_pass(self, event: str, ticket_id: str, list_name: str, state: PassState, scan_id: str) -> None:
        """The ticket's state on the list as the arbiter holds it (its answer or stream), after `scan_id`."""
        self.set_pass(Scan(scan_id, "", 0.0, event, ticket_id), list_name, state)

    def arbiter_pass(self, event: str, ticket_id: str, list_name: str, state: PassState, scan_id: str) -> None:
        """A stream item of the ticket's state on the list, applied unless this gate's own last move of it has not
        reached the arbiter yet (an entry of gate/passledger.py's outbox not `done`: its answer brings the state)."""
        last = self.pass_scan_id(event, ticket_id, list_name)
        if last is not None and last != scan_id and self.db.execute(
                "SELECT 1 FROM pass_outbox WHERE scan_id = ? AND state != 'done'", (last,)).fetchone():
            return
        self.put_pass(event, ticket_id, list_name, state, scan_id)

    def pass_scan_id(self, event: str, ticket_id: str, list_name: str) -> str | None:
        """The scan that last set the ticket's state on the list (None: never scanned there)."""
        row = self.db.execute("SELECT scan_id FROM passes WHERE event = ? AND ticket_id = ? AND list = ?",
                              (event, ticket_id, list_name)).fetchone()
        return str(row[0]) if row else None

    def list_known(self, scan: Scan) -> Redemption | None:
        """What a list-decided scan already is: refused (revoked or superseded, as `refused`), or the answer given
        to its scan id before (a replay); None for a scan still to judge."""
        return self.list_lookup(scan, "")[0]

    def list_lookup(self, scan: Scan, list_name: str) -> tuple[Redemption | None, PassState]:
        """`list_known` and `pass_state` of the scan's ticket on `list_name` in one statement (the hot path of a
        list decision: the revocation check, the audit row of a replay and the state, read together)."""
        row = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM revoked WHERE ticket_id = ?1 AND event IN (?2, ?3)),"
            " (SELECT generation FROM generations WHERE event = ?2 AND ticket_id = ?1),"
            " j.outcome, j.reason, j.detail, p.entries, p.day, p.day_entries, p.inside, p.last_entry,"
            " j.list, j.list_version"
            " FROM (SELECT 1) LEFT JOIN audit AS j ON j.scan_id = ?4 AND j.list IS NOT NULL"
            " LEFT JOIN passes AS p ON p.event = ?2 AND p.ticket_id = ?1 AND p.list = ?5",
            (scan.ticket_id, scan.event, ANY_EVENT, scan.scan_id, list_name)).fetchone()
        state = PassState(row[5], row[6], row[7], bool(row[8]), row[9]) if row[5] is not None else PassState()
        refused = self._refusal(scan, row[0], row[1])
        if refused is not None:
            return refused, state
        if row[2] is None:
            return None, state
        return Redemption(Outcome(row[2]), replay=True, reason=Reason(row[3]),
                          detail=ruling_detail(row[4], row[10], row[11])), state

    def journal(self, scan: Scan, entry: ListScan, note: str = "") -> None:
        """Audit a list-decided scan: its one audit row names the list and version it was decided by and the
        direction (migration 10: the journal is the audit), its detail in words ``list NAME@VERSION: ...``
        (the ruling's detail, then `note`)."""
        self.db.execute(
            "INSERT INTO audit (at, gate_id, scan_id, event, ticket_id, outcome, reason, detail, list, list_version,"
            " direction) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (scan.at, scan.gate_id, scan.scan_id, scan.event, scan.ticket_id, entry.outcome, entry.reason,
             list_words(entry.list, entry.list_version, "; ".join(x for x in (entry.detail, note) if x)),
             entry.list, entry.list_version, entry.direction))


def list_words(name: str, version: int, detail: str) -> str:
    """A list decision's audit detail: ``list NAME@VERSION``, then ``: `` and `detail` if there is one."""
    return f"list {name}@{version}" + (f": {detail}" if detail else "")


def ruling_detail(words: str, name: str, version: int) -> str:
    """What `list_words` was given as detail (the text after ``list NAME@VERSION: ``; "" if none)."""
    prefix = f"list {name}@{version}: "
    return words[len(prefix):] if words.startswith(prefix) else ""


class Store:
    """A gate's SQLite store.  Open with `Store.open(path)`; close when done."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.conn = database.conn
        self.path = database.path

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout: float = 10.0, check: bool = True) -> Store:
        return cls(Database.open(path, MIGRATIONS, error=StoreError, corrupt=StoreCorrupt, what="store",
                                 busy_timeout=busy_timeout, check=check))

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[StoreTx]:
        """BEGIN IMMEDIATE ... COMMIT; any sqlite3/OS error becomes StoreError."""
        with self.database.transaction() as db:
            yield StoreTx(db)

    @property
    def version(self) -> int:
        return self.database.version

    # the redemption path -------------------------------------------------------
    def redeem(self, scan: Scan, *, provisional: bool = False) -> Redemption:
        """Spend the ticket of `scan` once: add-if-absent, revocation check and audit, one commit.

        A replay of the scan id that already redeemed the ticket answers ADMIT
        again and writes nothing (idempotency by key).
        """
        if scan.event is None or scan.ticket_id is None:
            raise ValueError("redeem needs a scan of a parsed ticket")
        with self.transaction() as tx:
            refused = tx.refused(scan)
            if refused is not None:
                return refused
            if tx.take(scan, provisional=provisional):
                tx.audit(scan, Outcome.ADMIT, Reason.NONE, "provisional" if provisional else "")
                return Redemption(Outcome.ADMIT)
            first = tx.first_use(scan.event, scan.ticket_id)
            if first is not None and first.scan_id == scan.scan_id:
                return Redemption(Outcome.ADMIT, first, replay=True)
            tx.audit(scan, Outcome.ALREADY_USED, Reason.ALREADY_USED, f"first used at {first.gate_id}" if first else "")
            return Redemption(Outcome.ALREADY_USED, first)

    def record(self, scan: Scan, outcome: Outcome, reason: Reason, detail: str = "") -> None:
        """Append a scan that redeemed nothing (INVALID and the like) to the audit log, durably."""
        with self.transaction() as tx:
            tx.audit(scan, outcome, reason, detail)

    def first_use(self, event: str, ticket_id: str) -> FirstUse | None:
        with self.database.lock:
            return StoreTx(self.conn).first_use(event, ticket_id)

    def is_redeemed(self, event: str, ticket_id: str) -> bool:
        return self.first_use(event, ticket_id) is not None

    # revocations and ownership generations (docs/ownership.md) ---------------------------
    def revoke(self, event: str | None, ticket_id: str, *, at: float, by: str, reason: str = "") -> bool:
        """Add to the revocation list (event None: every event); False if it was there already."""
        with self.transaction() as tx:
            return tx.revoke(event, ticket_id, at=at, by=by, reason=reason)

    def is_revoked(self, event: str, ticket_id: str) -> bool:
        with self.database.lock:
            return StoreTx(self.conn).is_revoked(event, ticket_id)

    def supersede(self, event: str, ticket_id: str, generation: int, *, at: float, by: str = "") -> bool:
        """Record that `generation` now holds the ticket: every older generation is REVOKED superseded.

        Keeps the highest generation ever recorded; False if it was known already
        (or a higher one was), so applying it twice changes nothing.
        """
        with self.transaction() as tx:
            return tx.supersede(event, ticket_id, generation, at=at, by=by)

    def generation(self, event: str, ticket_id: str) -> int:
        """The newest generation recorded for the ticket (0: none)."""
        rows = self.database.rows("SELECT generation FROM generations WHERE event = ? AND ticket_id = ?",
                                  (event, ticket_id))
        return int(rows[0]["generation"]) if rows else 0  # type: ignore[call-overload]

    # reading ------------------------------------------------------------------
    def history(self, ticket_id: str, event: str | None = None) -> list[dict[str, object]]:
        """Every audit row of one ticket, oldest first."""
        sql = "SELECT seq, at, gate_id, scan_id, event, ticket_id, outcome, reason, detail FROM audit WHERE ticket_id = ?"
        args: tuple[object, ...] = (ticket_id,)
        if event is not None:
            sql, args = sql + " AND event = ?", (*args, event)
        return self.database.rows(sql + " ORDER BY seq", args)

    def counts(self) -> dict[str, int]:
        """Audit rows by outcome."""
        with self.database.lock:
            return dict(self.conn.execute("SELECT outcome, count(*) FROM audit GROUP BY outcome").fetchall())

    def inside(self) -> dict[str, tuple[int, int]]:
        """Per list: (tickets inside, entries admitted) as this gate's store knows them (its own scans)."""
        rows = self.database.rows("SELECT list, sum(inside) AS inside, sum(entries) AS entries FROM passes"
                                  " GROUP BY list ORDER BY list")
        return {str(r["list"]): (int(r["inside"]), int(r["entries"])) for r in rows}  # type: ignore[call-overload]

    def redeemed_keys(self) -> set[tuple[str, str]]:
        with self.database.lock:
            return {(e, t) for e, t in self.conn.execute("SELECT event, ticket_id FROM redeemed")}
