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
    # Multi-gate sync (sync/ledger.py owns the rules; docs/mqtt.md "Crash safety" explains them).
    # redeemed.source: 'local' = admitted here, 'arbiter' = applied from the arbiter's stream.
    # redeemed.arbiter: '' = not yet confirmed, 'won', 'conflict' (a late admission that lost), 'revoked'.
    (2, "sync: outbox, arbiter fields, conflicts, stream position", (
        "ALTER TABLE redeemed ADD COLUMN source TEXT NOT NULL DEFAULT 'local'",
        "ALTER TABLE redeemed ADD COLUMN arbiter TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE redeemed ADD COLUMN arbiter_seq INTEGER",
        "CREATE INDEX redeemed_scan ON redeemed (scan_id)",
        """CREATE TABLE outbox (
            scan_id TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('claim', 'late', 'release', 'done')),
            event TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0,
            gate_id TEXT NOT NULL,
            at REAL NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            answer TEXT NOT NULL DEFAULT ''
        ) WITHOUT ROWID""",
        "CREATE INDEX outbox_pending ON outbox (state, created) WHERE state != 'done'",
        """CREATE TABLE conflicts (
            late_scan_id TEXT PRIMARY KEY,
            event TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            first_gate TEXT NOT NULL,
            first_at REAL NOT NULL,
            first_scan_id TEXT NOT NULL,
            late_gate TEXT NOT NULL,
            late_at REAL NOT NULL,
            seq INTEGER,
            state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'void')),
            recorded_at REAL NOT NULL
        ) WITHOUT ROWID""",
        "CREATE TABLE sync_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    )),
    # Ownership (gate/ownership/, docs/ownership.md): the newest generation of each resold ticket;
    # Store.redeem rejects an older one (REVOKED superseded).
    (3, "ownership: current generation of each ticket", (
        """CREATE TABLE generations (
            event TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            generation INTEGER NOT NULL,
            at REAL NOT NULL,
            by TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (event, ticket_id)
        ) WITHOUT ROWID""",
    )),
    # Every redemption paid for this index; its only readers know the ticket too and now use the key.
    (4, "drop redeemed_scan: the redemption path writes one b-tree less", (
        "DROP INDEX IF EXISTS redeemed_scan",
    )),
    # A claim proves its ticket (docs/security.md): a late claim re-sent from the outbox carries the code too.
    (5, "outbox: the code shown, for the arbiter to verify", (
        "ALTER TABLE outbox ADD COLUMN text TEXT NOT NULL DEFAULT ''",
    )),
    # Check-in lists (gate/rules.py, docs/checkin-lists.md): each ticket's state on each list, and a journal of
    # every scan decided by a list (which list version, which direction), append-only like the audit log.
    (6, "check-in lists: pass state per (ticket, list), list scans journal", (
        """CREATE TABLE passes (
            event TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            list TEXT NOT NULL,
            entries INTEGER NOT NULL DEFAULT 0,
            day TEXT NOT NULL DEFAULT '',
            day_entries INTEGER NOT NULL DEFAULT 0,
            inside INTEGER NOT NULL DEFAULT 0,
            last_entry REAL NOT NULL DEFAULT 0,
            scan_id TEXT NOT NULL,
            PRIMARY KEY (event, ticket_id, list)
        ) WITHOUT ROWID""",
        """CREATE TABLE list_scans (
            scan_id TEXT PRIMARY KEY,
            at REAL NOT NULL,
            gate_id TEXT NOT NULL,
            event TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            list TEXT NOT NULL,
            list_version INTEGER NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            outcome TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        ) WITHOUT ROWID""",
        """CREATE TRIGGER list_scans_append_only_update BEFORE UPDATE ON list_scans
           BEGIN SELECT RAISE(ABORT, 'the list scans journal is append-only'); END""",
        """CREATE TRIGGER list_scans_append_only_delete BEFORE DELETE ON list_scans
           BEGIN SELECT RAISE(ABORT, 'the list scans journal is append-only'); END""",
    )),
    # Check-in lists over the wire (gate/passledger.py, docs/checkin-lists.md): each list transition sent to the
    # arbiter, in states claim / late / void / done like the outbox of single-use claims.
    (7, "check-in lists: the outbox of list transitions", (
        """CREATE TABLE pass_outbox (
            scan_id TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('claim', 'late', 'void', 'done')),
            event TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0,
            gate_id TEXT NOT NULL,
            at REAL NOT NULL,
            list TEXT NOT NULL,
            list_version INTEGER NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            product TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            updated REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            answer TEXT NOT NULL DEFAULT ''
        ) WITHOUT ROWID""",
        "CREATE INDEX pass_outbox_pending ON pass_outbox (state, created) WHERE state != 'done'",
    )),
    # Lists distributed on the stream (gate/servedlist.py, docs/checkin-lists.md): the signed document of each list
    # this gate adopted from the arbiter's stream (a higher version than it held), kept so a restart offline keeps it.
    (8, "check-in lists: signed list documents adopted from the stream", (
        """CREATE TABLE checkin_lists (
            name TEXT PRIMARY KEY,
            event TEXT NOT NULL,
            version INTEGER NOT NULL,
            document TEXT NOT NULL,
            seq INTEGER NOT NULL,
            adopted_at REAL NOT NULL
        ) WITHOUT ROWID""",
    )),
    # List conflicts (gate/ledger.py, docs/checkin-lists.md): each late entry the arbiter would have refused, as
    # its stream says (a `pass` item with `conflict`), beside the single-use `conflicts` for `gate conflicts`.
    (9, "check-in lists: the list conflicts the stream reported", (
        """CREATE TABLE pass_conflicts (
            late_scan_id TEXT PRIMARY KEY,
            event TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            list TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            first_gate TEXT,
            first_at REAL,
            first_scan_id TEXT,
            late_gate TEXT NOT NULL,
            late_at REAL NOT NULL,
            seq INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'open',
            recorded_at REAL NOT NULL
        ) WITHOUT ROWID""",
    )),
    # The list scans journal folded into the audit (gate/store.py, docs/checkin-lists.md): a list decision wrote
    # the same scan twice, once in `list_scans` (keyed by its random scan id) and once in the audit; now its one
    # audit row carries the list's name and version and the direction, and a partial index on the scan id finds
    # a replay.  The journal's rows name their audit rows (same scan id and outcome, written in one
    # transaction); the append-only trigger is lifted for that copy only.  `list_scans` stays, as a view.
    (10, "check-in lists: the list scans journal folded into the audit", (
        "ALTER TABLE audit ADD COLUMN list TEXT",
        "ALTER TABLE audit ADD COLUMN list_version INTEGER",
        "ALTER TABLE audit ADD COLUMN direction TEXT CHECK (direction IN ('in', 'out'))",
        "DROP TRIGGER audit_append_only_update",
        """UPDATE audit SET list = j.list, list_version = j.list_version, direction = j.direction
           FROM list_scans AS j
           WHERE audit.seq = (SELECT max(a.seq) FROM audit AS a WHERE a.scan_id = j.scan_id
                              AND a.outcome = j.outcome AND a.reason = j.reason)""",
        """CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        "DROP TABLE list_scans",
        "CREATE INDEX audit_list_scan ON audit (scan_id) WHERE list IS NOT NULL",
        """CREATE VIEW list_scans AS SELECT seq, scan_id, at, gate_id, event, ticket_id, list, list_version, direction,
           outcome, reason, detail FROM audit WHERE list IS NOT NULL""",
    )),
]
