"""One SQLite file per party (box office, wallet, payment agent), in the style of gate/store.py.

What a caller may rely on: WAL mode and ``synchronous=FULL``; `transaction()`
is ``BEGIN IMMEDIATE`` ... ``COMMIT`` (several processes or threads may share
one file: each opens its own `ChainDB`); migrations are recorded in the same
transaction as the change; every sqlite3/OS error becomes ChainStoreError.
The file is created 0600 (it holds the party's seed).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gate.chain.exc import ChainStoreError
from gate.sqlite import connect_durable, immediate

Migration = tuple[int, str, tuple[str, ...]]


class ChainDB:
    """A party's SQLite file.  Open with `ChainDB.open(path, migrations)`; close when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: str | Path, migrations: Sequence[Migration], *, busy_timeout: float = 10.0) -> ChainDB:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            conn = connect_durable(path, busy_timeout)
        except (sqlite3.Error, OSError) as exc:
            raise ChainStoreError(f"{path}: cannot open: {exc}") from None
        db = cls(conn, path)
        db.migrate(migrations)
        return db

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ChainDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception); sqlite3/OS errors become ChainStoreError."""
        with immediate(self.conn, lambda exc: ChainStoreError(f"{self.path}: {exc}"), self._lock) as db:
            yield db

    def migrate(self, migrations: Sequence[Migration]) -> int:
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations"
                       " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
        version = 0
        for number, name, script in migrations:
            with self.transaction() as db:
                if not db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (number,)).fetchone():
                    for statement in script:
                        db.execute(statement)
                    db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, time.time()))
            version = number
        return version

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[dict[str, object]]:
        """Read-only query as dicts (outside any write transaction)."""
        with self._lock:
            try:
                cur = self.conn.execute(sql, args)
            except sqlite3.Error as exc:
                raise ChainStoreError(f"{self.path}: {exc}") from exc
            names = [c[0] for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


#: tables every party has: its own chain, the chains it knows, the blocks it wrote or opened
PARTY_MIGRATION: Migration = (1, "party: own chain, known chains, blocks", (
    """CREATE TABLE self (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        chain TEXT NOT NULL,
        seed BLOB NOT NULL,
        dh_private BLOB NOT NULL,
        identity TEXT NOT NULL,
        next_index INTEGER NOT NULL,
        head TEXT NOT NULL
    )""",
    """CREATE TABLE parties (
        chain TEXT PRIMARY KEY,
        identity TEXT NOT NULL,
        role TEXT NOT NULL,
        trusted TEXT NOT NULL DEFAULT '',
        anchor BLOB NOT NULL,
        last_index INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    """CREATE TABLE blocks (
        hash TEXT PRIMARY KEY,
        chain TEXT NOT NULL,
        idx INTEGER NOT NULL,
        value BLOB NOT NULL,
        txn TEXT NOT NULL,
        app TEXT NOT NULL,
        kind TEXT NOT NULL,
        recipient TEXT NOT NULL,
        block TEXT NOT NULL,
        payload TEXT NOT NULL,
        stored_at REAL NOT NULL,
        UNIQUE (chain, idx)
    )""",
    "CREATE INDEX blocks_txn ON blocks (txn)",
))
