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
* Each applied transition is one stream item (kind ``pass``) with the ticket's new state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping

from gate.admission import entered, judge
from gate.outcomes import Outcome, Reason
from gate.passes import PassState
from gate.rules import CheckinList
from sync.wire import Json, PassAnswer, Transition

#: appends one stream item and returns its sequence number (ArbiterStore._emit bound to the transaction)
Emit = Callable[..., int]
STATE = "SELECT entries, day, day_entries, inside, last_entry, rev FROM pass_states WHERE event = ? AND ticket_id = ? AND list = ?"


def transition(db: sqlite3.Connection, t: Transition, lists: Mapping[str, CheckinList], now: float,
               emit: Emit) -> PassAnswer:
    """Decide one transition in the caller's transaction; its answer (remembered by scan id)."""
    prior = db.execute("SELECT gate_id, event, ticket_id, list, outcome, reason, detail, seq, conflict FROM pass_scans"
                       " WHERE scan_id = ?", (t.scan,)).fetchone()
    if prior is not None:
        if tuple(prior[:4]) != (t.gate, t.event, t.ticket, t.list):
            return PassAnswer(t.scan, Outcome.INVALID.value, Reason.REFUSED.value, "scan id already used")
        return PassAnswer(t.scan, prior[4], prior[5], prior[6], prior[7], bool(prior[8]))
    lst = lists.get(t.list)
    if lst is None or lst.event != t.event:
        return PassAnswer(t.scan, Outcome.INVALID.value, Reason.NOT_THIS_LIST.value,
                          f"the arbiter holds no list {t.list} for event {t.event}")
    for _ in range(8):  # a lost compare-and-set is judged again on the state that won
        answer = _try(db, t, lst, now, emit)
        if answer is not None:
            return answer
    raise sqlite3.OperationalError(f"pass state of {t.event}/{t.ticket} on {t.list} keeps changing")


def _try(db: sqlite3.Connection, t: Transition, lst: CheckinList, now: float, emit: Emit) -> PassAnswer | None:
    row = db.execute(STATE, (t.event, t.ticket, t.list)).fetchone()
    state = PassState(row[0], row[1], row[2], bool(row[3]), row[4]) if row else PassState()
    rev = row[5] if row else 0
    ruling = judge(lst, t.product, state, t.at, "out" if t.direction == "out" else "in")
    outcome, reason, detail, nxt = ruling.outcome, ruling.reason, ruling.detail, ruling.state
    if ruling.admitted and t.direction == "in" and not state.inside and _full(db, lst):
        outcome, reason, detail, nxt = Outcome.ALREADY_USED, Reason.AREA_FULL, f"{lst.capacity} inside", state
    conflict = t.admitted and t.direction == "in" and outcome is not Outcome.ADMIT
    if conflict:  # let in offline although refused here: a fact, recorded and applied
        nxt = entered(lst, state, t.at)
    seq = None
    if nxt != state:
        if not _swap(db, t, nxt, rev):
            return None
        _count(db, lst.name, int(nxt.inside) - int(state.inside), int(nxt.entries > state.entries))
        seq = emit(kind="pass", event=t.event, ticket=t.ticket, list=t.list, scan=t.scan, gate=t.gate, at=t.at,
                   direction=t.direction, outcome=outcome.value, reason=reason.value, conflict=conflict,
                   state=_state_json(nxt), arbiter_at=now)
    db.execute("INSERT INTO pass_scans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (t.scan, t.event, t.ticket, t.list, lst.version, t.gate, t.direction, t.at, int(t.admitted),
                outcome.value, reason.value, detail, int(conflict), seq, now))
    return PassAnswer(t.scan, outcome.value, reason.value, detail, seq, conflict)


def _swap(db: sqlite3.Connection, t: Transition, s: PassState, rev: int) -> bool:
    """The compare-and-set: the new state only if the state is still the revision `rev` that was judged."""
    values = (s.entries, s.day, s.day_entries, int(s.inside), s.last_entry, t.scan)
    if rev == 0:
        return bool(db.execute("INSERT INTO pass_states VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT DO NOTHING",
                               (t.event, t.ticket, t.list, *values)).rowcount)
    return bool(db.execute("UPDATE pass_states SET entries = ?, day = ?, day_entries = ?, inside = ?, last_entry = ?,"
                           " scan_id = ?, rev = rev + 1 WHERE event = ? AND ticket_id = ? AND list = ? AND rev = ?",
                           (*values, t.event, t.ticket, t.list, rev)).rowcount)


def _full(db: sqlite3.Connection, lst: CheckinList) -> bool:
    if not lst.capacity:
        return False
    row = db.execute("SELECT inside FROM pass_areas WHERE list = ?", (lst.name,)).fetchone()
    return bool(row) and row[0] >= lst.capacity


def _count(db: sqlite3.Connection, name: str, inside: int, admitted: int) -> None:
    if not db.execute("UPDATE pass_areas SET inside = max(inside + ?, 0), admitted = admitted + ? WHERE list = ?",
                      (inside, admitted, name)).rowcount:
        db.execute("INSERT INTO pass_areas VALUES (?, ?, ?)", (name, max(inside, 0), admitted))


def _state_json(s: PassState) -> Json:
    return {"entries": s.entries, "day": s.day, "day_entries": s.day_entries, "inside": s.inside,
            "last_entry": s.last_entry}


def inside(db: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Per list: (tickets inside now, tickets admitted), exact across every gate that reached the arbiter."""
    return {name: (n, a) for name, n, a in db.execute("SELECT list, inside, admitted FROM pass_areas ORDER BY list")}
