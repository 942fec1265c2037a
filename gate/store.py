"""The local store: one SQLite file per gate.

What a caller may rely on:

* WAL mode; every write that decides or records a scan commits with
  ``synchronous=FULL`` before the method returns, so a decision returned as
  ADMIT survives a crash or power cut.
* ``redeem`` is an atomic add-if-absent on the redeemed set keyed by
  (event, ticket id), with the revocation check and the audit row in the same
  transaction (``BEGIN IMMEDIATE``): safe with several processes on one file.
* The audit log is append-only (triggers refuse UPDATE and DELETE).
* Every sqlite3 or OS error becomes a StoreError: callers fail closed.
* Schema migrations are recorded in ``schema_migrations`` in the same
  transaction as the change; an integrity check runs at open.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gate.exc import StoreCorrupt, StoreError
from gate.migrations import MIGRATIONS
from gate.outcomes import Outcome, Reason
from gate.sqlite import connect_durable, immediate

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


def diagnose(path: Path) -> str:
    """A hint for ops staff about the disk under `path` (read-only or full), or ''."""
    try:
        st = os.statvfs(path.parent if not path.exists() else path)
    except OSError:
        return ""
    if st.f_flag & os.ST_RDONLY:
        return " (the disk is mounted read-only)"
    if st.f_bavail * st.f_frsize < 64 * 1024:
        return " (the disk is full)"
    return ""


class Store:
    """A gate's SQLite store.  Open with `Store.open(path)`; close when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout: float = 10.0, check: bool = True) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_durable(path, busy_timeout)
            conn.execute("PRAGMA foreign_keys=ON")
            store = cls(conn, path)
            if check:
                store.check()
            store.migrate()
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}{diagnose(path)}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreCorrupt(f"{path}: not a usable store: {exc}") from None
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}{diagnose(path)}") from None
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # transactions ------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; any sqlite3/OS error becomes StoreError."""
        with immediate(self.conn, lambda exc: StoreError(f"{self.path}: {exc}{diagnose(self.path)}"),
                       self._lock) as db:
            yield db

    def check(self) -> None:
        """Raise StoreCorrupt unless SQLite's quick_check says ok."""
        rows = self.conn.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            raise StoreCorrupt(f"{self.path}: integrity check failed: {rows[:5]}")

    def migrate(self) -> int:
        """Apply pending migrations, each with its record in one transaction; return the version."""
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations"
                       " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
        version = 0
        for number, name, script in MIGRATIONS:
            with self.transaction() as db:
                done = db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (number,)).fetchone()
                if not done:
                    for statement in script:
                        db.execute(statement)
                    db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, time.time()))
            version = number
        return version

    @property
    def version(self) -> int:
        row = self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    # the redemption path -------------------------------------------------------
    def redeem(self, scan: Scan, *, provisional: bool = False) -> Redemption:
        """Spend the ticket of `scan` once: add-if-absent, revocation check and audit, one commit.

        A replay of the scan id that already redeemed the ticket answers ADMIT
        again and writes nothing (idempotency by key).
        """
        if scan.event is None or scan.ticket_id is None:
            raise ValueError("redeem needs a scan of a parsed ticket")
        key = (scan.event, scan.ticket_id)
        with self.transaction() as db:
            refused = self.refused_in(db, scan)
            if refused is not None:
                return refused
            inserted = db.execute(
                "INSERT INTO redeemed (event, ticket_id, generation, scan_id, gate_id, at, provisional)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (*key, scan.generation, scan.scan_id, scan.gate_id, scan.at, int(provisional)),
            ).rowcount
            if inserted:
                self._audit(db, scan, Outcome.ADMIT, Reason.NONE, "provisional" if provisional else "")
                return Redemption(Outcome.ADMIT)
            first = self._first_use(db, *key)
            if first is not None and first.scan_id == scan.scan_id:
                return Redemption(Outcome.ADMIT, first, replay=True)
            detail = f"first used at {first.gate_id}" if first else ""
            self._audit(db, scan, Outcome.ALREADY_USED, Reason.ALREADY_USED, detail)
            return Redemption(Outcome.ALREADY_USED, first)

    def record(self, scan: Scan, outcome: Outcome, reason: Reason, detail: str = "") -> None:
        """Append a scan that redeemed nothing (INVALID and the like) to the audit log, durably."""
        with self.transaction() as db:
            self._audit(db, scan, outcome, reason, detail)

    def first_use(self, event: str, ticket_id: str) -> FirstUse | None:
        with self._lock:
            return self._first_use(self.conn, event, ticket_id)

    def is_redeemed(self, event: str, ticket_id: str) -> bool:
        return self.first_use(event, ticket_id) is not None

    # revocations ------------------------------------------------------------
    def revoke(self, event: str | None, ticket_id: str, *, at: float, by: str, reason: str = "") -> bool:
        """Add to the revocation list (event None: every event); False if it was there already."""
        with self.transaction() as db:
            return bool(db.execute(
                "INSERT INTO revoked (event, ticket_id, at, by, reason) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING", (event or ANY_EVENT, ticket_id, at, by, reason)).rowcount)

    def is_revoked(self, event: str, ticket_id: str) -> bool:
        with self._lock:
            return self._is_revoked(self.conn, event, ticket_id)

    # ownership generations (gate/chain/, docs/ownership.md) ----------------------------
    def supersede(self, event: str, ticket_id: str, generation: int, *, at: float, by: str = "") -> bool:
        """Record that `generation` now holds the ticket: every older generation is REVOKED superseded.

        Keeps the highest generation ever recorded; False if it was known already
        (or a higher one was), so applying it twice changes nothing.
        """
        with self.transaction() as db:
            return bool(db.execute(
                "INSERT INTO generations (event, ticket_id, generation, at, by) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (event, ticket_id) DO UPDATE SET generation = excluded.generation,"
                " at = excluded.at, by = excluded.by WHERE excluded.generation > generations.generation",
                (event, ticket_id, generation, at, by)).rowcount)

    def generation(self, event: str, ticket_id: str) -> int:
        """The newest generation recorded for the ticket (0: none)."""
        with self._lock:
            row = self.conn.execute("SELECT generation FROM generations WHERE event = ? AND ticket_id = ?",
                                    (event, ticket_id)).fetchone()
            return int(row[0]) if row else 0

    @staticmethod
    def refused_in(db: sqlite3.Connection, scan: Scan) -> Redemption | None:
        """Inside `transaction()`: REVOKED (revoked, or an older ownership generation: superseded), audited;
        None when the ticket may be spent.  The one check before any redemption, local or claimed."""
        # One statement for both lists: this runs on every redemption, inside its write lock.
        revoked, current = db.execute(
            "SELECT EXISTS (SELECT 1 FROM revoked WHERE ticket_id = ?1 AND event IN (?2, ?3)),"
            " (SELECT generation FROM generations WHERE event = ?2 AND ticket_id = ?1)",
            (scan.ticket_id, scan.event, ANY_EVENT)).fetchone()
        if revoked:
            Store._audit(db, scan, Outcome.REVOKED, Reason.REVOKED, "")
            return Redemption(Outcome.REVOKED)
        if current is None or scan.generation >= current:
            return None
        detail = f"generation {scan.generation} superseded by {current}"
        Store._audit(db, scan, Outcome.REVOKED, Reason.SUPERSEDED, detail)
        return Redemption(Outcome.REVOKED, reason=Reason.SUPERSEDED, detail=detail)

    # reading ------------------------------------------------------------------
    def history(self, ticket_id: str, event: str | None = None) -> list[dict[str, object]]:
        """Every audit row of one ticket, oldest first."""
        sql = "SELECT seq, at, gate_id, scan_id, event, ticket_id, outcome, reason, detail FROM audit WHERE ticket_id = ?"
        args: tuple[object, ...] = (ticket_id,)
        if event is not None:
            sql, args = sql + " AND event = ?", (*args, event)
        with self._lock:
            cur = self.conn.execute(sql + " ORDER BY seq", args)
            names = [c[0] for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        """Audit rows by outcome."""
        with self._lock:
            return dict(self.conn.execute("SELECT outcome, count(*) FROM audit GROUP BY outcome").fetchall())

    def redeemed_keys(self) -> set[tuple[str, str]]:
        with self._lock:
            return {(e, t) for e, t in self.conn.execute("SELECT event, ticket_id FROM redeemed")}

    # helpers -------------------------------------------------------------------
    # Public for code that extends a redemption transaction (sync/ledger.py): call
    # them inside `transaction()` with the connection it yields.
    @staticmethod
    def revoked_in(db: sqlite3.Connection, event: str, ticket_id: str) -> bool:
        return Store._is_revoked(db, event, ticket_id)

    @staticmethod
    def audit_in(db: sqlite3.Connection, scan: Scan, outcome: Outcome, reason: Reason, detail: str = "") -> None:
        Store._audit(db, scan, outcome, reason, detail)

    @staticmethod
    def _is_revoked(db: sqlite3.Connection, event: str, ticket_id: str) -> bool:
        return db.execute("SELECT 1 FROM revoked WHERE ticket_id = ? AND event IN (?, ?)",
                          (ticket_id, event, ANY_EVENT)).fetchone() is not None

    @staticmethod
    def _first_use(db: sqlite3.Connection, event: str, ticket_id: str) -> FirstUse | None:
        row = db.execute("SELECT gate_id, at, scan_id, provisional FROM redeemed WHERE event = ? AND ticket_id = ?",
                         (event, ticket_id)).fetchone()
        return FirstUse(row[0], row[1], row[2], bool(row[3])) if row else None

    @staticmethod
    def _audit(db: sqlite3.Connection, scan: Scan, outcome: Outcome, reason: Reason, detail: str) -> None:
        db.execute(
            "INSERT INTO audit (at, gate_id, scan_id, event, ticket_id, outcome, reason, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (scan.at, scan.gate_id, scan.scan_id, scan.event, scan.ticket_id, outcome.value, reason.value, detail),
        )
