"""The arbiter's side of an admin override: decided inside its batch transaction, audited in its store.

What a caller may rely on (ArbiterStore.apply calls `decide_override` for
each Override, inside the same BEGIN IMMEDIATE transaction as the rest of
the batch, so the change, its stream item and its audit row commit together):

* ``admit`` records a redemption held by gate ``admin:<by>`` with a fresh
  scan id (remembered as an admitted scan: never released), and puts it on
  the stream as a ``redemption``: every gate then answers ALREADY_USED.
  Answers ``won`` (with the stream seq), ``lost`` (``first`` holds it) or
  ``revoked``.
* ``unredeem`` drops the ticket's holder and puts a ``release`` item on the
  stream carrying ``override: "unredeem"`` (gates drop the row whatever its
  source, their own included); conflicts recorded against it stay on
  record.  Answers ``released`` (with the seq) or ``invalid`` (not redeemed).
* Every override, whatever its answer, is a row of ``overrides``: action,
  ticket, ``by`` (the MQTT sender), ``admin`` (the person), reason, the
  arbiter's time, the answer and the stream seq.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable

from sync.dashboard.messages import Override
from sync.wire import Answer, First

SCHEMA = """CREATE TABLE IF NOT EXISTS overrides (
    id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL, event TEXT NOT NULL, ticket_id TEXT NOT NULL,
    by TEXT NOT NULL, admin TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL, answer TEXT NOT NULL,
    seq INTEGER, scan_id TEXT)"""
ANY_EVENT = "*"

#: puts one item on the stream (the arbiter's `_emit` bound to this batch) and returns its seq
Emit = Callable[..., int]
#: the ticket's claims row: scan id, gate, gate time, arbiter time (None: not redeemed)
Holder = tuple[str, str, float, float] | None


def create(db: sqlite3.Connection) -> None:
    db.execute(SCHEMA)


def decide_override(db: sqlite3.Connection, o: Override, now: float, emit: Emit) -> Answer:
    holder = db.execute("SELECT scan_id, gate_id, at, arbiter_at FROM claims WHERE event = ? AND ticket_id = ?",
                        (o.event, o.ticket)).fetchone()
    answer, scan = (_admit if o.action == "admit" else _unredeem)(db, o, now, emit, holder)
    db.execute("INSERT INTO overrides (action, event, ticket_id, by, admin, reason, at, answer, seq, scan_id)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (o.action, o.event, o.ticket, o.by, o.admin, o.reason, now, answer.answer, answer.seq,
                scan))
    return answer


def _admit(db: sqlite3.Connection, o: Override, now: float, emit: Emit, holder: Holder) -> tuple[Answer, str | None]:
    if db.execute("SELECT 1 FROM revoked WHERE ticket_id = ? AND event IN (?, ?)",
                  (o.ticket, o.event, ANY_EVENT)).fetchone():
        return Answer(o.ticket, "revoked", detail="the ticket is revoked"), None
    if holder is not None:
        return Answer(o.ticket, "lost", first=First(holder[1], holder[2], holder[0], holder[3])), holder[0]
    scan, gate = uuid.uuid4().hex, f"admin:{o.by}"
    seq = emit(kind="redemption", event=o.event, ticket=o.ticket, gen=0, scan=scan, gate=gate, at=now,
               arbiter_at=now, admin=o.admin, reason=o.reason)
    db.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?, 0, ?, ?)", (o.event, o.ticket, scan, gate, now, now, seq))
    db.execute("INSERT INTO scans (scan_id, event, ticket_id, gate_id, at, generation, admitted, answer, seq,"
               " arbiter_at) VALUES (?, ?, ?, ?, ?, 0, 1, 'won', ?, ?)", (scan, o.event, o.ticket, gate, now, seq, now))
    return Answer(o.ticket, "won", seq, detail=f"recorded as gate {gate}"), scan


def _unredeem(db: sqlite3.Connection, o: Override, now: float, emit: Emit, holder: Holder) -> tuple[Answer, str | None]:
    if holder is None:
        return Answer(o.ticket, "invalid", detail="the ticket is not redeemed"), None
    scan, gate = holder[0], holder[1]
    db.execute("DELETE FROM claims WHERE event = ? AND ticket_id = ?", (o.event, o.ticket))
    seq = emit(kind="release", event=o.event, ticket=o.ticket, scan=scan, gate=gate, arbiter_at=now,
               override="unredeem", by=o.by, admin=o.admin, reason=o.reason)
    return Answer(o.ticket, "released", seq, detail=f"dropped the redemption of {gate}"), scan


def overrides(db: sqlite3.Connection) -> list[dict[str, object]]:
    """The audit of every override, oldest first."""
    cur = db.execute("SELECT * FROM overrides ORDER BY id")
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
