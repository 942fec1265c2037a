"""The one SQLite base of every qrgate file: open, transaction, recorded migrations, rows.

Every store (the gate's, the arbiter's, the dashboard's history, the box
office's, wallets' and payment agents') is a `Database` with its own list of
migrations.  What a caller may rely on:

* `open` makes the folder, opens the file in WAL mode at the given
  ``synchronous`` level (FULL unless told: a commit that returned survives a
  power cut), optionally runs ``PRAGMA quick_check`` first, then applies the
  pending migrations.
* A migration is ``(version, name, statements)``; each is applied with its
  row in ``schema_migrations`` in one transaction (as sqlite-utils records
  them), in version order, never twice, and never edited once shipped.  A
  file written before its store recorded migrations is *adopted*: the store's
  ``adopt`` callback says which version its layout is, and that many
  migrations are recorded as applied ("adopted") without running them.
* `transaction` is ``BEGIN IMMEDIATE`` ... ``COMMIT`` (ROLLBACK on any
  exception), so several processes or threads can share a file; every
  sqlite3 or OS error, at open or in a transaction, becomes the store's own
  error type (`error`), with the path in the message and a hint when the
  disk is full or read-only.
* `rows` is a read outside any write transaction, as a list of dicts.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

Migration = tuple[int, str, tuple[str, ...]]
Synchronous = Literal["FULL", "NORMAL"]
#: given a file with tables but no schema_migrations (made before migrations were recorded): its version
Adopt = Callable[[sqlite3.Connection], int]

BOOKKEEPING = ("CREATE TABLE IF NOT EXISTS schema_migrations"
               " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")


def diagnose(path: Path) -> str:
    """A hint for ops staff about the disk under `path` (read-only or full), or ''."""
    try:
        st = os.statvfs(path if path.exists() else path.parent)
    except OSError:
        return ""
    if st.f_flag & os.ST_RDONLY:
        return " (the disk is mounted read-only)"
    if st.f_bavail * st.f_frsize < 64 * 1024:
        return " (the disk is full)"
    return ""


class Database:
    """One SQLite file of one store.  Open with `Database.open`; close when done."""

    def __init__(self, conn: sqlite3.Connection, path: Path, error: type[Exception]) -> None:
        self.conn = conn
        self.path = path
        self.error = error
        self.lock = threading.RLock()

    @classmethod
    def open(cls, path: str | Path, migrations: Sequence[Migration], *, error: type[Exception],
             corrupt: type[Exception] | None = None, what: str = "store", synchronous: Synchronous = "FULL",
             busy_timeout: float = 10.0, check: bool = False, private: bool = False,
             adopt: Adopt | None = None) -> Database:
        """Open (creating it if need be) and migrate `path`.

        `error` is raised for anything that goes wrong, `corrupt` (default `error`) for a file that is not a
        database or fails the integrity check (`check`); `private` creates the file 0600 in a 0700 folder.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, **({"mode": 0o700} if private else {}))
            if private and not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            db = cls(conn, path, error)
            problems = _quick_check(conn) if check else []
            if not problems:
                db.migrate(migrations, adopt)
        except sqlite3.OperationalError as exc:
            raise error(f"{path}: cannot open the {what}: {exc}{diagnose(path)}") from None
        except sqlite3.DatabaseError as exc:
            raise (corrupt or error)(f"{path}: not a usable {what}: {exc}") from None
        except OSError as exc:
            raise error(f"{path}: cannot open the {what}: {exc}{diagnose(path)}") from None
        if problems:  # raised here, not in the try: `error` may be an OSError, which would re-wrap it
            conn.close()
            raise (corrupt or error)(f"{path}: integrity check failed: {problems[:5]}")
        return db

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail(self, exc: BaseException) -> Exception:
        """The store's own error for a sqlite3/OS error, naming the file (and the disk, when it is the cause)."""
        return self.error(f"{self.path}: {exc}{diagnose(self.path)}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any exception; a sqlite3/OS error is raised as `error`."""
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                raise self.fail(exc) from exc

    def migrate(self, migrations: Sequence[Migration], adopt: Adopt | None = None) -> int:
        """Apply the pending migrations, each with its record in one transaction; return the version."""
        with self.transaction() as db:
            fresh = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone() is None
            db.execute(BOOKKEEPING)
            adopted = adopt(db) if fresh and adopt is not None else 0
            for number, name, _statements in migrations:
                if number <= adopted:
                    db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                               (number, f"{name} (adopted: made before migrations were recorded)", time.time()))
        for number, name, statements in migrations:
            with self.transaction() as db:
                if db.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (number,)).fetchone():
                    continue
                for statement in statements:
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, time.time()))
        return self.version

    @property
    def version(self) -> int:
        with self.lock:
            row = self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[dict[str, object]]:
        """A read-only query as dicts (reports, status, tests)."""
        with self.lock:
            try:
                cur = self.conn.execute(sql, tuple(args))
            except sqlite3.Error as exc:
                raise self.fail(exc) from exc
            names = [c[0] for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def has_table(db: sqlite3.Connection, name: str) -> bool:
    """For `adopt` callbacks: whether a table of that name exists."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _quick_check(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    """What ``PRAGMA quick_check`` finds wrong (nothing: []).  A page so broken that the check cannot read on
    ("database disk image is malformed") is one of its findings, not an error of the open."""
    try:
        return [r for r in conn.execute("PRAGMA quick_check").fetchall() if r != ("ok",)]
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as exc:
        return [(str(exc),)]
