"""The arbiter's durable compare-and-set: one SQLite file (WAL, synchronous=FULL).

What a caller may rely on:

* `apply` runs a whole batch of claims, releases and revocations in one
  BEGIN IMMEDIATE transaction and returns only after COMMIT: an answer or a
  stream item it returns is durable (group commit: answer nothing before).
* Claims are an insert-if-absent on (event, ticket id).  Every decided scan
  id is remembered with its answer, so a replayed scan id gets the same
  answer and changes nothing (idempotency by key).  Every admitted scan ends
  up as the holder, an open conflict or a revoked answer: an admitted (late)
  claim is recorded even against a release tombstone of its scan id.
* A late claim (``admitted``: the gate already let someone in offline) that
  finds the ticket held by another scan is a conflict: recorded once per
  late scan id and put on the stream.
* A release drops the ticket if that scan holds it and tombstones the scan
  id, so a stale copy of its claim can never win later.  A scan that was
  admitted is never released.  If late admissions were recorded as
  conflicts against the released scan, the oldest takes the ticket over
  (its conflict becomes void): only real double entries stay conflicts.
* `publish_lists` puts each signed check-in list document on the stream once
  (item kind ``list``; ``list_documents`` remembers which), for the gates.
* Every change other gates must apply gets the next stream sequence number;
  sequence numbers are never reused.  `epoch` names this store so gates
  notice a replaced arbiter database and catch up from zero.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from gate.rules import CheckinList
from gate.sqlite import Database
from sync.arbiter import passes
from sync.arbiter.schema import MIGRATIONS, adopt
from sync.exc import ArbiterStoreError
from sync.wire import Answer, Claim, First, Json, Override, PassAnswer, Release, Revocation, Supersession, Transition

log = logging.getLogger(__name__)
ANY_EVENT = "*"

Op = Claim | Release | Revocation | Supersession | Override | Transition
#: everything a claim is decided on, in one statement (the hot path): the scan id's earlier answer if any,
#: whether the ticket is revoked, its current ownership generation, and who holds it
CLAIM_LOOKUP = """
    SELECT s.event, s.ticket_id, s.answer, s.admitted,
           EXISTS (SELECT 1 FROM revoked WHERE ticket_id = :ticket AND event IN (:event, :any)),
           coalesce((SELECT generation FROM generations WHERE event = :event AND ticket_id = :ticket), 0),
           h.gate_id, h.at, h.scan_id, h.arbiter_at, s.gate_id
    FROM (SELECT 1) AS one
    LEFT JOIN scans AS s ON s.scan_id = :scan
    LEFT JOIN claims AS h ON h.event = :event AND h.ticket_id = :ticket"""


class ArbiterStore:
    """Open with `ArbiterStore.open(path)`; one arbiter process per file."""

    def __init__(self, database: Database, clock: Callable[[], float]) -> None:
        self.database = database
        self.conn = database.conn
        self.path = database.path
        self.clock = clock
        self.epoch = ""
        self.checkpoint_errors = 0
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._finish_checkpoint = False  # the thread checkpointed: the next apply copies what came after
        self._errors_lock = threading.Lock()
        #: the verified check-in lists by name (gate/rules.py): what Transitions are judged by
        self.lists: dict[str, CheckinList] = {}

    @classmethod
    def open(cls, path: str | Path, *, clock: Callable[[], float] = time.time) -> ArbiterStore:
        database = Database.open(path, MIGRATIONS, error=ArbiterStoreError, what="arbiter store", check=True,
                                 adopt=adopt)
        store = cls(database, clock)
        store.epoch = str(database.rows("SELECT value FROM meta WHERE key = 'epoch'")[0]["value"])
        return store

    def close(self) -> None:
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join(timeout=5)
        self.database.close()

    def start_checkpointer(self, every: float = 0.5) -> None:
        """Move WAL checkpoints off the commit path: a thread with its own connection checkpoints every
        `every` seconds, so no claim's answer waits for a whole one.

        The thread's checkpoint is PASSIVE: it never blocks a commit, but under steady load commits land
        while it copies, so the WAL is never all copied, never started over, and grows without end, every
        commit extending the file (its fsync then also journals the new size: 0.42 against 0.21-0.27 ms a
        claim here, and 54 MB of WAL after 3,000 claims).  So after each one the next `apply` first copies
        the few frames committed meanwhile itself (a PASSIVE checkpoint with no commit running: it
        finishes), and its commit starts the WAL over: the file stays at the size of half a second's
        commits, overwritten in place."""
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = threading.Thread(target=self._checkpoints, args=(every,), name="checkpoints",
                                              daemon=True)
        self._checkpointer.start()

    def _checkpoint(self, conn: sqlite3.Connection) -> bool:
        """A PASSIVE checkpoint on `conn` (the thread's, or the writer's own); False, counted and logged, if it
        failed."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return True
        except sqlite3.Error as exc:
            with self._errors_lock:  # both the checkpoint thread and the writer count
                self.checkpoint_errors += 1
            log.warning("%s: WAL checkpoint failed: %s", self.path, exc)
            return False

    def _checkpoints(self, every: float) -> None:
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            while not self._stop_checkpoints.wait(every):
                if self._checkpoint(conn):
                    self._finish_checkpoint = True
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self.database.transaction() as db:
            yield db

    # -- the batch -------------------------------------------------------------------------
    def apply(self, ops: Sequence[Op]) -> tuple[list[Answer | PassAnswer], list[Json]]:
        """Decide every op in one durable transaction: (one answer per op, the new stream items); a check-in
        list Transition is judged by sync/arbiter/passes.py and answered with a PassAnswer."""
        if self._finish_checkpoint:  # no commit can land while this runs (this is the only writer): it copies all
            self._finish_checkpoint = False
            self._checkpoint(self.conn)
        now = self.clock()
        answers: list[Answer | PassAnswer] = []
        stream: list[Json] = []
        with self._transaction() as db:
            def emit(**item: object) -> int:
                return self._emit(db, stream, now, **item)
            for op in ops:
                if isinstance(op, Transition):
                    answers.append(passes.transition(db, op, self.lists, now, emit))
                elif isinstance(op, Claim):
                    answers.append(self._claim(db, op, now, stream))
                elif isinstance(op, Release):
                    answers.append(self._release(db, op, now, stream))
                elif isinstance(op, Override):
                    answers.append(self._override(db, op, now, stream))
                elif isinstance(op, Supersession):
                    answers.append(self._supersede(db, op, now, stream))
                else:
                    answers.append(self._revoke(db, op, now, stream))
        return answers, stream

    def transitions(self, moves: Sequence[Transition]) -> tuple[list[PassAnswer], list[Json]]:
        """Judge check-in list transitions in one durable transaction (sync/arbiter/passes.py): (one answer per
        transition, the new stream items), like `apply`."""
        answers, stream = self.apply(moves)
        return [a for a in answers if isinstance(a, PassAnswer)], stream

    def publish_lists(self, documents: Iterable[tuple[CheckinList, Json]]) -> list[Json]:
        """Put each signed list document on the stream once per (name, version), in one durable transaction:
        the new items (kind ``list``: the list's event, name and version, and `doc` unchanged), in order.
        A document this store already put on the stream is skipped, so calling it again changes nothing."""
        now = self.clock()
        stream: list[Json] = []
        with self._transaction() as db:
            for lst, doc in documents:
                if db.execute("SELECT 1 FROM list_documents WHERE name = ? AND version = ?",
                              (lst.name, lst.version)).fetchone() is not None:
                    continue
                seq = self._emit(db, stream, now, kind="list", event=lst.event, ticket="", name=lst.name,
                                 version=lst.version, doc=doc)
                db.execute("INSERT INTO list_documents VALUES (?, ?, ?, ?, ?)",
                           (lst.name, lst.version, lst.event, seq, now))
        return stream

    def _lookup(self, db: sqlite3.Connection, c: Claim) -> Sequence[Any]:
        """CLAIM_LOOKUP's row for `c`, as this transaction sees it now (PgArbiterStore reads a batch's at once)."""
        return cast(Sequence[Any], db.execute(CLAIM_LOOKUP, {"scan": c.scan, "event": c.event, "ticket": c.ticket,
                                                             "any": ANY_EVENT}).fetchone())

    def _claim(self, db: sqlite3.Connection, c: Claim, now: float, stream: list[Json]) -> Answer:
        row = self._lookup(db, c)
        prior = row[0:4] if row[0] is not None else None
        revoked, current = row[4], row[5]
        holder = First(*row[6:10]) if row[6] is not None else None
        if prior is not None and row[10] != c.gate:
            # a scan id is bound to the gate that made it: ids of wins are on the stream for all to see, and
            # another gate's claim with one must neither mark that scan admitted nor add a conflict to it
            return Answer(c.scan, "refused", detail="scan_id_taken: the scan id belongs to another gate")
        if prior is not None and prior[2] == "released" and c.admitted and (prior[0], prior[1]) == (c.event, c.ticket):
            # someone was let in: that is a fact to record, whatever the tombstone said (a correct gate never
            # releases a scan it admitted, so this takes a buggy or forged release)
            db.execute("DELETE FROM scans WHERE scan_id = ?", (c.scan,))
            prior = None
        if prior is not None:
            if (prior[0], prior[1]) != (c.event, c.ticket):
                return Answer(c.scan, "invalid", detail="scan id already used for another ticket")
            if c.admitted and not prior[3]:  # asked online, timed out, admitted offline after all
                db.execute("UPDATE scans SET admitted = 1 WHERE scan_id = ?", (c.scan,))
                if prior[2] == "lost":
                    self._conflict(db, c, now, stream)
            return self._answer_of(db, c.scan)
        if revoked:
            self._remember(db, c, "revoked", now)
            return Answer(c.scan, "revoked")
        if current > c.gen and not c.admitted:
            # an older owner's code: refused here too, not only at gates that have applied the stream item.
            # Not remembered: generations only rise, so a replay gets the same answer.  (A late claim is
            # someone already let in: it is recorded below like any other, as a fact.)
            return Answer(c.scan, "superseded", detail=f"generation {current} is current")
        if holder is None:
            seq = self._emit(db, stream, now, kind="redemption", event=c.event, ticket=c.ticket, gen=c.gen,
                             scan=c.scan, gate=c.gate, at=c.at, arbiter_at=now)
            db.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (c.event, c.ticket, c.scan, c.gate, c.at, c.gen, now, seq))
            self._remember(db, c, "won", now, seq=seq)
            return Answer(c.scan, "won", seq)
        self._remember(db, c, "lost", now, first=holder)
        if c.admitted:
            self._conflict(db, c, now, stream)
        return self._answer_of(db, c.scan)

    def _release(self, db: sqlite3.Connection, r: Release, now: float, stream: list[Json]) -> Answer:
        prior = db.execute("SELECT answer, admitted, gate_id, event, ticket_id FROM scans WHERE scan_id = ?",
                           (r.scan,)).fetchone()
        if prior is not None and (prior[2], prior[3], prior[4]) != (r.gate, r.event, r.ticket):
            # only the gate that claimed a scan may release it: scan ids of wins are on the stream for all to see
            return Answer(r.scan, "refused", detail="a gate can release only its own scans")
        if prior is not None and prior[1]:
            return Answer(r.scan, "refused", detail="an admitted scan is never released")
        if prior is not None and prior[0] == "released":
            return Answer(r.scan, "released")  # a replay: change nothing
        holder = self._holder(db, r.event, r.ticket)
        if holder is not None and holder.scan == r.scan:
            db.execute("DELETE FROM claims WHERE event = ? AND ticket_id = ?", (r.event, r.ticket))
            self._emit(db, stream, now, kind="release", event=r.event, ticket=r.ticket, scan=r.scan, gate=r.gate,
                       arbiter_at=now)
            self._promote(db, r, now, stream)
        if prior is None:
            self._remember(db, Claim(r.scan, r.event, r.ticket, r.gate, 0.0), "released", now)
        else:
            db.execute("UPDATE scans SET answer = 'released', arbiter_at = ? WHERE scan_id = ?", (now, r.scan))
        return Answer(r.scan, "released")

    def _promote(self, db: sqlite3.Connection, r: Release, now: float, stream: list[Json]) -> None:
        """The released scan had lost-late conflicts against it: the oldest late admission takes the ticket."""
        row = db.execute("SELECT c.late_scan_id, c.late_gate, c.late_at, s.generation FROM conflicts c"
                         " JOIN scans s ON s.scan_id = c.late_scan_id WHERE c.first_scan_id = ? AND"
                         " c.state = 'open' ORDER BY c.seq LIMIT 1", (r.scan,)).fetchone()
        if row is None:
            return
        late_scan, gate, at, gen = row
        seq = self._emit(db, stream, now, kind="redemption", event=r.event, ticket=r.ticket, gen=gen,
                         scan=late_scan, gate=gate, at=at, arbiter_at=now)
        db.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (r.event, r.ticket, late_scan, gate, at, gen, now, seq))
        db.execute("UPDATE scans SET answer = 'won', seq = ?, first_gate = NULL, first_at = NULL,"
                   " first_scan_id = NULL, first_arbiter_at = NULL WHERE scan_id = ?", (seq, late_scan))
        db.execute("UPDATE conflicts SET state = 'void' WHERE late_scan_id = ?", (late_scan,))
        self._emit_conflict(db, late_scan, now, stream)
        others = [r[0] for r in db.execute("SELECT late_scan_id FROM conflicts WHERE first_scan_id = ? AND"
                                           " state = 'open'", (r.scan,))]
        db.execute("UPDATE conflicts SET first_scan_id = ?, first_gate = ?, first_at = ? WHERE first_scan_id = ?"
                   " AND state = 'open'", (late_scan, gate, at, r.scan))
        db.execute("UPDATE scans SET first_scan_id = ?, first_gate = ?, first_at = ?, first_arbiter_at = ?"
                   " WHERE first_scan_id = ? AND answer = 'lost'", (late_scan, gate, at, now, r.scan))
        for other in others:
            self._emit_conflict(db, other, now, stream)

    def _revoke(self, db: sqlite3.Connection, v: Revocation, now: float, stream: list[Json]) -> Answer:
        if db.execute("SELECT 1 FROM revoked WHERE event = ? AND ticket_id = ?", (v.event, v.ticket)).fetchone():
            return Answer(v.ticket, "revoked", detail="already revoked")
        person = {"admin": v.admin} if v.admin else {}  # the person who asked: kept in the stream item
        seq = self._emit(db, stream, now, kind="revocation", event=v.event, ticket=v.ticket, by=v.by,
                         reason=v.reason, at=v.at or now, **person)
        db.execute("INSERT INTO revoked VALUES (?, ?, ?, ?, ?, ?)", (v.event, v.ticket, v.at or now, v.by,
                                                                     v.reason, seq))
        return Answer(v.ticket, "revoked", seq)

    def _supersede(self, db: sqlite3.Connection, g: Supersession, now: float, stream: list[Json]) -> Answer:
        """Put a raised ownership generation on the stream (gates refuse older ones: docs/ownership.md).

        Kept in the stream only (no table of its own): gates keep the highest generation they were
        told, so a repeated item changes nothing.  Answered "revoked": the older generations are.
        """
        db.execute("INSERT INTO generations VALUES (?, ?, ?) ON CONFLICT (event, ticket_id) DO UPDATE SET"
                   " generation = excluded.generation WHERE excluded.generation > generations.generation",
                   (g.event, g.ticket, g.gen))  # (SQL that PostgreSQL speaks too: sync/arbiter/pgstore.py)
        seq = self._emit(db, stream, now, kind="generation", event=g.event, ticket=g.ticket, gen=g.gen, by=g.by,
                         at=g.at or now)
        return Answer(g.ticket, "revoked", seq, detail=f"generations below {g.gen}")

    # -- admins' overrides (docs/dashboard.md) ------------------------------------------------
    def _override(self, db: sqlite3.Connection, o: Override, now: float, stream: list[Json]) -> Answer:
        """An admin's `admit` or `unredeem`, decided in the batch's transaction and audited in `overrides`.

        * ``admit`` records a redemption held by gate ``admin:<by>`` with a fresh scan id (remembered as an
          admitted scan: never released) and streams it as a ``redemption``: every gate then answers
          ALREADY_USED.  Answers ``won`` (with the seq), ``lost`` (``first`` holds it) or ``revoked``.
        * ``unredeem`` drops the ticket's holder and streams a ``release`` carrying ``override: "unredeem"``
          (gates drop the row whatever its source); conflicts recorded against it stay on record.  Answers
          ``released`` (with the seq) or ``invalid`` (not redeemed).
        * Every override, whatever its answer, is a row of ``overrides``: action, ticket, ``by`` (the MQTT
          sender), ``admin`` (the person), reason, the arbiter's time, the answer and the stream seq.
        """
        holder = self._holder(db, o.event, o.ticket)
        answer, scan = (self._admit if o.action == "admit" else self._unredeem)(db, o, now, stream, holder)
        db.execute("INSERT INTO overrides (action, event, ticket_id, by, admin, reason, at, answer, seq, scan_id)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (o.action, o.event, o.ticket, o.by, o.admin, o.reason, now, answer.answer, answer.seq, scan))
        return answer

    def _admit(self, db: sqlite3.Connection, o: Override, now: float, stream: list[Json],
               holder: First | None) -> tuple[Answer, str | None]:
        if db.execute("SELECT 1 FROM revoked WHERE ticket_id = ? AND event IN (?, ?)",
                      (o.ticket, o.event, ANY_EVENT)).fetchone():
            return Answer(o.ticket, "revoked", detail="the ticket is revoked"), None
        if holder is not None:
            return Answer(o.ticket, "lost", first=holder), holder.scan
        scan, gate = uuid.uuid4().hex, f"admin:{o.by}"
        seq = self._emit(db, stream, now, kind="redemption", event=o.event, ticket=o.ticket, gen=0, scan=scan,
                         gate=gate, at=now, arbiter_at=now, admin=o.admin, reason=o.reason)
        db.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?, 0, ?, ?)", (o.event, o.ticket, scan, gate, now, now, seq))
        db.execute("INSERT INTO scans (scan_id, event, ticket_id, gate_id, at, generation, admitted, answer, seq,"
                   " arbiter_at) VALUES (?, ?, ?, ?, ?, 0, 1, 'won', ?, ?)", (scan, o.event, o.ticket, gate, now, seq,
                                                                            now))
        return Answer(o.ticket, "won", seq, detail=f"recorded as gate {gate}"), scan

    def _unredeem(self, db: sqlite3.Connection, o: Override, now: float, stream: list[Json],
                  holder: First | None) -> tuple[Answer, str | None]:
        if holder is None:
            return Answer(o.ticket, "invalid", detail="the ticket is not redeemed"), None
        db.execute("DELETE FROM claims WHERE event = ? AND ticket_id = ?", (o.event, o.ticket))
        seq = self._emit(db, stream, now, kind="release", event=o.event, ticket=o.ticket, scan=holder.scan,
                         gate=holder.gate, arbiter_at=now, override="unredeem", by=o.by, admin=o.admin,
                         reason=o.reason)
        return Answer(o.ticket, "released", seq, detail=f"dropped the redemption of {holder.gate}"), holder.scan

    def overrides(self) -> list[dict[str, object]]:
        """The audit of every override, oldest first."""
        return self.rows("SELECT * FROM overrides ORDER BY id")

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _holder(db: sqlite3.Connection, event: str, ticket: str) -> First | None:
        row = db.execute("SELECT gate_id, at, scan_id, arbiter_at FROM claims WHERE event = ? AND ticket_id = ?",
                         (event, ticket)).fetchone()
        return First(*row) if row else None

    @staticmethod
    def _remember(db: sqlite3.Connection, c: Claim, answer: str, now: float, *, seq: int | None = None,
                  first: First | None = None) -> None:
        f = first or First("", 0.0, "", 0.0)
        db.execute("INSERT INTO scans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (c.scan, c.event, c.ticket, c.gate, c.at, c.gen, int(c.admitted), answer, seq,
                    f.gate or None, f.at if first else None, f.scan or None, f.arbiter_at if first else None, now))

    @staticmethod
    def _answer_of(db: sqlite3.Connection, scan: str) -> Answer:
        answer, seq, gate, at, first_scan, first_arbiter_at = db.execute(
            "SELECT answer, seq, first_gate, first_at, first_scan_id, first_arbiter_at FROM scans"
            " WHERE scan_id = ?", (scan,)).fetchone()
        conflict = db.execute("SELECT 1 FROM conflicts WHERE late_scan_id = ? AND state = 'open'",
                              (scan,)).fetchone() is not None
        first = First(gate, at, first_scan, first_arbiter_at or 0.0) if answer == "lost" else None
        return Answer(scan, answer, seq if answer == "won" else None, first, conflict)

    def _conflict(self, db: sqlite3.Connection, c: Claim, now: float, stream: list[Json]) -> None:
        holder = self._holder(db, c.event, c.ticket)
        if holder is None:  # cannot happen for a lost scan: the holder is only ever replaced, not dropped
            return
        inserted = db.execute("INSERT INTO conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'open')"
                              " ON CONFLICT DO NOTHING",
                              (c.scan, c.event, c.ticket, holder.scan, holder.gate, holder.at, c.gate, c.at,
                               now)).rowcount
        if inserted:
            self._emit_conflict(db, c.scan, now, stream)

    def _emit_conflict(self, db: sqlite3.Connection, late_scan: str, now: float, stream: list[Json]) -> None:
        row = db.execute("SELECT event, ticket_id, state, first_gate, first_at, first_scan_id, late_gate, late_at"
                         " FROM conflicts WHERE late_scan_id = ?", (late_scan,)).fetchone()
        event, ticket, state, first_gate, first_at, first_scan, late_gate, late_at = row
        seq = self._emit(db, stream, now, kind="conflict", state=state, event=event, ticket=ticket,
                         first={"gate": first_gate, "at": first_at, "scan": first_scan},
                         late={"gate": late_gate, "at": late_at, "scan": late_scan}, arbiter_at=now)
        db.execute("UPDATE conflicts SET seq = ? WHERE late_scan_id = ?", (seq, late_scan))

    def _emit(self, db: sqlite3.Connection, stream: list[Json], now: float, **item: object) -> int:
        seq = self._append(db, str(item["kind"]), json.dumps(item, separators=(",", ":")), now)
        stream.append({"seq": seq, **item})
        return seq

    def _append(self, db: sqlite3.Connection, kind: str, body: str, now: float) -> int:
        """One stream row; its sequence number (AUTOINCREMENT: never reused)."""
        seq = db.execute("INSERT INTO stream (kind, body, arbiter_at) VALUES (?, ?, ?)", (kind, body, now)).lastrowid
        assert seq is not None
        return seq

    # -- reading -----------------------------------------------------------------------------
    def read_stream(self, after: int, limit: int) -> tuple[list[Json], int]:
        """(items with seq > after, at most `limit`, in order; the head sequence number)."""
        try:
            rows = self.conn.execute("SELECT seq, body FROM stream WHERE seq > ? ORDER BY seq LIMIT ?",
                                     (after, limit)).fetchall()
            return [{"seq": seq, **json.loads(body)} for seq, body in rows], self.head()
        except sqlite3.Error as exc:
            raise ArbiterStoreError(f"{self.path}: {exc}") from exc

    def head(self) -> int:
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'stream'").fetchone()
        return int(row[0]) if row else 0

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[dict[str, object]]:
        """Read-only query for reports and tests (`gate conflicts --arbiter`)."""
        cur = self.conn.execute(sql, tuple(args))
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def inside(self) -> dict[str, tuple[int, int]]:
        """Per check-in list: (tickets inside now, entries admitted), exact across gates (sync/arbiter/passes.py)."""
        return {str(r["list"]): (int(r["inside"]), int(r["admitted"]))  # type: ignore[call-overload]
                for r in self.rows(passes.INSIDE)}

    def counts(self) -> dict[str, int]:
        """Claims held, scans by answer, open conflicts, revocations, stream head: the arbiter's status."""
        out = {f"scans_{a}": n for a, n in self.conn.execute("SELECT answer, count(*) FROM scans GROUP BY answer")}
        out["held"] = self.conn.execute("SELECT count(*) FROM claims").fetchone()[0]
        out["conflicts"] = self.conn.execute("SELECT count(*) FROM conflicts WHERE state = 'open'").fetchone()[0]
        out["revoked"] = self.conn.execute("SELECT count(*) FROM revoked").fetchone()[0]
        out["head"] = self.head()
        out["checkpoint_errors"] = self.checkpoint_errors
        return out
