"""Inside counts per check-in list on the dashboard, from the arbiter's `pass` stream items (docs/dashboard.md).

A real arbiter store (SQLite on tmp_path, sync/arbiter/passes.py) judges a few hundred random moves: live
entries and exits, late entries let through offline (conflicts), voids; its stream is then fed to the
dashboard's model and history replayed, shuffled and in pages out of order, and every count must equal the
arbiter's own (`ArbiterStore.inside`) and a recount from the items.
"""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from gate.decide import Decision
from gate.outcomes import Outcome, Reason
from gate.rules import CheckinList, sign
from gate.sqlite import Database
from sync.arbiter.store import ArbiterStore
from sync.dashboard.history import MIGRATIONS, History, HistoryError
from sync.dashboard.model import Model
from sync.dashboard.words import REASONS
from sync.wire import Json, Transition, check_item, parse_scan, scan_payload

LISTS = {"stadium": CheckinList("stadium", "show7", reentry=True),
         "multi": CheckinList("multi", "show7", entries=3),
         "hall": CheckinList("hall", "show7", entries=0, capacity=4)}
NOW = 1_800_000_000.0
_ids = itertools.count()


def move(ticket: str, name: str, direction: str = "in", gate: str = "g1", at: float = NOW, *,
         admitted: bool = False, void: bool = False, scan: str = "") -> Transition:
    return Transition(scan or f"s{next(_ids)}", "show7", ticket, gate, at, name, 1, direction, "", admitted,
                      gen=0, void=void)


@pytest.fixture
def arbiter(tmp_path: Path) -> ArbiterStore:
    store = ArbiterStore.open(tmp_path / "arbiter.db")
    store.lists = dict(LISTS)
    return store


def busy_day(store: ArbiterStore, seed: int = 7, n: int = 400) -> list[Json]:
    """`n` random moves on 12 tickets and 3 lists; the stream items they made, in order."""
    rnd = random.Random(seed)
    tickets = [f"t{i}" for i in range(12)]
    moves: list[Transition] = []
    for k in range(n):
        at = NOW + k + rnd.random()
        ticket, name = rnd.choice(tickets), rnd.choice(list(LISTS))
        roll = rnd.random()
        live = [t for t in moves if not t.admitted and not t.void]
        if roll < 0.15 and live:  # a gate that gave up waiting: the scan let nobody through, undone
            moves.append(replace(rnd.choice(live), void=True))
        elif roll < 0.35:  # let in offline: a fact, a conflict if the arbiter would have refused it
            moves.append(move(ticket, name, gate=rnd.choice(["b-in", "c-in"]), at=at - rnd.uniform(0, 60),
                              admitted=True))
        else:
            moves.append(move(ticket, name, rnd.choice(["in", "out"]), rnd.choice(["a-in", "a-out"]), at))
    for t in moves:
        store.transitions([t])
    items, _ = store.read_stream(0, 10_000)
    assert all(i["kind"] == "pass" for i in items) and len(items) > 100
    assert any(i["conflict"] for i in items) and any(i["outcome"] == "FAULT" for i in items)  # conflicts, undos
    return [check_item(i) for i in items]


def recount(items: list[Json]) -> dict[str, tuple[int, int]]:
    """Per list: (inside, entries) from each ticket's item of the highest seq."""
    last: dict[tuple[str, str], Json] = {}
    for i in sorted(items, key=lambda i: i["seq"]):
        last[(i["ticket"], i["list"])] = i
    out: dict[str, tuple[int, int]] = {}
    for (_ticket, name), i in last.items():
        inside, entries = out.get(name, (0, 0))
        out[name] = (inside + int(i["state"]["inside"]), entries + i["state"]["entries"])
    return dict(sorted(out.items()))


def shown(model: Model) -> dict[str, tuple[int, int]]:
    return {a["list"]: (a["inside"], a["admitted"]) for a in model.snapshot(NOW)["areas"]}


def catch_up(history: History, epoch: str, pages: list[list[Json]], items: list[Json]) -> list[Json]:
    """Deliver `pages` in the order given (live batches racing a catch-up); on a gap ask for the rest from the
    position, as the service does.  Every item the history kept, in the order it kept them."""
    kept_all: list[Json] = []
    for page in pages:
        kept, gap = history.apply_stream(epoch, page)
        kept_all += kept
        if gap:
            _, seq = history.position()
            kept, gap = history.apply_stream(epoch, [i for i in items if i["seq"] > seq])
            kept_all += kept
            assert not gap
    return kept_all


def test_the_counts_equal_the_arbiters_whatever_the_order_and_the_replays(arbiter: ArbiterStore) -> None:
    items = busy_day(arbiter)
    expected = arbiter.inside()
    assert expected == recount(items) and any(inside for inside, _ in expected.values())
    model = Model()
    for i in items:
        model.stream_item(i)
    assert shown(model) == expected
    for seed in (1, 2, 3):  # replayed, shuffled: the latest state of each ticket wins
        again = Model()
        mixed = items * 2
        random.Random(seed).shuffle(mixed)
        for i in mixed:
            again.stream_item(i)
        assert shown(again) == expected
        assert {a["list"]: a["conflicts"] for a in again.snapshot(NOW)["areas"]} == {
            a["list"]: a["conflicts"] for a in model.snapshot(NOW)["areas"]}


def test_the_history_keeps_the_counts_across_out_of_order_pages_and_a_restart(arbiter: ArbiterStore,
                                                                              tmp_path: Path) -> None:
    items = busy_day(arbiter, seed=11)
    expected = arbiter.inside()
    history = History.open(tmp_path / "dashboard.db")
    pages = [items[k:k + 37] for k in range(0, len(items), 37)]
    order = pages[3:5] + pages[:2] + pages + pages[1:4]  # ahead of the position, then replays
    kept = catch_up(history, "e1", order, items)
    assert [i["seq"] for i in kept] == [i["seq"] for i in items]  # each item kept once, in order
    assert history.areas() == expected
    history.close()

    again = History.open(tmp_path / "dashboard.db")  # a restarted dashboard: from its file alone
    model = Model()
    model.restore_passes(again.pass_states())
    assert shown(model) == expected
    restarted = Model()
    for i in again.stream_items():  # as the service loads: the stream, then the kept states
        restarted.stream_item(i)
    restarted.restore_passes(again.pass_states())
    assert shown(restarted) == expected
    for i in items[-50:]:  # the live stream repeating what it had: nothing moves
        restarted.stream_item(i)
    assert shown(restarted) == expected

    again.reset_stream("e2")  # another arbiter database: its states come on its own stream
    assert again.areas() == {}
    again.close()


def pass_item(seq: int, ticket: str, gate: str, direction: str = "in", *, inside: bool, entries: int,
              outcome: str = "ADMIT", reason: str = "", conflict: bool = False, at: float = NOW,
              name: str = "stadium") -> Json:
    return {"seq": seq, "kind": "pass", "event": "show7", "ticket": ticket, "list": name, "scan": f"x{seq}",
            "gate": gate, "at": at + seq, "direction": direction, "outcome": outcome, "reason": reason,
            "conflict": conflict, "arbiter_at": at + 100 + seq,
            "state": {"entries": entries, "day": "", "day_entries": entries, "inside": inside, "last_entry": at}}


def test_a_list_conflict_is_listed_like_a_double_entry_with_its_reason_in_words(tmp_path: Path) -> None:
    items = [pass_item(1, "p1", "a-in", inside=True, entries=1),
             pass_item(2, "p1", "b-in", inside=True, entries=2, outcome="ALREADY_USED", reason="already_inside",
                       conflict=True),
             pass_item(3, "p2", "b-in", inside=True, entries=1, outcome="ALREADY_USED", reason="area_full",
                       conflict=True)]
    model = Model()
    for i in items:
        model.stream_item(i)
    snap = model.snapshot(NOW)
    by_ticket = {c["ticket"]: c for c in snap["conflicts"]}
    p1 = by_ticket["p1"]
    assert (p1["kind"], p1["state"], p1["list"], p1["reason"]) == ("list", "open", "stadium", "already_inside")
    assert p1["summary"] == "entered at b-in while already inside since a-in (the gate was offline)"
    assert p1["first"] == {"gate": "a-in", "at": NOW + 1} and p1["late"]["gate"] == "b-in"
    assert by_ticket["p2"]["summary"] == "entered at b-in while the area was full (the gate was offline)"
    assert snap["capacity"]["double"] == 0  # not a double entry of a single-use ticket
    assert snap["areas"] == [{"list": "stadium", "inside": 2, "admitted": 3, "tickets": 2, "conflicts": 2,
                             "capacity": None, "full": False}]

    history = History.open(tmp_path / "d.db")
    history.apply_stream("e1", items)
    [row] = [r for r in history.ticket("p1") if r["seq"] == 2]
    assert row["conflict"] and row["summary"].startswith("LIST CONFLICT: list stadium: entry at b-in: "
                                                         "ALREADY_USED already inside")


def test_list_refusals_read_in_words_in_the_live_scans() -> None:
    assert {r.value for r in Reason if r.value} <= set(REASONS)  # every code, the lists' included
    model = Model()
    decision = Decision(Outcome.ALREADY_USED, Reason.ALREADY_INSIDE, "s1", "south", NOW, "show7", "t1", "",
                        detail="list stadium@1: already inside since 2026-11-21 10:02")
    row = model.scan(parse_scan(scan_payload(decision, NOW), "south"), NOW)
    assert (row["reason"], row["words"]) == ("already_inside", "already inside")
    assert "already inside since" in row["detail"]  # the gate's own sentence rides along
    words = model.snapshot(NOW)["reason_words"]
    assert [words[c] for c in ("not_this_list", "outside_time_window", "entries_exhausted", "too_soon",
                               "area_full")] == ["not on this list", "list closed now", "no entries left",
                                                 "too soon again", "area full"]


def test_a_history_of_before_the_areas_starts_with_the_states_its_stream_kept(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    items = [pass_item(1, "p1", "a-in", inside=True, entries=1), pass_item(2, "p2", "a-in", inside=True, entries=1),
             pass_item(3, "p1", "a-out", "out", inside=False, entries=1, reason="exit")]
    old = Database.open(path, MIGRATIONS[:1], error=HistoryError)  # as the dashboard before migration 2 kept it
    with old.transaction() as db:
        db.executemany("INSERT INTO stream VALUES ('e1', ?, 'pass', 'show7', ?, ?)",
                       [(i["seq"], i["ticket"], json.dumps(i)) for i in items])
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("epoch", "e1"), ("seq", "3")])
    old.close()
    history = History.open(path)
    assert history.areas() == {"stadium": (1, 2)}
    assert sorted(k[1] for k, held in history.pass_states() if held.inside) == ["p2"]
    with sqlite3.connect(path) as db:
        assert [v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY version")] == [1, 2]



def test_a_pass_item_with_only_the_fields_the_wire_checks_is_counted_not_fatal(tmp_path: Path) -> None:
    """check_item checks seq, list, scan and state; the rest may be missing or odd: counted, never a crash."""
    bare = check_item({"seq": 1, "kind": "pass", "event": "show7", "ticket": "q", "list": "hall", "scan": "z1",
                       "conflict": True, "at": "soon",
                       "state": {"entries": 1, "day": "", "day_entries": 1, "inside": True, "last_entry": 0.0}})
    model = Model()
    model.stream_item(bare)
    snap = model.snapshot(NOW)
    assert snap["areas"] == [{"list": "hall", "inside": 1, "admitted": 1, "tickets": 1, "conflicts": 1,
                             "capacity": None, "full": False}]
    assert snap["conflicts"][0]["late"] == {"gate": "", "at": 0.0, "scan": "z1"}
    history = History.open(tmp_path / "d.db")
    history.apply_stream("e1", [bare])
    assert history.areas() == {"hall": (1, 1)} and history.ticket("q")[0]["summary"].startswith("LIST CONFLICT")


def list_item(seq: int, lst: CheckinList) -> Json:
    """A `list` item as the arbiter streams it (the signed document; the dashboard does not verify it)."""
    from gate.keys import IssuerKey

    key = IssuerKey.new("show7", "hmac")
    return check_item({"seq": seq, "kind": "list", "event": lst.event, "name": lst.name, "version": lst.version,
                       "doc": sign(lst, key)})


def test_an_area_shows_its_lists_capacity_and_full_from_the_lists_on_the_stream(tmp_path: Path) -> None:
    """The dashboard showed the tickets inside but not the list's capacity (and a list item on the stream
    stopped its history: it names no ticket)."""
    hall = CheckinList("hall", "show7", entries=0, capacity=2)
    items = [list_item(1, hall), list_item(2, CheckinList("stadium", "show7")),
             pass_item(3, "p1", "a-in", inside=True, entries=1, name="hall")]
    model = Model()
    for i in items:
        model.stream_item(i)

    def areas(m: Model) -> list[tuple[str, int, int | None, bool]]:
        return [(a["list"], a["inside"], a["capacity"], a["full"]) for a in m.snapshot(NOW)["areas"]]
    assert areas(model) == [("hall", 1, 2, False), ("stadium", 0, None, False)]
    model.stream_item(pass_item(4, "p2", "a-in", inside=True, entries=1, name="hall"))
    assert areas(model) == [("hall", 2, 2, True), ("stadium", 0, None, False)]  # inside >= capacity: full
    model.stream_item(list_item(5, replace(hall, version=3, capacity=5)))
    model.stream_item(list_item(6, replace(hall, version=2, capacity=1)))  # an older version: not the arbiter's
    assert areas(model)[0] == ("hall", 2, 5, False)

    history = History.open(tmp_path / "d.db")  # a restarted dashboard: from its history alone
    kept, gap = history.apply_stream("e1", [*items, pass_item(4, "p2", "a-in", inside=True, entries=1, name="hall")])
    assert len(kept) == 4 and not gap
    again = Model()
    for i in history.stream_items():
        again.stream_item(i)
    assert areas(again) == [("hall", 2, 2, True), ("stadium", 0, None, False)]


def test_a_list_conflict_names_the_earlier_entry_the_arbiter_named_even_one_the_dashboard_never_saw() -> None:
    item = pass_item(9, "p7", "b-in", inside=True, entries=2, outcome="ALREADY_USED", reason="already_inside",
                     conflict=True)
    model = Model()  # its history starts after p7's first entry: only the arbiter knows where that was
    model.stream_item({**item, "first": {"gate": "a-in", "at": NOW, "scan": "x1"}, "detail": "already inside"})
    [row] = model.snapshot(NOW)["conflicts"]
    assert row["summary"] == "entered at b-in while already inside since a-in (the gate was offline)"
    assert row["first"] == {"gate": "a-in", "at": NOW}
