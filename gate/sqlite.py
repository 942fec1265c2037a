"""The one way qrgate's SQLite files commit: BEGIN IMMEDIATE ... COMMIT, errors mapped to the owner's type.

Every store (the gate's, the arbiter's, the box office's and wallets', the
dashboard's history) opens its file in WAL mode with synchronous=FULL and
writes through `immediate`, so a commit that returned is durable and a
failure leaves nothing half-written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path


def connect_durable(path: Path, busy_timeout: float = 10.0) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=FULL."""
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@contextmanager
def immediate(conn: sqlite3.Connection, fail: Callable[[Exception], Exception],
              lock: AbstractContextManager[object] | None = None) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any exception; a sqlite3/OS error is raised as `fail(error)`."""
    with lock if lock is not None else nullcontext():
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            raise fail(exc) from exc
