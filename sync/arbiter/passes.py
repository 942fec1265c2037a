"""The arbiter's side of check-in lists: each (ticket, list) state as one compare-and-set per transition.

Runs inside `ArbiterStore.apply`'s transaction (the arbiter's file has this module and sync/arbiter/store.py
as writers, like gate/store.py and gate/ledger.py share the gate's file).  What a caller may rely on:

* A transition is judged by gate/admission.py against the arbiter's state with the list the arbiter holds,
  then written with ``UPDATE ... WHERE rev = <the revision read>`` (insert-if-absent for a first scan): a
  state that changed in between is read and judged again, so no writer can spend an entry twice.
* Every transition's ruling is remembered by scan id: a replay gets the same answer and changes nothing;
  a scan id of another gate or ticket is refused.
* An entry the list allows is refused `area_full` when the list has a capacity and that many tickets are
  inside (an exact count per list, kept in the same transaction).
* A late transition (`admitted`: the gate let the person in offline) the arbiter would have refused is a
  fact: it is recorded as a conflict and applied (the ticket is inside), so inside counts follow reality.
* Entries of a revoked ticket (or of an ownership generation below the arbiter's) are refused REVOKED
  (``revoked`` / ``superseded``), like claims; exits are let through.
* A scan id first decided live and refused, then reported ``admitted`` (the gate gave up waiting and let
  the person in offline), is judged again as a late transition: a fact, a conflict if still refused.
* Late transitions reach the arbiter in any order: a late move older than the ticket's last applied move
  the other way (an exit, or an entry) leaves it where that later move put it (it still spends its entry).
* A ``void`` transition (the gate gave up waiting and refused) undoes what its scan id applied: exactly
  (the state before it) if nothing moved the ticket since, else the entry it spent is given back; a scan
  id never seen is tombstoned, so a stale copy of its transition never applies.
* Each applied transition (and each undo) is one stream item (kind ``pass``) with the ticket's new state;
  every answer carries the ticket's state as the arbiter holds it then.  A conflict's item also carries
  `detail` and `first`: the ticket's last entry applied before it (``{"gate", "at", "scan"}``, or None).
* `CONFLICTS` reads the list conflicts (always ``open``: a fact the gate reported is never undone) in the
  columns of the single-use `conflicts` table, for `gate conflicts --arbiter`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

from gate.admission import entered, judge
from gate.outcomes import Outcome, Reason
from gate.passes import PassState
from gate.rules import CheckinList
from sync.wire import Json, PassAnswer, Transition

#: appends one stream item and returns its sequence number (ArbiterStore._emit bound to the transaction)
Emit = Callable[..., int]
STATE = ("SELECT entries, day, day_entries, inside, last_entry, rev, scan_id FROM pass_states"
         " WHERE event = ? AND ticket_id = ? AND list = ?")
#: everything a transition is decided on, in one statement (the hot path, like store.CLAIM_LOOKUP): the scan id's
#: earlier ruling if any (columns 0-11), the ticket's state on the list (12-18, STATE's columns), whether
#: the ticket is revoked (19) and its ownership generation at the arbiter (20)
LOOKUP = """
    SELECT p.gate_id, p.event, p.ticket_id, p.list, p.outcome, p.reason, p.detail, p.seq, p.conflict, p.admitted,
           p.undo, p.direction,
           s.entries, s.day, s.day_entries, s.inside, s.last_entry, s.rev, s.scan_id,
           EXISTS (SELECT 1 FROM revoked WHERE ticket_id = :ticket AND event IN (:event, :any)),
           (SELECT generation FROM generations WHERE event = :event AND ticket_id = :ticket)
    FROM (SELECT 1) AS one
    LEFT JOIN pass_scans AS p ON p.scan_id = :scan
    LEFT JOIN pass_states AS s ON s.event = :event AND s.ticket_id = :ticket AND s.list = :list"""
#: the time of the ticket's last exit the arbiter let through (voided ones are FAULT): the partial index
#: pass_scans_exits (migration 7) holds exactly these rows, so an entry's row is in no index but the key's
LAST_EXIT = ("SELECT max(at) FROM pass_scans WHERE event = ? AND ticket_id = ? AND list = ? AND direction = 'out'"
             " AND outcome = 'ADMIT'")
#: a conflict's earlier entry (its `first`): the ticket's last entry applied so far.  Looked for by the scan
#: that last moved the ticket's state (a key lookup: an entry when the ticket is inside, as in the usual
#: conflict, "entered while already inside"), else among the ticket's moves (no index serves this: only a
#: conflict of a ticket whose last move was an exit pays for that search)
MOVED_BY = ("SELECT gate_id, at, scan_id FROM pass_scans WHERE scan_id = ? AND direction = 'in'"
            " AND (outcome = 'ADMIT' OR conflict = 1)")
LAST_ENTRY = ("SELECT gate_id, at, scan_id FROM pass_scans WHERE event = ? AND ticket_id = ? AND list = ?"
              " AND direction = 'in' AND seq IS NOT NULL AND (outcome = 'ADMIT' OR conflict = 1)"
              " ORDER BY seq DESC LIMIT 1")
#: every list conflict, oldest first, in the single-use conflicts' columns (plus list, version, reason, detail);
#: its earlier entry is the one its row names (first_scan, migration 8: none on older rows)
CONFLICTS = ("SELECT p.scan_id AS late_scan_id, p.event, p.ticket_id, f.scan_id AS first_scan_id,"
             " f.gate_id AS first_gate, f.at AS first_at, p.gate_id AS late_gate, p.at AS late_at, p.arbiter_at,"
             " p.seq, 'open' AS state, p.list, p.list_version, p.reason, p.detail FROM pass_scans p"
             " LEFT JOIN pass_scans f ON f.scan_id = p.first_scan WHERE p.conflict = 1 ORDER BY p.seq, p.scan_id")
#: what a voided scan id answers, then and ever after
VOID = (Outcome.FAULT.value, Reason.OFFLINE.value)
ANY_EVENT = "*"


def transition(db: sqlite3.Connection, t: Transition, lists: Mapping[str, CheckinList], now: float,
               emit: Emit) -> PassAnswer:
    """Decide one transition in the caller's transaction; its answer (remembered by scan id)."""
    row = _lookup(db, t)
    if row[0] is not None:
        prior = row[:12]
        if tuple(prior[:4]) != (t.gate, t.event, t.ticket, t.list):
            return PassAnswer(t.scan, Outcome.INVALID.value, Reason.REFUSED.value, "scan id already used")
        if t.void:
            return _void(db, t, prior, lists.get(t.list), now, emit)
        if not (t.admitted and not prior[9] and prior[4] != Outcome.ADMIT.value and (prior[4], prior[5]) != VOID):
            return PassAnswer(t.scan, prior[4], prior[5], prior[6], prior[7], bool(prior[8]),
                              state_json(_held(row[12:19])[0]))
        db.execute("DELETE FROM pass_scans WHERE scan_id = ?", (t.scan,))  # refused live, let in after all: a fact
    lst = lists.get(t.list)
    if t.void:
        return _tombstone(db, t, lst, now, "void before it was decided")
    if lst is None or lst.event != t.event:
        return PassAnswer(t.scan, Outcome.INVALID.value, Reason.NOT_THIS_LIST.value,
                          f"the arbiter holds no list {t.list} for event {t.event}")
    for _ in range(8):  # a lost compare-and-set is judged again on the state that won
        answer = _try(db, t, lst, now, emit, row)
        if answer is not None:
            return answer
        row = _lookup(db, t)
    raise sqlite3.OperationalError(f"pass state of {t.event}/{t.ticket} on {t.list} keeps changing")


def _lookup(db: sqlite3.Connection, t: Transition) -> Sequence[Any]:
    """LOOKUP's row for `t`, as this transaction sees it now."""
    return cast(Sequence[Any], db.execute(LOOKUP, {"scan": t.scan, "event": t.event, "ticket": t.ticket,
                                                   "list": t.list, "any": ANY_EVENT}).fetchone())


def _held(row: Sequence[Any]) -> tuple[PassState, int]:
    """The state and revision of STATE's columns (a fresh state, revision 0, when the ticket has none)."""
    if row[5] is None:
        return PassState(), 0
    return PassState(row[0], row[1], row[2], bool(row[3]), row[4]), row[5]


def _try(db: sqlite3.Connection, t: Transition, lst: CheckinList, now: float, emit: Emit,
         row: Sequence[Any]) -> PassAnswer | None:
    """Judge `t` on LOOKUP's `row` and compare-and-set its state; None when another writer moved it first."""
    state, rev = _held(row[12:19])
    ruling = judge(lst, t.product, state, t.at, "out" if t.direction == "out" else "in")
    outcome, reason, detail, nxt = ruling.outcome, ruling.reason, ruling.detail, ruling.state
    refused = _refused(t, row[19], row[20]) if ruling.admitted and t.direction == "in" else None
    if refused is not None:
        outcome, reason, detail, nxt = *refused, state
    elif ruling.admitted and t.direction == "in" and not state.inside and _full(db, lst):
        outcome, reason, detail, nxt = Outcome.ALREADY_USED, Reason.AREA_FULL, f"{lst.capacity} inside", state
    conflict = t.admitted and t.direction == "in" and outcome is not Outcome.ADMIT
    if conflict:  # let in offline although refused here: a fact, recorded and applied
        nxt = entered(lst, state, t.at)
    if t.admitted and nxt != state:
        nxt = _in_time(db, t, state, nxt)
    seq, after, first = None, state_json(nxt), None
    if nxt != state:
        if not _swap(db, t.event, t.ticket, t.list, t.scan, nxt, rev):
            return None
        _count(db, lst.name, int(nxt.inside) - int(state.inside), int(nxt.entries > state.entries))
        first = _last_entry(db, t, row[18]) if conflict else None
        said = {"detail": detail, "first": first} if conflict else {}
        seq = emit(kind="pass", event=t.event, ticket=t.ticket, list=t.list, scan=t.scan, gate=t.gate, at=t.at,
                   direction=t.direction, outcome=outcome.value, reason=reason.value, conflict=conflict,
                   state=after, arbiter_at=now, **said)
    _remember(db, t, lst.version, outcome.value, reason.value, detail, conflict, seq, now,
              undo_text(state, nxt) if seq is not None else "", first["scan"] if first else "")
    return PassAnswer(t.scan, outcome.value, reason.value, detail, seq, conflict, after)


def _last_entry(db: sqlite3.Connection, t: Transition, moved_by: str | None) -> Json | None:
    """The ticket's last entry on the list applied so far (this transition is not yet remembered); `moved_by`
    is the scan that last moved its state (MOVED_BY, LAST_ENTRY)."""
    row = db.execute(MOVED_BY, (moved_by,)).fetchone() if moved_by else None
    if row is None:
        row = db.execute(LAST_ENTRY, (t.event, t.ticket, t.list)).fetchone()
    return {"gate": row[0], "at": row[1], "scan": row[2]} if row else None


def _in_time(db: sqlite3.Connection, t: Transition, state: PassState, nxt: PassState) -> PassState:
    """A late move older than the ticket's last applied move the other way (an exit, or an entry) leaves the
    ticket where that later move put it: late moves reach the arbiter in any order, people moved in one."""
    if t.direction == "out":
        older = state.last_entry > t.at
    else:
        row = db.execute(LAST_EXIT, (t.event, t.ticket, t.list)).fetchone()
        older = row is not None and row[0] is not None and row[0] > t.at
    return replace(nxt, inside=state.inside) if older else nxt


def _refused(t: Transition, revoked: object, current: int | None) -> tuple[Outcome, Reason, str] | None:
    """REVOKED for an entry of a revoked ticket or of an ownership generation below the arbiter's (LOOKUP's
    columns 19 and 20)."""
    if revoked:
        return Outcome.REVOKED, Reason.REVOKED, "the ticket is revoked"
    if current is not None and t.gen < current:
        return Outcome.REVOKED, Reason.SUPERSEDED, f"generation {t.gen} superseded by {current}"
    return None


def _void(db: sqlite3.Connection, t: Transition, prior: Sequence[Any], lst: CheckinList | None, now: float,
          emit: Emit) -> PassAnswer:
    """Undo what scan `t.scan` applied (it let nobody through), and answer like a void ever after."""
    if (prior[4], prior[5]) == VOID or prior[9]:  # voided already, or a fact the gate reported: never undone
        return PassAnswer(t.scan, prior[4], prior[5], prior[6], prior[7], bool(prior[8]), _current(db, t))
    seq = prior[7]
    if seq is not None and prior[10] and not prior[9]:  # applied, and not a fact reported by the gate
        before, spent, day = undo_of(prior[10])
        for _ in range(8):
            done = _undo(db, t, prior[11], before, spent, day, now, emit)
            if done is not None:
                seq = done
                break
    db.execute("UPDATE pass_scans SET outcome = ?, reason = ?, detail = ?, seq = ? WHERE scan_id = ?",
               (*VOID, "void: the gate gave up waiting and let nobody through", seq, t.scan))
    return PassAnswer(t.scan, *VOID, "void: the gate gave up waiting and let nobody through", seq,
                      state=_current(db, t))


def _undo(db: sqlite3.Connection, t: Transition, direction: str, before: PassState, spent: int, day: str, now: float,
          emit: Emit) -> int | None:
    """One compare-and-set of the undo of a transition that moved the ticket from `before`, spending `spent`
    entries and counting on venue `day`; the stream seq of the undo (or of nothing to undo: 0), None if lost."""
    row = db.execute(STATE, (t.event, t.ticket, t.list)).fetchone()
    if row is None:
        return 0
    cur = PassState(row[0], row[1], row[2], bool(row[3]), row[4])
    if row[6] == t.scan:  # nothing moved the ticket since: exactly as before
        nxt = before
    else:  # later moves left the ticket where it is: give back the entry it spent
        nxt = replace(cur, entries=max(cur.entries - spent, 0),
                      day_entries=max(cur.day_entries - spent, 0) if cur.day == day else cur.day_entries)
    if nxt == cur:
        return 0
    if not _swap(db, t.event, t.ticket, t.list, t.scan, nxt, row[5]):
        return None
    _count(db, t.list, int(nxt.inside) - int(cur.inside), -int(nxt.entries < cur.entries))
    return emit(kind="pass", event=t.event, ticket=t.ticket, list=t.list, scan=t.scan, gate=t.gate, at=t.at,
                direction=direction, outcome=VOID[0], reason=VOID[1], conflict=False, state=state_json(nxt),
                arbiter_at=now)


def _tombstone(db: sqlite3.Connection, t: Transition, lst: CheckinList | None, now: float, why: str) -> PassAnswer:
    _remember(db, t, lst.version if lst else t.version, *VOID, f"void: {why}", False, None, now, "")
    return PassAnswer(t.scan, *VOID, f"void: {why}", state=_current(db, t))


def _remember(db: sqlite3.Connection, t: Transition, version: int, outcome: str, reason: str, detail: str,
              conflict: bool, seq: int | None, now: float, undo: str, first: str = "") -> None:
    db.execute("INSERT INTO pass_scans (scan_id, event, ticket_id, list, list_version, gate_id, direction, at,"
               " admitted, outcome, reason, detail, conflict, seq, arbiter_at, undo, first_scan)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (t.scan, t.event, t.ticket, t.list, version, t.gate, t.direction, t.at, int(t.admitted),
                outcome, reason, detail, int(conflict), seq, now, undo, first))


def _swap(db: sqlite3.Connection, event: str, ticket: str, name: str, scan: str, s: PassState, rev: int) -> bool:
    """The compare-and-set: the new state only if the state is still the revision `rev` that was judged."""
    values = (s.entries, s.day, s.day_entries, int(s.inside), s.last_entry, scan)
    if rev == 0:
        return bool(db.execute("INSERT INTO pass_states VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT DO NOTHING",
                               (event, ticket, name, *values)).rowcount)
    return bool(db.execute("UPDATE pass_states SET entries = ?, day = ?, day_entries = ?, inside = ?, last_entry = ?,"
                           " scan_id = ?, rev = rev + 1 WHERE event = ? AND ticket_id = ? AND list = ? AND rev = ?",
                           (*values, event, ticket, name, rev)).rowcount)


def _full(db: sqlite3.Connection, lst: CheckinList) -> bool:
    if not lst.capacity:
        return False
    row = db.execute("SELECT inside FROM pass_areas WHERE list = ?", (lst.name,)).fetchone()
    return bool(row) and row[0] >= lst.capacity


def _count(db: sqlite3.Connection, name: str, inside: int, admitted: int) -> None:
    # CASE, not SQLite's max(a, b): the same SQL runs on PostgreSQL (sync/arbiter/pgstore.py)
    if not db.execute("UPDATE pass_areas SET inside = CASE WHEN inside + ? > 0 THEN inside + ? ELSE 0 END,"
                      " admitted = CASE WHEN admitted + ? > 0 THEN admitted + ? ELSE 0 END WHERE list = ?",
                      (inside, inside, admitted, admitted, name)).rowcount:
        db.execute("INSERT INTO pass_areas VALUES (?, ?, ?)", (name, max(inside, 0), max(admitted, 0)))


def _current(db: sqlite3.Connection, t: Transition) -> Json:
    row = db.execute(STATE, (t.event, t.ticket, t.list)).fetchone()
    return state_json(PassState(row[0], row[1], row[2], bool(row[3]), row[4]) if row else PassState())


def state_json(s: PassState) -> Json:
    """A state as the wire carries it (sync.wire.PASS_STATE)."""
    return {"entries": s.entries, "day": s.day, "day_entries": s.day_entries, "inside": s.inside,
            "last_entry": s.last_entry}


def _state(d: Json) -> PassState:
    return PassState(int(d["entries"]), str(d["day"]), int(d["day_entries"]), bool(d["inside"]),
                     float(d["last_entry"]))


def undo_text(before: PassState, after: PassState) -> str:
    """What ``pass_scans.undo`` keeps of an applied transition: the state before it, whole (an undo while nothing
    moved the ticket since puts it back), and of the state after it the two fields an undo after later moves
    needs (the entries it spent, its venue day), as ``entries|day|day_entries|inside|last_entry|entries|day``.
    Not JSON: on the hot path, and a fifth of the bytes (rows made before migration 7 hold JSON: `undo_of`
    reads both)."""
    return (f"{before.entries}|{before.day}|{before.day_entries}|{int(before.inside)}|{before.last_entry!r}|"
            f"{after.entries}|{after.day}")


def undo_of(text: str) -> tuple[PassState, int, str]:
    """`undo_text`'s (or an older row's JSON) state before, entries spent and venue day after."""
    if text.startswith("{"):
        undo = json.loads(text)
        before, after = _state(undo["before"]), _state(undo["after"])
        return before, after.entries - before.entries, after.day
    entries, day, day_entries, inside, last_entry, after_entries, after_day = text.split("|")
    before = PassState(int(entries), day, int(day_entries), inside == "1", float(last_entry))
    return before, int(after_entries) - before.entries, after_day


#: per list: tickets inside now, entries admitted (ArbiterStore.inside)
INSIDE = "SELECT list, inside, admitted FROM pass_areas ORDER BY list"
