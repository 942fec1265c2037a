"""Schema migrations of the gate store: (version, name, statements), applied in order, never edited."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, tuple[str, ...]]] = [
    (1, "redeemed set, audit log, revocations", (
        """CREATE TABLE redeemed (
            event TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0,
            scan_id TEXT NOT NULL,
            gate_id TEXT NOT NULL,
            at REAL NOT NULL,
            provisional INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (event, ticket_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            gate_id TEXT NOT NULL,
            scan_id TEXT NOT NULL,
            event TEXT,
            ticket_id TEXT,
            outcome TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TABLE revoked (
            event TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            at REAL NOT NULL,
            by TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (event, ticket_id)
        ) WITHOUT ROWID""",
    )),
]
