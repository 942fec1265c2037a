"""The arbiter's store on PostgreSQL (psycopg 3): several arbiter instances on one database.

What a caller may rely on (ArbiterStore's contract holds word for word; this adds):

* `PgArbiterStore` decides with ArbiterStore's own code (`_claim`, `_release`, `_promote`, ...): the SQL of
  store.py is written in the dialect the two engines share, and sqlite3's placeholders (``?``,
  ``:name``) are turned into psycopg's here.  So both stores give the same answers by construction, and
  tests/test_sync_arbiter_store.py runs every case against both.
* Every write batch first locks the one row of ``stream_head`` (``SELECT ... FOR UPDATE``): the batches of
  all instances are serial, as BEGIN IMMEDIATE makes them on SQLite.  Each batch decides on everything
  committed before it (the insert-if-absent on ``claims`` never meets another batch's uncommitted row: no
  unique violation, no deadlock), and the stream's sequence numbers, drawn from that row in the same
  transaction, follow commit order with no holes (a rolled back batch gives its numbers back).  A
  bigserial would not: its numbers are taken in insert order and a rollback loses them.
* `apply` returns after COMMIT, at the server's ``synchronous_commit`` (on by default: durable).
* Every psycopg error is raised as ArbiterStoreError (the service then answers nothing of that batch);
  a lost connection is opened again on the next call, so an instance outlives a database restart.
* The schema is PG_MIGRATIONS, each step recorded in ``schema_migrations`` in its own transaction, under
  an advisory lock: instances started together migrate once.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import psycopg

from gate.sqlite import Migration
from sync.arbiter.store import ANY_EVENT, CLAIM_LOOKUP, ArbiterStore, Op
from sync.exc import ArbiterStoreError
from sync.wire import Answer, Claim, Json, PassAnswer

#: pg_advisory_xact_lock key of the migrations (any constant: "qrga" in ASCII)
MIGRATION_LOCK = 0x71726761
CONNECT_TIMEOUT = 3  # seconds: an instance whose database is gone says so soon, and answers nothing

PG_MIGRATIONS: list[Migration] = [
    (1, "claims, scans, conflicts, revocations, the stream", (
        "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
        """CREATE TABLE claims (
            event text NOT NULL, ticket_id text NOT NULL, scan_id text NOT NULL, gate_id text NOT NULL,
            at double precision NOT NULL, generation bigint NOT NULL, arbiter_at double precision NOT NULL,
            seq bigint NOT NULL, PRIMARY KEY (event, ticket_id))""",
        """CREATE TABLE scans (
            scan_id text PRIMARY KEY, event text NOT NULL, ticket_id text NOT NULL, gate_id text NOT NULL,
            at double precision NOT NULL, generation bigint NOT NULL, admitted integer NOT NULL,
            answer text NOT NULL CHECK (answer IN ('won', 'lost', 'revoked', 'released')),
            seq bigint, first_gate text, first_at double precision, first_scan_id text,
            first_arbiter_at double precision, arbiter_at double precision NOT NULL)""",
        """CREATE TABLE conflicts (
            late_scan_id text PRIMARY KEY, event text NOT NULL, ticket_id text NOT NULL,
            first_scan_id text NOT NULL, first_gate text NOT NULL, first_at double precision NOT NULL,
            late_gate text NOT NULL, late_at double precision NOT NULL, arbiter_at double precision NOT NULL,
            seq bigint NOT NULL, state text NOT NULL CHECK (state IN ('open', 'void')))""",
        "CREATE INDEX conflicts_first ON conflicts (first_scan_id)",
        """CREATE TABLE revoked (
            event text NOT NULL, ticket_id text NOT NULL, at double precision NOT NULL, by text NOT NULL,
            reason text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (event, ticket_id))""",
        """CREATE TABLE stream (
            seq bigint PRIMARY KEY, kind text NOT NULL, body text NOT NULL, arbiter_at double precision NOT NULL)""",
        # the counter every write batch locks first: the stream's next number, in commit order
        "CREATE TABLE stream_head (one boolean PRIMARY KEY DEFAULT true CHECK (one), seq bigint NOT NULL)",
        "INSERT INTO stream_head VALUES (true, 0)",
        # the epoch names this database: gates that see another one follow it from sequence 0
        "INSERT INTO meta VALUES ('schema', '1'), ('epoch', md5(random()::text || clock_timestamp()::text))",
    )),
    (2, "the admins' overrides, audited", (
        """CREATE TABLE overrides (
            id bigserial PRIMARY KEY, action text NOT NULL, event text NOT NULL, ticket_id text NOT NULL,
            by text NOT NULL, admin text NOT NULL, reason text NOT NULL, at double precision NOT NULL,
            answer text NOT NULL, seq bigint, scan_id text)""",
    )),
    (3, "raised ownership generations (docs/ownership.md)", (
        """CREATE TABLE generations (event text NOT NULL, ticket_id text NOT NULL, generation bigint NOT NULL,
            PRIMARY KEY (event, ticket_id))""",
    )),
    # check-in lists (sync/arbiter/passes.py): SQLite's migrations 4 and 5 in one step
    (4, "check-in lists: pass states, transitions, inside counts", (
        """CREATE TABLE pass_states (
            event text NOT NULL, ticket_id text NOT NULL, list text NOT NULL, entries bigint NOT NULL,
            day text NOT NULL, day_entries bigint NOT NULL, inside integer NOT NULL,
            last_entry double precision NOT NULL, scan_id text NOT NULL, rev bigint NOT NULL,
            PRIMARY KEY (event, ticket_id, list))""",
        """CREATE TABLE pass_scans (
            scan_id text PRIMARY KEY, event text NOT NULL, ticket_id text NOT NULL, list text NOT NULL,
            list_version bigint NOT NULL, gate_id text NOT NULL, direction text NOT NULL, at double precision NOT NULL,
            admitted integer NOT NULL, outcome text NOT NULL, reason text NOT NULL, detail text NOT NULL,
            conflict integer NOT NULL, seq bigint, arbiter_at double precision NOT NULL, undo text NOT NULL DEFAULT '')""",
        "CREATE TABLE pass_areas (list text PRIMARY KEY, inside bigint NOT NULL, admitted bigint NOT NULL)",
        "CREATE INDEX pass_scans_ticket ON pass_scans (event, ticket_id, list, direction)",
    )),
    # lists distributed on the stream (ArbiterStore.publish_lists): SQLite's migration 6
    (5, "check-in lists: the signed list documents put on the stream", (
        """CREATE TABLE list_documents (
            name text NOT NULL, version bigint NOT NULL, event text NOT NULL, seq bigint NOT NULL,
            arbiter_at double precision NOT NULL, PRIMARY KEY (name, version))""",
    )),
    # only the exits let through indexed (sync/arbiter/passes.py LAST_EXIT): SQLite's migration 7
    (6, "check-in lists: index only the exits let through (the last exit of a ticket)", (
        "DROP INDEX IF EXISTS pass_scans_ticket",
        "CREATE INDEX IF NOT EXISTS pass_scans_exits ON pass_scans (event, ticket_id, list, at)"
        " WHERE direction = 'out' AND outcome = 'ADMIT'",
    )),
    # a conflict names its earlier entry: SQLite's migration 8
    (7, "check-in lists: a conflict names its earlier entry", (
        "ALTER TABLE pass_scans ADD COLUMN first_scan text NOT NULL DEFAULT ''",
    )),
]

#: the tables `adopt` copies from a SQLite arbiter (its schema_migrations stay its own)
ADOPTED = ("meta", "claims", "scans", "conflicts", "revoked", "stream", "overrides", "generations", "pass_states",
           "pass_scans", "pass_areas", "list_documents")

BOOKKEEPING = ("CREATE TABLE IF NOT EXISTS schema_migrations"
               " (version integer PRIMARY KEY, name text NOT NULL, applied_at double precision NOT NULL)")


def batch_lookup(single: str) -> str:
    """`single` (CLAIM_LOOKUP: one claim's row, by :scan, :event and :ticket) for many claims in one statement:
    those placeholders become the columns of the arrays :scans, :events and :tickets, and each row starts with
    its claim's place in them (from 1).  Derived, not copied: the two cannot drift apart."""
    one = "FROM (SELECT 1) AS one"
    if one not in single or not single.lstrip().startswith("SELECT "):
        raise AssertionError("CLAIM_LOOKUP changed shape: batch_lookup must follow it")
    many = re.sub(r":(scan|event|ticket)\b", r"k.\1", single).replace(
        one, "FROM unnest(CAST(:scans AS text[]), CAST(:events AS text[]), CAST(:tickets AS text[]))"
             " WITH ORDINALITY AS k(scan, event, ticket, n)")
    return many.replace("SELECT ", "SELECT k.n, ", 1) + " ORDER BY k.n"


BATCH_LOOKUP = batch_lookup(CLAIM_LOOKUP)


def shown(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@functools.lru_cache(maxsize=256)
def dialect(sql: str) -> str:
    """sqlite3's placeholders as psycopg's: ``?`` -> ``%s``, ``:name`` -> ``%(name)s`` (a literal % doubled)."""
    sql = sql.replace("%", "%%").replace("?", "%s")
    return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", sql)


class PgSql:
    """A psycopg connection in pipeline mode behind the part of sqlite3.Connection that store.py uses: ``execute``
    returning a cursor to ``fetchone``, ``fetchall``, iterate or read ``rowcount`` from.

    In pipeline mode a statement is sent without waiting for its result: store.py's writes cost no round
    trip of their own, only its reads (a fetch waits for everything sent before it).  `rowcount` waits too.
    """

    def __init__(self, conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline | None = None) -> None:
        self.conn = conn
        self.pipeline = pipeline

    def execute(self, sql: str, args: Sequence[object] | dict[str, object] = ()) -> PgCursor:
        return PgCursor(self.conn.execute(dialect(sql), args or None), self.pipeline)


class PgCursor:
    """A psycopg cursor whose `rowcount` is known when read, also in pipeline mode."""

    def __init__(self, cursor: psycopg.Cursor[Any], pipeline: psycopg.Pipeline | None) -> None:
        self.cursor = cursor
        self.pipeline = pipeline

    @property
    def rowcount(self) -> int:
        if self.pipeline is not None:
            self.pipeline.sync()
        return self.cursor.rowcount

    @property
    def description(self) -> Any:
        return self.cursor.description

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self.cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.cursor)


class PgArbiterStore(ArbiterStore):
    """Open with `PgArbiterStore.open(url)`; any number of arbiter processes per database."""

    def __init__(self, url: str, conn: psycopg.Connection[Any], clock: Callable[[], float]) -> None:
        self.url = url
        self.path = shown(url)  # type: ignore[assignment]  # what messages name (the password left out)
        self.clock = clock
        self.epoch = ""
        self.checkpoint_errors = 0
        self._finish_checkpoint = False
        self._pg: psycopg.Connection[Any] | None = conn
        self._head = 0  # the stream's head in the open write transaction (it holds the counter row)
        self._lock = threading.RLock()
        self._batch: Sequence[Op] = ()  # the ops `apply` is deciding
        self._looked_up: dict[str, Sequence[Any]] = {}  # scan id -> its claim's CLAIM_LOOKUP row, read ahead

    @classmethod
    def open(cls, url: str, *, clock: Callable[[], float] = time.time) -> PgArbiterStore:  # type: ignore[override]
        store = cls(url, _connect(url), clock)
        try:
            store.migrate()
            store.epoch = str(store.rows("SELECT value FROM meta WHERE key = 'epoch'")[0]["value"])
        except BaseException:
            store.close()
            raise
        return store

    def migrate(self) -> int:
        """Apply the pending PG_MIGRATIONS, each with its record in one transaction; return the version."""
        with self._session() as conn:
            for number, name, statements in [(0, "", (BOOKKEEPING,)), *PG_MIGRATIONS]:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    if number and conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s",
                                               (number,)).fetchone():
                        continue
                    for statement in statements:  # as written: no placeholders, so its % and :: untouched
                        conn.execute(statement.encode())
                    if number:
                        conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)", (number, name, time.time()))
        return self.version

    def adopt(self, source: ArbiterStore) -> dict[str, int]:
        """Copy a SQLite arbiter's whole state into this database, which must hold none yet: every table, its
        epoch and its stream (sequence numbers as they were), so gates go on from their stream position.
        One transaction: all or nothing.  Stop the SQLite arbiter first.  Returns the rows copied per table."""
        copied: dict[str, int] = {}
        with self._session() as conn, conn.transaction():
            head = conn.execute("SELECT seq FROM stream_head FOR UPDATE").fetchone()
            if (head and head[0]) or conn.execute("SELECT 1 FROM scans LIMIT 1").fetchone():
                raise ArbiterStoreError(f"{self.path}: already holds an arbiter's state; adopt only into a new one")
            conn.execute("DELETE FROM meta")  # its own epoch gives way to the source's
            for table in ADOPTED:
                rows = source.rows(f"SELECT * FROM {table}")
                if rows:
                    names = list(rows[0])
                    with conn.cursor() as cur:
                        cur.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES"
                                        f" ({', '.join(['%s'] * len(names))})", [tuple(r.values()) for r in rows])
                copied[table] = len(rows)
            conn.execute("UPDATE stream_head SET seq = %s", (source.head(),))
            conn.execute("SELECT setval('overrides_id_seq', greatest(1, (SELECT max(id) FROM overrides)),"
                         " (SELECT count(*) > 0 FROM overrides))")
        self.epoch = str(self.rows("SELECT value FROM meta WHERE key = 'epoch'")[0]["value"])
        return copied

    def close(self) -> None:
        with self._lock:
            if self._pg is not None:
                self._pg.close()
                self._pg = None

    def start_checkpointer(self, every: float = 0.5) -> None:
        """Nothing to do: PostgreSQL checkpoints by itself."""

    @property
    def version(self) -> int:
        return self._number("SELECT max(version) FROM schema_migrations")

    # -- the connection -----------------------------------------------------------------------
    def _conn(self) -> psycopg.Connection[Any]:
        if self._pg is None or self._pg.closed or self._pg.broken:
            if self._pg is not None:
                self._pg.close()
            self._pg = None
            self._pg = _connect(self.url)
        return self._pg


    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection (opened again if it was lost), under this store's lock; psycopg errors raised as
        ArbiterStoreError."""
        with self._lock:
            try:
                yield self._conn()
            except psycopg.Error as exc:
                raise ArbiterStoreError(f"{self.path}: {exc}".strip()) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction in pipeline mode: it first locks the stream's counter row (so every write batch
        is serial) and writes the counter back before COMMIT."""
        with self._session() as conn, conn.pipeline() as pipeline, conn.transaction():
            db = PgSql(conn, pipeline)
            start = self._head = int(db.execute("SELECT seq FROM stream_head FOR UPDATE").fetchone()[0])
            self._looked_up = self._look_ahead(db, self._batch)
            yield cast(sqlite3.Connection, db)  # duck-typed: the calls store.py makes (see PgSql)
            if self._head != start:
                db.execute("UPDATE stream_head SET seq = ?", (self._head,))

    def apply(self, ops: Sequence[Op]) -> tuple[list[Answer | PassAnswer], list[Json]]:
        """ArbiterStore.apply, with the lookups of a batch of claims read in one round trip (`_look_ahead`)."""
        with self._lock:
            self._batch = ops
            try:
                return super().apply(ops)
            finally:
                self._batch, self._looked_up = (), {}

    def _look_ahead(self, db: PgSql, ops: Sequence[Op]) -> dict[str, Sequence[Any]]:
        """Under the counter row's lock, before any write: the CLAIM_LOOKUP rows of a batch of claims in one
        statement, for each claim that shares neither its scan id nor its ticket with another op of the batch.

        Their rows are then what `_lookup` would read when their turn comes (a claim writes only rows of its
        own scan id and ticket), but a batch of 40 claims costs one round trip instead of 40: in an opening
        rush that was most of a batch's time.  A batch with anything but claims is read claim by claim."""
        if len(ops) < 2 or not all(isinstance(op, Claim) for op in ops):
            return {}
        claims = cast(Sequence[Claim], ops)
        scans = Counter(c.scan for c in claims)
        tickets = Counter((c.event, c.ticket) for c in claims)
        alone = [c for c in claims if scans[c.scan] == 1 and tickets[(c.event, c.ticket)] == 1]
        if len(alone) < 2:
            return {}
        rows = db.execute(BATCH_LOOKUP, {"scans": [c.scan for c in alone], "events": [c.event for c in alone],
                                         "tickets": [c.ticket for c in alone], "any": ANY_EVENT}).fetchall()
        return {alone[int(row[0]) - 1].scan: row[1:] for row in rows}

    def _lookup(self, db: sqlite3.Connection, c: Claim) -> Sequence[Any]:
        row = self._looked_up.pop(c.scan, None)
        return super()._lookup(db, c) if row is None else row

    def _append(self, db: sqlite3.Connection, kind: str, body: str, now: float) -> int:
        """The next number after the counter row this transaction holds (commit order, no holes)."""
        self._head += 1
        db.execute("INSERT INTO stream (seq, kind, body, arbiter_at) VALUES (?, ?, ?, ?)", (self._head, kind, body, now))
        return self._head

    # -- reading -------------------------------------------------------------------------------
    def read_stream(self, after: int, limit: int) -> tuple[list[Json], int]:
        rows = self.rows("SELECT seq, body FROM stream WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        return [{"seq": r["seq"], **json.loads(str(r["body"]))} for r in rows], self.head()

    def head(self) -> int:
        return self._number("SELECT seq FROM stream_head")

    def _number(self, sql: str) -> int:
        with self._session() as conn:
            row = conn.execute(sql).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[dict[str, object]]:
        with self._session() as conn:  # autocommit: one statement, one snapshot
            cur = PgSql(conn).execute(sql, tuple(args))
            names = [c.name for c in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        with self._session() as conn:
            out = {f"scans_{a}": int(n) for a, n in conn.execute("SELECT answer, count(*) FROM scans GROUP BY answer")}
            row = conn.execute("SELECT (SELECT count(*) FROM claims), (SELECT count(*) FROM conflicts WHERE state ="
                               " 'open'), (SELECT count(*) FROM revoked), (SELECT seq FROM stream_head)").fetchone()
        assert row is not None
        out.update(zip(("held", "conflicts", "revoked", "head"), map(int, row), strict=True))
        out["checkpoint_errors"] = 0
        return out


def _connect(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise ArbiterStoreError(f"{shown(url)}: cannot open the arbiter store: {exc}".strip()) from None
