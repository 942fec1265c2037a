"""The dashboard's own SQLite file: every scan it received, the arbiter's stream, the admins' actions.

What a caller may rely on:

* The stream is kept from the arbiter's catch-up and live messages in
  sequence order, keyed by (epoch, seq), with the position in ``meta``: the
  same rules as a gate's ledger (items at or below the position are skipped,
  one past position + 1 is a gap), so a restarted dashboard catches up from
  where it stopped and is complete.
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
from sync.exc import SyncError
from sync.wire import Json, ScanEvent

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
                           [(epoch, i["seq"], i["kind"], i["event"], i["ticket"], json.dumps(i)) for i in kept])
            if kept or not stored:
                self._save_position(db, epoch, int(kept[-1]["seq"]) if kept else seq)
            return [dict(i) for i in kept], gap

    def reset_stream(self, epoch: str) -> None:
        """Follow a new arbiter database from 0 (the old epoch's items stay, for ticket lookups)."""
        with self._transaction() as db:
            self._save_position(db, epoch, 0)

    def stream_items(self) -> list[Json]:
        """Every item of the current epoch, in order (to rebuild the live view at start)."""
        with self._transaction() as db:
            epoch, _ = self._position(db)
            rows = db.execute("SELECT body FROM stream WHERE epoch = ? ORDER BY seq", (epoch,)).fetchall()
        return [json.loads(body) for (body,) in rows]

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
    summary = s["outcome"] + (f" {s['reason']}" if s["reason"] else "")
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
    return row
