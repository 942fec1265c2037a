"""The dashboard's own SQLite file: every scan it received, the arbiter's stream, the admins' actions.

What a caller may rely on:

* The stream is kept from the arbiter's catch-up and live messages in
  sequence order, keyed by (epoch, seq), with the position in ``meta``: the
  same rules as a gate's ledger (items at or below the position are skipped,
  one past position + 1 is a gap), so a restarted dashboard catches up from
  where it stopped and is complete.
* Each `pass` item also updates its ticket's state on its list (``passes``, in the same transaction): the
  state of the highest seq, so the areas' inside counts (`areas`) survive a restart exactly as the
  arbiter's; a new arbiter database (`reset_stream`) starts them again.
* Scans are kept by scan id (a repeated message changes nothing).  Scans
  published while the dashboard was down are not on the stream and stay
  missing; the gates' own counts (in their status) are complete.
* WAL with synchronous=NORMAL: a power cut may lose the last scans, never
  corrupt the file; the stream is fetched again by catch-up.
* Thread-safe (one connection behind a lock).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gate.sequence import in_sequence
from gate.sqlite import Database, Migration, has_table
from sync.dashboard.areas import Held, Key
from sync.dashboard.words import words
from sync.exc import SyncError
from sync.wire import Json, ScanEvent

#: the latest state of each (event, ticket, list) among the pass items of the stream's current epoch (SQLite takes
#: a bare column from the row of the max)
PASS_BACKFILL = """INSERT INTO passes SELECT event, ticket_id, json_extract(body, '$.list'), max(seq),
        json_extract(body, '$.state.inside'), json_extract(body, '$.state.entries')
    FROM stream WHERE kind = 'pass' AND epoch = (SELECT value FROM meta WHERE key = 'epoch')
    GROUP BY event, ticket_id, json_extract(body, '$.list')"""
#: a history made before migrations were recorded (every table was CREATE TABLE IF NOT EXISTS) is adopted
#: at version 1: its layout is exactly migration 1's
MIGRATIONS: list[Migration] = [(1, "scans, the stream, the admins' actions", (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS scans (
        scan_id TEXT PRIMARY KEY, gate_id TEXT NOT NULL, at REAL NOT NULL, received_at REAL NOT NULL,
        outcome TEXT NOT NULL, reason TEXT NOT NULL, event TEXT, ticket_id TEXT, body TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS scans_ticket ON scans (ticket_id)",
    "CREATE INDEX IF NOT EXISTS scans_received ON scans (received_at)",
    """CREATE TABLE IF NOT EXISTS stream (
        epoch TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, event TEXT NOT NULL,
        ticket_id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (epoch, seq)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS stream_ticket ON stream (ticket_id)",
    """CREATE TABLE IF NOT EXISTS actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, admin TEXT NOT NULL, action TEXT NOT NULL,
        event TEXT NOT NULL, ticket_id TEXT NOT NULL, reason TEXT NOT NULL, remote TEXT NOT NULL,
        answer TEXT NOT NULL, detail TEXT NOT NULL)""",
)), (2, "each ticket's latest state per check-in list (the areas' inside counts), from the stream's pass items", (
    """CREATE TABLE passes (
        event TEXT NOT NULL, ticket_id TEXT NOT NULL, list TEXT NOT NULL, seq INTEGER NOT NULL,
        inside INTEGER NOT NULL, entries INTEGER NOT NULL, PRIMARY KEY (event, ticket_id, list)) WITHOUT ROWID""",
    PASS_BACKFILL,  # a history that kept pass items already (in `stream`) starts with their states
))]


class HistoryError(SyncError, OSError):
    """The dashboard's history file cannot be read or written."""


class History:
    """Open with `History.open(path)`; close with `close()`."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.conn = database.conn
        self.path = database.path

    @classmethod
    def open(cls, path: str | Path) -> History:
        return cls(Database.open(path, MIGRATIONS, error=HistoryError, what="dashboard's history",
                                 synchronous="NORMAL", adopt=lambda db: 1 if has_table(db, "meta") else 0))

    def close(self) -> None:
        self.database.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self.database.transaction() as db:
            yield db

    # -- scans -------------------------------------------------------------------------------------
    def add_scans(self, scans: Sequence[tuple[ScanEvent, float]]) -> None:
        with self._transaction() as db:
            db.executemany("INSERT INTO scans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           [(s.scan_id, s.gate_id, s.at, received, s.outcome, s.reason, s.event, s.ticket_id,
                             json.dumps(s.to_json())) for s, received in scans])

    def recent_scans(self, since: float) -> list[tuple[ScanEvent, float]]:
        """Scans received at or after `since` (dashboard clock), oldest first."""
        with self._transaction() as db:
            rows = db.execute("SELECT body, received_at FROM scans WHERE received_at >= ? ORDER BY received_at",
                              (since,)).fetchall()
        return [(ScanEvent(**json.loads(body)), received) for body, received in rows]

    # -- the stream ----------------------------------------------------------------------------------
    def position(self) -> tuple[str, int]:
        with self._transaction() as db:
            return self._position(db)

    def apply_stream(self, epoch: str, items: list[Json]) -> tuple[list[Json], bool]:
        """Keep items in order from the position (gate/sequence.py): (the items kept, gap)."""
        with self._transaction() as db:
            stored, seq = self._position(db)
            if stored and stored != epoch:
                return [], True
            kept, gap = in_sequence(items, seq)
            db.executemany("INSERT INTO stream VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           [(epoch, i["seq"], i["kind"], i["event"], i.get("ticket", ""), json.dumps(i))  # a list: none
                            for i in kept])
            self._keep_passes(db, [dict(i) for i in kept if i["kind"] == "pass"])
            if kept or not stored:
                self._save_position(db, epoch, int(kept[-1]["seq"]) if kept else seq)
            return [dict(i) for i in kept], gap

    def reset_stream(self, epoch: str) -> None:
        """Follow a new arbiter database from 0 (the old epoch's items stay, for ticket lookups)."""
        with self._transaction() as db:
            self._save_position(db, epoch, 0)
            db.execute("DELETE FROM passes")  # the new database's states come on its stream

    def stream_items(self) -> list[Json]:
        """Every item of the current epoch, in order (to rebuild the live view at start)."""
        with self._transaction() as db:
            epoch, _ = self._position(db)
            rows = db.execute("SELECT body FROM stream WHERE epoch = ? ORDER BY seq", (epoch,)).fetchall()
        return [json.loads(body) for (body,) in rows]

    @staticmethod
    def _keep_passes(db: sqlite3.Connection, items: list[Json]) -> None:
        """Each ticket's latest state per list (a lower seq never overwrites a higher one)."""
        db.executemany("INSERT INTO passes VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event, ticket_id, list)"
                       " DO UPDATE SET seq = excluded.seq, inside = excluded.inside, entries = excluded.entries"
                       " WHERE excluded.seq > passes.seq",
                       [(i["event"], i["ticket"], i["list"], i["seq"], int(bool(i["state"]["inside"])),
                         int(i["state"]["entries"])) for i in items])

    # -- check-in lists --------------------------------------------------------------------------------
    def pass_states(self) -> list[tuple[Key, Held]]:
        """Every ticket's latest state per list, as kept (to rebuild the areas at start)."""
        with self._transaction() as db:
            rows = db.execute("SELECT event, ticket_id, list, seq, inside, entries FROM passes").fetchall()
        return [((event, ticket, name), Held(seq, bool(inside), entries)) for event, ticket, name, seq, inside, entries
                in rows]

    def areas(self) -> dict[str, tuple[int, int]]:
        """Per list: (tickets inside, entries admitted), from the kept states (as `ArbiterStore.inside`)."""
        with self._transaction() as db:
            rows = db.execute("SELECT list, sum(inside), sum(entries) FROM passes GROUP BY list ORDER BY list")
            return {name: (int(inside), int(entries)) for name, inside, entries in rows.fetchall()}

    @staticmethod
    def _position(db: sqlite3.Connection) -> tuple[str, int]:
        rows = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('epoch', 'seq')").fetchall())
        return rows.get("epoch", ""), int(rows.get("seq", "0"))

    @staticmethod
    def _save_position(db: sqlite3.Connection, epoch: str, seq: int) -> None:
        db.executemany("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       [("epoch", epoch), ("seq", str(seq))])

    # -- admins' actions -------------------------------------------------------------------------------
    def record_action(self, at: float, admin: str, action: str, event: str, ticket: str, reason: str, remote: str,
                      answer: str, detail: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO actions (at, admin, action, event, ticket_id, reason, remote, answer, detail)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (at, admin, action, event, ticket, reason, remote, answer, detail))

    # -- one ticket ----------------------------------------------------------------------------------------
    def ticket(self, ticket_id: str, event: str | None = None) -> list[dict[str, Any]]:
        """Everything known about one ticket across gates, oldest first: scans, stream items, admins' actions."""
        where, args = "ticket_id = ?", [ticket_id]
        if event:
            where, args = where + " AND event = ?", [*args, event]
        with self._transaction() as db:
            scans = db.execute(f"SELECT body, received_at FROM scans WHERE {where}", args).fetchall()
            items = db.execute(f"SELECT body FROM stream WHERE {where} ORDER BY epoch, seq", args).fetchall()
            actions = db.execute(f"SELECT at, admin, action, event, reason, answer, detail FROM actions WHERE {where}"
                                 " ORDER BY id", args).fetchall()
        rows = [_scan_row(json.loads(body), received) for body, received in scans]
        rows += [_stream_row(json.loads(body)) for (body,) in items]
        rows += [{"time": at, "source": "dashboard", "kind": action, "event": ev, "gate": "", "outcome": answer,
                  "summary": f"{action} by {admin}: {reason or '-'} -> {answer} {detail}".rstrip()}
                 for at, admin, action, ev, reason, answer, detail in actions]
        return sorted(rows, key=lambda r: r["time"])


def _scan_row(s: Json, received: float) -> dict[str, Any]:
    summary = s["outcome"] + (f" {words(s['reason'])}" if s["reason"] else "")
    if s.get("first_gate"):
        summary += f" (first used at {s['first_gate']})"
    if s.get("provisional"):
        summary += " provisional (gate offline)"
    return {"time": s["at"], "source": "gate", "kind": "scan", "event": s["event"], "gate": s["gate_id"],
            "outcome": s["outcome"], "scan": s["scan_id"], "received": received, "summary": summary}


def _stream_row(item: Json) -> dict[str, Any]:
    kind = item["kind"]
    row: dict[str, Any] = {"time": item.get("arbiter_at", item.get("at", 0.0)), "source": "arbiter", "kind": kind,
                           "event": item["event"], "gate": item.get("gate", ""), "outcome": kind,
                           "seq": item["seq"]}
    if kind == "redemption":
        row["summary"] = f"redeemed by {item['gate']} (stream #{item['seq']})"
    elif kind == "release":
        by = f" by admin {item.get('admin') or item.get('by')}" if item.get("override") else ""
        row["summary"] = f"redemption of {item['gate']} dropped{by} (stream #{item['seq']})"
    elif kind == "revocation":
        row["summary"] = f"revoked by {item.get('admin') or item.get('by', '?')}: {item.get('reason') or '-'}"
    elif kind == "generation":
        row["summary"] = f"now ownership generation {item.get('gen')}"
    elif kind == "conflict":
        first, late = item["first"], item["late"]
        row["gate"] = late["gate"]
        row["summary"] = (f"DOUBLE ENTRY ({item['state']}): first {first['gate']}, again {late['gate']} "
                          f"(admitted while offline)")
    elif kind == "pass":
        row["summary"] = _pass_summary(item)
        row["conflict"] = bool(item.get("conflict"))
    return row


def _pass_summary(item: Json) -> str:
    state = item["state"]
    move = "exit" if item.get("direction") == "out" else "entry"
    ruling = str(item.get("outcome", "")) + (f" {words(str(item['reason']))}" if item.get("reason") else "")
    where = "inside" if state["inside"] else "outside"
    text = f"list {item['list']}: {move} at {item.get('gate', '?')}: {ruling}; now {where}, entries used: {state['entries']}"
    if item.get("conflict"):
        text = f"LIST CONFLICT: {text} (let in while the gate was offline)"
    return text + f" (stream #{item['seq']})"
