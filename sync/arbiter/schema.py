"""The arbiter's schema: recorded migrations of its SQLite file (gate/sqlite.py applies them).

A file made before the arbiter recorded its migrations (qrgate up to the
layout redesign: ``meta`` holds ``schema = 1``, the later tables were added
with CREATE TABLE IF NOT EXISTS on every open) is adopted at version 1;
migrations 2 and 3 keep IF NOT EXISTS because such a file may already hold
their tables, or (made by an older version still) may not.
"""

from __future__ import annotations

import sqlite3

from gate.sqlite import Migration, has_table

MIGRATIONS: list[Migration] = [
    (1, "claims, scans, conflicts, revocations, the stream", (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        """CREATE TABLE claims (
            event TEXT NOT NULL, ticket_id TEXT NOT NULL, scan_id TEXT NOT NULL, gate_id TEXT NOT NULL,
            at REAL NOT NULL, generation INTEGER NOT NULL, arbiter_at REAL NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (event, ticket_id)) WITHOUT ROWID""",
        """CREATE TABLE scans (
            scan_id TEXT PRIMARY KEY, event TEXT NOT NULL, ticket_id TEXT NOT NULL, gate_id TEXT NOT NULL,
            at REAL NOT NULL, generation INTEGER NOT NULL, admitted INTEGER NOT NULL,
            answer TEXT NOT NULL CHECK (answer IN ('won', 'lost', 'revoked', 'released')),
            seq INTEGER, first_gate TEXT, first_at REAL, first_scan_id TEXT, first_arbiter_at REAL,
            arbiter_at REAL NOT NULL) WITHOUT ROWID""",
        """CREATE TABLE conflicts (
            late_scan_id TEXT PRIMARY KEY, event TEXT NOT NULL, ticket_id TEXT NOT NULL,
            first_scan_id TEXT NOT NULL, first_gate TEXT NOT NULL, first_at REAL NOT NULL,
            late_gate TEXT NOT NULL, late_at REAL NOT NULL, arbiter_at REAL NOT NULL, seq INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('open', 'void'))) WITHOUT ROWID""",
        "CREATE INDEX conflicts_first ON conflicts (first_scan_id)",
        """CREATE TABLE revoked (
            event TEXT NOT NULL, ticket_id TEXT NOT NULL, at REAL NOT NULL, by TEXT NOT NULL,
            reason TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (event, ticket_id)) WITHOUT ROWID""",
        """CREATE TABLE stream (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, body TEXT NOT NULL, arbiter_at REAL NOT NULL)""",
        # the epoch names this database: gates that see another one follow it from sequence 0
        "INSERT INTO meta VALUES ('schema', '1'), ('epoch', lower(hex(randomblob(16))))",
    )),
    (2, "the admins' overrides, audited", (
        """CREATE TABLE IF NOT EXISTS overrides (
            id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL, event TEXT NOT NULL,
            ticket_id TEXT NOT NULL, by TEXT NOT NULL, admin TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL,
            answer TEXT NOT NULL, seq INTEGER, scan_id TEXT)""",
    )),
    (3, "raised ownership generations (docs/ownership.md)", (
        """CREATE TABLE IF NOT EXISTS generations (event TEXT NOT NULL, ticket_id TEXT NOT NULL,
            generation INTEGER NOT NULL, PRIMARY KEY (event, ticket_id)) WITHOUT ROWID""",
    )),
    # Check-in lists (docs/checkin-lists.md): each ticket's state on each list (one compare-and-set per
    # transition), every transition decided (idempotency by scan id), and the exact inside count per list.
    (4, "check-in lists: pass states, transitions, inside counts", (
        """CREATE TABLE pass_states (
            event TEXT NOT NULL, ticket_id TEXT NOT NULL, list TEXT NOT NULL, entries INTEGER NOT NULL,
            day TEXT NOT NULL, day_entries INTEGER NOT NULL, inside INTEGER NOT NULL, last_entry REAL NOT NULL,
            scan_id TEXT NOT NULL, rev INTEGER NOT NULL, PRIMARY KEY (event, ticket_id, list)) WITHOUT ROWID""",
        """CREATE TABLE pass_scans (
            scan_id TEXT PRIMARY KEY, event TEXT NOT NULL, ticket_id TEXT NOT NULL, list TEXT NOT NULL,
            list_version INTEGER NOT NULL, gate_id TEXT NOT NULL, direction TEXT NOT NULL, at REAL NOT NULL,
            admitted INTEGER NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
            conflict INTEGER NOT NULL, seq INTEGER, arbiter_at REAL NOT NULL) WITHOUT ROWID""",
        "CREATE TABLE pass_areas (list TEXT PRIMARY KEY, inside INTEGER NOT NULL, admitted INTEGER NOT NULL)",
    )),
    # Transitions over the wire (sync/arbiter/passes.py): a gate that gave up waiting and refused voids its scan,
    # so each applied transition keeps the state before and after it, to be undone.
    (5, "check-in lists: the states before and after each applied transition; each ticket's moves", (
        "ALTER TABLE pass_scans ADD COLUMN undo TEXT NOT NULL DEFAULT ''",
        # late moves arrive in any order: the last exit of a ticket is looked up (sync/arbiter/passes.py)
        "CREATE INDEX pass_scans_ticket ON pass_scans (event, ticket_id, list, direction)",
    )),
    # Lists distributed on the stream (ArbiterStore.publish_lists): each signed list document put on the stream
    # once, with the sequence number of its item (catch-up serves it from the stream table like any item).
    (6, "check-in lists: the signed list documents put on the stream", (
        """CREATE TABLE list_documents (
            name TEXT NOT NULL, version INTEGER NOT NULL, event TEXT NOT NULL, seq INTEGER NOT NULL,
            arbiter_at REAL NOT NULL, PRIMARY KEY (name, version)) WITHOUT ROWID""",
    )),
    # Every transition paid for pass_scans_ticket; its one reader (passes.LAST_EXIT: a ticket's last exit let
    # through) reads only exits, so a partial index of those serves it, and an entry writes one b-tree less.
    # Rows written from now on keep their undo in a compact text form (passes.undo_text), older ones JSON.
    (7, "check-in lists: index only the exits let through (the last exit of a ticket)", (
        "DROP INDEX IF EXISTS pass_scans_ticket",
        "CREATE INDEX IF NOT EXISTS pass_scans_exits ON pass_scans (event, ticket_id, list, at)"
        " WHERE direction = 'out' AND outcome = 'ADMIT'",
    )),
    # A conflict names its earlier entry, found when it was judged (by key, passes.MOVED_BY): reading the
    # conflicts needs no search of every ticket's moves, which no index serves since migration 7.
    (8, "check-in lists: a conflict names its earlier entry", (
        "ALTER TABLE pass_scans ADD COLUMN first_scan TEXT NOT NULL DEFAULT ''",
    )),
]


def adopt(db: sqlite3.Connection) -> int:
    """A file of the arbiter before migrations were recorded holds `meta`: its layout is version 1."""
    return 1 if has_table(db, "meta") else 0
