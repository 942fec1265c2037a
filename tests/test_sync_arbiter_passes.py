"""The arbiter's check-in list state (sync/arbiter/passes.py): one compare-and-set per transition, every case on
both stores (a real SQLite file, a real PostgreSQL database: tests/test_sync_arbiter_store.py's fixtures)."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from test_sync_arbiter_store import location

from gate.passes import PassState
from gate.rules import CheckinList
from sync.arbiter import passes
from sync.arbiter.store import ArbiterStore
from sync.arbiter.stores import open_store
from sync.wire import PassAnswer, Revocation, Transition

LISTS = {"stadium": CheckinList("stadium", "show7", reentry=True),
         "multi": CheckinList("multi", "show7", entries=3, reentry=False),
         "hall": CheckinList("hall", "show7", entries=0, capacity=5),
         "vip": CheckinList("vip", "show7", products=("vip",))}
_ids = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    with location(str(request.param), tmp_path) as found:
        yield found


def open_arbiter(where: str | Path) -> ArbiterStore:
    store = open_store(where)
    store.lists = dict(LISTS)
    return store


def move(ticket: str, lst: str, direction: str = "in", gate: str = "g1", at: float = 1.0, *, scan: str = "",
         admitted: bool = False, product: str = "") -> Transition:
    return Transition(scan or f"s{next(_ids)}", "show7", ticket, gate, at, lst, LISTS[lst].version, direction,
                      product, admitted)


def one(store: ArbiterStore, t: Transition) -> PassAnswer:
    (answer,), _ = store.transitions([t])
    return answer


def code(a: PassAnswer) -> str:
    return a.reason or a.outcome


def test_in_out_in_and_already_inside_across_gates(where: str | Path) -> None:
    store = open_arbiter(where)
    got = [one(store, move("t1", "stadium", "in", "north")), one(store, move("t1", "stadium", "in", "south")),
           one(store, move("t1", "stadium", "out", "exit-1")), one(store, move("t1", "stadium", "in", "south"))]
    assert [code(a) for a in got] == ["ADMIT", "already_inside", "exit", "ADMIT"]
    assert store.inside() == {"stadium": (1, 1)}
    items, _ = store.read_stream(0, 100)
    assert [(i["kind"], i["reason"], i["state"]["inside"]) for i in items] == [
        ("pass", "", True), ("pass", "exit", False), ("pass", "", True)]


def test_a_replayed_scan_id_gets_the_same_answer_and_changes_nothing(where: str | Path) -> None:
    store = open_arbiter(where)
    first = one(store, move("t2", "multi", scan="x1"))
    assert one(store, move("t2", "multi", scan="x1")) == first
    assert one(store, move("t2", "multi", gate="other", scan="x1")).reason == "refused"
    assert store.rows("SELECT entries FROM pass_states") == [{"entries": 1}]


def test_not_this_list_and_unknown_list(where: str | Path) -> None:
    store = open_arbiter(where)
    assert code(one(store, move("t3", "vip", product="general"))) == "not_this_list"
    assert code(one(store, move("t3", "vip", product="vip"))) == "ADMIT"
    unknown = Transition("s-u", "show7", "t3", "g1", 1.0, "nowhere", 1)
    assert code(one(store, unknown)) == "not_this_list"


def race(where: str | Path, moves: list[list[Transition]]) -> list[PassAnswer]:
    """Each gate's transitions on its own ArbiterStore connection to one file, all started together."""
    stores = [open_arbiter(where) for _ in moves]
    answers: list[PassAnswer] = []
    lock, start = threading.Lock(), threading.Barrier(len(moves))

    def run(store: ArbiterStore, mine: list[Transition]) -> None:
        start.wait()
        for t in mine:
            got = one(store, t)
            with lock:
                answers.append(got)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(stores, moves, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    return answers


def test_four_gates_racing_on_multi_entry_tickets_give_exactly_the_allowed_entries(where: str | Path) -> None:
    tickets = [f"m{i}" for i in range(6)]
    moves = [[move(t, "multi", gate=f"g{g}", at=float(r)) for r in range(4) for t in tickets] for g in range(4)]
    answers = race(where, moves)
    assert Counter(code(a) for a in answers) == {"ADMIT": 3 * len(tickets), "entries_exhausted": 13 * len(tickets)}


def test_capacity_admits_exactly_n_across_racing_gates_and_an_exit_frees_a_place(where: str | Path) -> None:
    moves = [[move(f"c{g}-{i}", "hall", gate=f"g{g}") for i in range(4)] for g in range(4)]
    answers = race(where, moves)
    assert Counter(code(a) for a in answers) == {"ADMIT": 5, "area_full": 11}
    store = open_arbiter(where)
    assert store.inside() == {"hall": (5, 5)}
    inside = store.rows("SELECT ticket_id FROM pass_states WHERE inside = 1 LIMIT 1")[0]["ticket_id"]
    assert code(one(store, move(str(inside), "hall", "out"))) == "exit"
    refused = next(a.scan for a in answers if a.reason == "area_full")
    late = store.rows("SELECT ticket_id FROM pass_scans WHERE scan_id = ?", (refused,))[0]["ticket_id"]
    assert code(one(store, move(str(late), "hall"))) == "ADMIT"
    assert store.inside() == {"hall": (5, 6)}


def test_a_partition_where_a_ticket_enters_on_both_sides_is_one_conflict_and_counts_match(where: str | Path) -> None:
    store = open_arbiter(where)
    # both sides let p1 in while cut off; p2 entered on one side only; p3 went in and out on side B
    side_a = [move("p1", "stadium", gate="a", at=10.0, admitted=True), move("p2", "stadium", gate="a", at=11.0,
                                                                            admitted=True)]
    side_b = [move("p1", "stadium", gate="b", at=12.0, admitted=True),
              move("p3", "stadium", gate="b", at=13.0, admitted=True),
              move("p3", "stadium", "out", gate="b-out", at=14.0, admitted=True)]
    answers, _ = store.transitions(side_a + side_b)
    conflicts = [a.scan for a in answers if a.conflict]
    assert conflicts == [side_b[0].scan]
    assert store.rows("SELECT reason FROM pass_scans WHERE conflict = 1") == [{"reason": "already_inside"}]
    # the inside count equals a recount from the scans: per ticket, inside after its last admitted move
    last: dict[str, str] = {}
    for t in sorted(side_a + side_b, key=lambda t: t.at):
        last[t.ticket] = t.direction
    assert store.inside()["stadium"][0] == sum(d == "in" for d in last.values()) == 2


def test_a_void_undoes_a_live_entry_the_gate_gave_up_on_and_answers_void_ever_after(where: str | Path) -> None:
    store = open_arbiter(where)
    assert code(one(store, move("v1", "hall", scan="x"))) == "ADMIT"
    assert store.inside() == {"hall": (1, 1)}
    undone = one(store, replace(move("v1", "hall", scan="x"), void=True))
    assert (undone.outcome, undone.reason, undone.state and undone.state["inside"]) == ("FAULT", "offline", False)
    assert store.inside() == {"hall": (0, 0)}
    assert store.rows("SELECT entries, inside FROM pass_states") == [{"entries": 0, "inside": 0}]
    assert code(one(store, move("v1", "hall", scan="x"))) == "offline", "a stale copy never applies"
    items, _ = store.read_stream(0, 100)
    assert [(i["reason"], i["state"]["inside"]) for i in items] == [("", True), ("offline", False)]


def test_a_void_before_its_transition_arrives_is_a_tombstone(where: str | Path) -> None:
    store = open_arbiter(where)
    assert code(one(store, replace(move("v2", "multi", scan="y"), void=True))) == "offline"
    assert code(one(store, move("v2", "multi", scan="y"))) == "offline"
    assert store.rows("SELECT count(*) AS n FROM pass_states") == [{"n": 0}]


def test_a_void_after_later_moves_gives_back_the_entry_and_leaves_the_ticket_where_it_is(where: str | Path) -> None:
    store = open_arbiter(where)
    one(store, move("v3", "multi", scan="phantom", at=1.0))
    assert code(one(store, move("v3", "multi", "out", at=2.0))) == "exit"
    one(store, replace(move("v3", "multi", scan="phantom", at=1.0), void=True))
    assert store.rows("SELECT entries, inside FROM pass_states") == [{"entries": 0, "inside": 0}]
    assert store.inside() == {"multi": (0, 0)}


def test_refused_live_then_let_in_offline_is_judged_again_as_a_late_entry(where: str | Path) -> None:
    store = open_arbiter(where)
    for i in range(5):
        one(store, move(f"full{i}", "hall"))
    assert code(one(store, move("late", "hall", scan="z"))) == "area_full"
    late = one(store, move("late", "hall", scan="z", admitted=True))
    assert (late.reason, late.conflict) == ("area_full", True)
    assert store.inside() == {"hall": (6, 6)}
    assert one(store, move("late", "hall", scan="z", admitted=True)) == late


def test_a_revoked_ticket_is_refused_entry_but_may_leave(where: str | Path) -> None:
    store = open_arbiter(where)
    assert code(one(store, move("r1", "stadium"))) == "ADMIT"
    store.apply([Revocation("show7", "r1", "admin")])
    assert code(one(store, move("r1", "stadium", "out"))) == "exit"
    assert code(one(store, move("r1", "stadium"))) == "revoked"
    offline = one(store, move("r1", "stadium", admitted=True))
    assert (offline.reason, offline.conflict) == ("revoked", True)


def test_late_moves_in_any_order_leave_the_ticket_where_the_last_move_put_it(where: str | Path) -> None:
    store = open_arbiter(where)
    # q1 went in at 10 and out at 20, q2 out at 20 and back in at 30 (re-entry): the exits arrive first
    one(store, move("q2", "stadium", at=5.0))
    for t in (move("q1", "stadium", "out", at=20.0, admitted=True), move("q2", "stadium", "out", at=20.0,
                                                                          admitted=True)):
        assert code(one(store, t)) == "exit"
    assert code(one(store, move("q1", "stadium", at=10.0, admitted=True))) == "ADMIT"
    assert code(one(store, move("q2", "stadium", at=30.0, admitted=True))) == "ADMIT"
    inside = {r["ticket_id"]: r["inside"] for r in store.rows("SELECT ticket_id, inside FROM pass_states")}
    assert inside == {"q1": 0, "q2": 1}
    assert store.inside()["stadium"][0] == 1
    # and a late exit older than the entry after it leaves the ticket inside
    assert code(one(store, move("q2", "stadium", "out", at=25.0, admitted=True))) == "exit"
    assert store.inside()["stadium"][0] == 1


def test_a_late_entry_reported_as_let_in_is_never_voided(where: str | Path) -> None:
    store = open_arbiter(where)
    late = one(store, move("f1", "stadium", scan="fact", admitted=True))
    assert one(store, replace(move("f1", "stadium", scan="fact"), void=True)).outcome == late.outcome == "ADMIT"
    assert store.inside() == {"stadium": (1, 1)}


def test_gate_conflicts_lists_double_entries_and_list_conflicts_in_one_list_on_the_arbiter_and_the_gate(
        where: str | Path, gate_cli: Callable[..., CompletedProcess[str]], home: Path) -> None:
    """`gate conflicts` showed double entries only; a list conflict ("entered at south while already inside
    since north") was in `gate lists conflicts` and on the dashboard alone, and not on qrgate/conflict/{event}."""
    from gate.ledger import Ledger
    from gate.store import Store
    from sync.wire import Claim, conflict_message

    store = open_arbiter(where)
    one(store, move("t1", "stadium", "in", "north", at=5.0, scan="in-1"))
    late = one(store, move("t1", "stadium", "in", "south", at=9.0, scan="late-1", admitted=True))
    store.apply([Claim("c1", "show7", "d1", "north", 3.0, 0), Claim("c2", "show7", "d1", "south", 4.0, 0, True)])
    items, _ = store.read_stream(0, 100)
    store.close()
    assert late.conflict
    (item,) = [i for i in items if i.get("conflict")]
    assert item["first"] == {"gate": "north", "at": 5.0, "scan": "in-1"} and item["detail"]
    messages = [m for m in map(conflict_message, items) if m is not None]  # what qrgate/conflict/show7 carries
    assert [(m["kind"], m["list"], m["reason"], m["first"]["gate"], m["late"]["gate"], m["late"]["scan"])
            for m in messages] == [("conflict", "stadium", "already_inside", "north", "south", "late-1"),
                                   ("conflict", None, "already_used", "north", "south", "c2")]
    assert set(messages[0]) == set(messages[1]) | {"detail"}  # one shape

    at_arbiter = gate_cli("conflicts", "--arbiter", "--store", str(where), "--json")
    assert at_arbiter.returncode == 1, at_arbiter.stderr
    rows = [json.loads(line) for line in at_arbiter.stdout.splitlines()]
    assert [(r["kind"], r["list"], r["ticket_id"], r["first_gate"], r["late_gate"], r["late_scan_id"], r["words"])
            for r in rows] == [
        ("list", "stadium", "t1", "north", "south", "late-1", "entered at south while already inside since north"),
        ("double", None, "d1", "north", "south", "c2", "entered at south although already used at north")]
    text = gate_cli("conflicts", "--arbiter", "--store", str(where)).stdout.splitlines()
    assert text[0].startswith("show7/t1 open (list stadium): entered at south while already inside since north (")
    assert text[1].startswith("show7/d1 open (single use): entered at south although already used at north; first")
    only = gate_cli("lists", "conflicts", "--store", str(where), "--json")
    assert only.returncode == 1 and [json.loads(line)["late_scan_id"] for line in only.stdout.splitlines()] == [
        "late-1"]

    with Store.open(home / "gate.db") as gate_store:  # a gate: both kinds reach it on the stream
        Ledger(gate_store).apply_stream("e1", items)
    at_gate = gate_cli("conflicts", "--json")
    assert at_gate.returncode == 1, at_gate.stderr
    assert sorted((r["kind"], r["list"], r["late_scan_id"], r["first_gate"], r["words"])
                  for r in map(json.loads, at_gate.stdout.splitlines())) == [
        ("double", None, "c2", "north", "entered at south although already used at north"),
        ("list", "stadium", "late-1", "north", "entered at south while already inside since north")]


def test_a_conflict_names_its_earlier_entry_also_when_the_ticket_last_went_out(where: str | Path) -> None:
    """The usual conflict (in while already inside) finds its earlier entry by key, from the scan that last
    moved the ticket; one of a ticket whose last move was an exit (entries spent) finds it among its moves.
    Both are kept with the conflict, for `gate conflicts --arbiter` (passes.CONFLICTS reads no search)."""
    store = open_arbiter(where)
    for t in (move("a", "stadium", "in", "north", at=1.0, scan="a-in"),
              move("b", "multi", "in", "north", at=1.0), move("b", "multi", "out", "x", at=2.0),
              move("b", "multi", "in", "north", at=3.0), move("b", "multi", "out", "x", at=4.0),
              move("b", "multi", "in", "west", at=5.0, scan="b-in-3"), move("b", "multi", "out", "x", at=6.0)):
        assert code(one(store, t)) in ("ADMIT", "exit")
    inside = one(store, move("a", "stadium", "in", "south", at=7.0, scan="a-late", admitted=True))
    spent = one(store, move("b", "multi", "in", "south", at=8.0, scan="b-late", admitted=True))
    assert (inside.conflict, code(inside), spent.conflict, code(spent)) == (True, "already_inside", True,
                                                                           "entries_exhausted")
    items, _ = store.read_stream(0, 100)
    assert {i["scan"]: i["first"] for i in items if i.get("conflict")} == {
        "a-late": {"gate": "north", "at": 1.0, "scan": "a-in"}, "b-late": {"gate": "west", "at": 5.0, "scan": "b-in-3"}}
    rows = store.rows(passes.CONFLICTS)
    store.close()
    assert [(r["late_scan_id"], r["first_scan_id"], r["first_gate"], r["first_at"]) for r in rows] == [
        ("a-late", "a-in", "north", 1.0), ("b-late", "b-in-3", "west", 5.0)]


def test_the_undo_keeps_the_state_before_and_reads_the_json_of_older_rows() -> None:
    before = PassState(entries=2, day="2026-07-01", day_entries=1, inside=False, last_entry=1782900000.25)
    after = PassState(entries=3, day="2026-07-02", day_entries=1, inside=True, last_entry=1782990000.5)
    assert passes.undo_of(passes.undo_text(before, after)) == (before, 1, "2026-07-02")
    assert passes.undo_of(passes.undo_text(PassState(), PassState(inside=True))) == (PassState(), 0, "")
    older = json.dumps({"before": passes.state_json(before), "after": passes.state_json(after)})  # migrations 5-6
    assert passes.undo_of(older) == (before, 1, "2026-07-02")


def test_a_void_undoes_an_entry_whose_undo_an_older_arbiter_wrote_as_json(tmp_path: Path) -> None:
    store = open_arbiter(tmp_path / "arbiter.db")
    assert code(one(store, move("v9", "multi", scan="old", at=5.0))) == "ADMIT"
    with store.database.transaction() as db:
        db.execute("UPDATE pass_scans SET undo = ? WHERE scan_id = 'old'", (json.dumps(
            {"before": passes.state_json(PassState()), "after": passes.state_json(PassState(1, "", 1, True, 5.0))}),))
    assert code(one(store, replace(move("v9", "multi", scan="old", at=5.0), void=True))) == "offline"
    assert store.rows("SELECT entries, inside FROM pass_states") == [{"entries": 0, "inside": 0}]
    assert store.inside() == {"multi": (0, 0)}


def test_an_entry_writes_no_index_and_the_last_exit_is_read_from_the_exits_index(tmp_path: Path) -> None:
    store = open_arbiter(tmp_path / "arbiter.db")
    one(store, move("v8", "stadium", at=1.0))
    one(store, move("v8", "stadium", "out", at=2.0))
    late = one(store, move("v8", "stadium", at=1.5, admitted=True))  # older than the exit: stays outside
    assert (code(late), late.state and late.state["inside"]) == ("ADMIT", False)
    db = store.conn
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pass_scans'"
                                     " AND sql IS NOT NULL")] == ["pass_scans_exits"]
    assert db.execute("SELECT count(*) FROM pass_scans INDEXED BY pass_scans_exits WHERE direction = 'out'"
                      " AND outcome = 'ADMIT'").fetchone() == (1,)
    plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + passes.LAST_EXIT, ("show7", "v8", "stadium")))
    assert "USING INDEX pass_scans_exits" in plan or "USING COVERING INDEX pass_scans_exits" in plan
    store.close()


def test_an_arbiter_file_with_the_old_ticket_index_drops_it(tmp_path: Path) -> None:
    path = tmp_path / "arbiter.db"
    open_arbiter(path).close()
    with sqlite3.connect(path) as db:  # as migrations 5-6 left it
        db.execute("DROP INDEX pass_scans_exits")
        db.execute("CREATE INDEX pass_scans_ticket ON pass_scans (event, ticket_id, list, direction)")
        db.execute("DELETE FROM schema_migrations WHERE version = 7")
    db.close()
    store = open_arbiter(path)
    names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "pass_scans_exits" in names and "pass_scans_ticket" not in names
    store.close()
