"""A gate deciding by a check-in list, offline (gate/checkin.py): real SQLite, the real CLI."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from zoneinfo import ZoneInfo

import pytest
from conftest import mint

from gate.checkin import CheckinGate, GateDirection
from gate.decide import Decider
from gate.keys import IssuerKey, Keyring
from gate.outcomes import Outcome, Reason
from gate.product import with_product
from gate.rules import CheckinList
from gate.store import Store
from gate.ticket import Ticket
from gate.verify import Verifier

BERLIN = ZoneInfo("Europe/Berlin")
Cli = Callable[..., CompletedProcess[str]]


def at(day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 7, day, hour, minute, tzinfo=BERLIN).timestamp()


def decider(key: IssuerKey, store: Store, lst: CheckinList | None, direction: GateDirection = "in",
            gate_id: str = "gate-1") -> Decider:
    checkin = CheckinGate(lst, direction) if lst is not None else None
    return Decider(Verifier(Keyring([key.verify_key()])), store, gate_id, checkin=checkin)


def ticket(key: IssuerKey, ticket_id: str, product: str = "") -> str:
    return key.sign(with_product(Ticket(key.event, ticket_id), product))


def codes(decisions: list) -> list[str]:  # type: ignore[type-arg]
    return [d.reason.value or d.outcome.value for d in decisions]


def test_three_day_pass_across_the_venue_midnight(issuer: IssuerKey, store: Store) -> None:
    lst = CheckinList("pass3", "show7", per_day=True, timezone="Europe/Berlin", products=("day-pass",))
    gate, text = decider(issuer, store, lst), ticket(issuer, "d1", "day-pass")
    times = [at(1, 10), at(1, 23, 59), at(2, 0, 1), at(2, 12), at(3, 20)]
    assert codes([gate.decide(text, now=t) for t in times]) == [
        "ADMIT", "entries_exhausted", "ADMIT", "entries_exhausted", "ADMIT"]
    refused = gate.decide(text, now=at(3, 21))
    assert refused.outcome is Outcome.ALREADY_USED and "next entry allowed from 2026-07-04 00:00" in refused.detail


def test_in_out_in_through_an_in_gate_and_an_out_gate_on_one_file(issuer: IssuerKey, tmp_path: Path) -> None:
    lst = CheckinList("stadium", "show7", reentry=True)
    with Store.open(tmp_path / "g.db") as a, Store.open(tmp_path / "g.db") as b:
        entry, exit_ = decider(issuer, a, lst, "in", "north-in"), decider(issuer, b, lst, "out", "north-out")
        text = ticket(issuer, "s1")
        got = [entry.decide(text, now=1.0), entry.decide(text, now=2.0), exit_.decide(text, now=3.0),
               entry.decide(text, now=4.0)]
        assert codes(got) == ["ADMIT", "already_inside", "exit", "ADMIT"]
        assert got[2].outcome is Outcome.ADMIT and got[2].reason is Reason.EXIT
        assert a.inside() == {"stadium": (1, 1)}
        exit_.decide(text, now=5.0)
        assert a.inside() == {"stadium": (0, 1)}


def test_vip_gate_refuses_a_general_ticket_the_general_gate_admits_it(issuer: IssuerKey, tmp_path: Path) -> None:
    with Store.open(tmp_path / "vip.db") as v, Store.open(tmp_path / "main.db") as m:
        vip = decider(issuer, v, CheckinList("vip", "show7", products=("vip",)))
        main = decider(issuer, m, CheckinList("main", "show7"))
        general = ticket(issuer, "g1", "general")
        refused = vip.decide(general)
        assert (refused.outcome, refused.reason) == (Outcome.INVALID, Reason.NOT_THIS_LIST)
        assert "admits vip, not general" in refused.detail
        assert main.decide(general).admitted
        assert vip.decide(ticket(issuer, "v1", "vip")).admitted


def test_no_list_is_todays_single_use(issuer: IssuerKey, store: Store) -> None:
    gate = decider(issuer, store, None)
    text = ticket(issuer, "p1", "vip")  # a product is carried and ignored without a list
    assert codes([gate.decide(text), gate.decide(text)]) == ["ADMIT", "already_used"]
    assert store.is_redeemed("show7", "p1") and store.inside() == {}


def test_gate_lists_inside_reads_the_arbiters_exact_counts(gate_cli: Cli, home: Path) -> None:
    from sync.arbiter.store import ArbiterStore
    from sync.wire import Transition

    arbiter = ArbiterStore.open(home / "arbiter.db")
    arbiter.lists = {"hall": CheckinList("hall", "show7", entries=0)}
    arbiter.transitions([Transition(f"s{i}", "show7", f"t{i % 3}", f"g{i}", float(i), "hall", 1) for i in range(5)])
    arbiter.close()
    shown = gate_cli("lists", "inside", "--arbiter")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "hall: 3 inside, 5 entries admitted"


def test_a_replayed_scan_id_changes_nothing_and_the_list_version_is_journalled(issuer: IssuerKey, store: Store) -> None:
    gate = decider(issuer, store, CheckinList("gym", "show7", version=4, entries=2))
    text = ticket(issuer, "r1")
    assert [gate.decide(text, scan_id="s-1").outcome for _ in range(3)] == [Outcome.ADMIT] * 3
    assert gate.decide(text, scan_id="s-2").admitted
    refused = gate.decide(text, scan_id="s-3")
    assert refused.reason is Reason.ENTRIES_EXHAUSTED
    again = gate.decide(text, scan_id="s-3")  # a replay of a refusal: the same words, nothing written
    assert (again.outcome, again.reason, again.detail) == (refused.outcome, refused.reason, refused.detail)
    # one audit row per decided scan, naming the list, its version and the direction (the journal is the audit)
    rows = store.database.rows("SELECT scan_id, list, list_version, direction, outcome, reason FROM audit ORDER BY seq")
    assert [(r["scan_id"], r["list"], r["list_version"], r["direction"], r["reason"]) for r in rows] == [
        ("s-1", "gym", 4, "in", ""), ("s-2", "gym", 4, "in", ""), ("s-3", "gym", 4, "in", "entries_exhausted")]
    assert [r["scan_id"] for r in store.database.rows("SELECT scan_id FROM list_scans ORDER BY seq")] == [
        "s-1", "s-2", "s-3"]  # the journal's old name, a view of those rows
    assert [h["detail"] for h in store.history("r1")] == ["list gym@4", "list gym@4",
                                                         "list gym@4: all 2 entries used"]


def test_a_journal_of_before_migration_10_still_answers_its_replays(issuer: IssuerKey, tmp_path: Path) -> None:
    """A gate's file whose list decisions were journalled in the old `list_scans` table: migration 10 moves the
    journal onto their audit rows, and a replayed scan id answers as it did (no entry spent twice)."""
    from gate.migrations import MIGRATIONS
    from gate.sqlite import Database

    path = tmp_path / "old.db"
    with Database.open(path, MIGRATIONS[:9], error=RuntimeError) as old, old.transaction() as db:  # the old schema
        for seq, (scan_id, outcome, reason, words) in enumerate((
                ("s-1", "ADMIT", "", "list gym@4"), ("s-2", "ALREADY_USED", "entries_exhausted",
                                                    "list gym@4: all 1 entries used")), start=1):
            db.execute("INSERT INTO audit VALUES (?, ?, 'gate-1', ?, 'show7', 'r1', ?, ?, ?)",
                       (seq, 100.0 + seq, scan_id, outcome, reason, words))
            db.execute("INSERT INTO list_scans VALUES (?, ?, 'gate-1', 'show7', 'r1', 'gym', 4, 'in', ?, ?, ?)",
                       (scan_id, 100.0 + seq, outcome, reason, words.partition(": ")[2]))
        db.execute("INSERT INTO passes VALUES ('show7', 'r1', 'gym', 1, '', 0, 1, 101.0, 's-1')")
        db.execute("INSERT INTO audit VALUES (3, 103.0, 'gate-1', 's-9', 'show7', 'x9', 'ADMIT', '', '')")
    with Store.open(path) as store:
        assert store.version == 10
        rows = store.database.rows("SELECT scan_id, list, list_version, direction FROM audit ORDER BY seq")
        assert [tuple(r.values()) for r in rows] == [("s-1", "gym", 4, "in"), ("s-2", "gym", 4, "in"),
                                                     ("s-9", None, None, None)]
        gate = decider(issuer, store, CheckinList("gym", "show7", version=4, entries=1))
        text = ticket(issuer, "r1")
        first = gate.decide(text, scan_id="s-1")
        assert first.outcome is Outcome.ADMIT and store.counts() == {"ADMIT": 2, "ALREADY_USED": 1}
        second = gate.decide(text, scan_id="s-2")
        assert (second.reason, second.detail) == (Reason.ENTRIES_EXHAUSTED, "all 1 entries used")
        assert store.counts() == {"ADMIT": 2, "ALREADY_USED": 1}  # replays: nothing written
        with pytest.raises(Exception, match="append-only"):  # the trigger is back after the copy
            store.conn.execute("UPDATE audit SET detail = 'x' WHERE seq = 1")


def test_revoked_and_other_events_are_refused_by_a_list_gate(issuer: IssuerKey, store: Store) -> None:
    gate = decider(issuer, store, CheckinList("main", "show7", entries=0))
    store.revoke("show7", "x1", at=1.0, by="test")
    assert gate.decide(ticket(issuer, "x1")).outcome is Outcome.REVOKED
    other = IssuerKey.new("show8", "hmac")
    foreign = Decider(Verifier(Keyring([issuer.verify_key(), other.verify_key()])), store, "g",
                      checkin=CheckinGate(CheckinList("main", "show7")))
    assert foreign.decide(mint(other, "y1")).reason is Reason.NOT_THIS_LIST


def test_four_gates_racing_on_one_file_spend_exactly_the_allowed_entries(issuer: IssuerKey, tmp_path: Path) -> None:
    lst = CheckinList("multi", "show7", entries=3)
    texts = [ticket(issuer, f"m{i}") for i in range(5)]
    stores = [Store.open(tmp_path / "race.db") for _ in range(4)]
    results: list[Outcome] = []
    lock, start = threading.Lock(), threading.Barrier(4)

    def run(store: Store, n: int) -> None:
        gate = decider(issuer, store, lst, gate_id=f"g{n}")
        start.wait()
        for _ in range(3):
            for text in texts:
                outcome = gate.decide(text).outcome
                with lock:
                    results.append(outcome)

    threads = [threading.Thread(target=run, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(Outcome.ADMIT) == 3 * len(texts)
    assert results.count(Outcome.ALREADY_USED) == 4 * 3 * len(texts) - 3 * len(texts)
    for s in stores:
        s.close()


# the real CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def signed_lists(gate_cli: Cli, issuer: IssuerKey, home: Path, tmp_path: Path) -> Path:
    src = tmp_path / "lists.toml"
    src.write_text('[[list]]\nname = "stadium"\nevent = "show7"\nreentry = true\nversion = 7\n')
    assert gate_cli("lists", "sign", str(src), "--out", str(home / "lists")).returncode == 0
    return home / "lists" / "stadium.list.json"


def test_gate_check_by_a_list_in_both_directions(gate_cli: Cli, signed_lists: Path, issuer: IssuerKey) -> None:
    text = ticket(issuer, "c1")
    both = ("--set", "gate.list=lists/stadium.list.json", "--set", "gate.direction=both")
    first = gate_cli("check", "--json", *both, text)
    assert first.returncode == 0, first.stderr
    again = gate_cli("check", *both, text)
    assert again.returncode == 1 and again.stdout.startswith("ALREADY_USED already_inside show7/c1")
    out = gate_cli("check", "--json", "--direction", "out", *both, text)
    assert json.loads(out.stdout)["reason"] == "exit"
    assert gate_cli("check", *both, text).returncode == 0
    inside = gate_cli("lists", "inside", "--json")
    assert json.loads(inside.stdout) == {"list": "stadium", "inside": 1, "entries": 1}
    history = gate_cli("history", "c1", "--json").stdout.splitlines()
    assert next(json.loads(h)["detail"] for h in history).startswith("list stadium@7")


def test_a_bad_or_foreign_list_refuses_to_start(gate_cli: Cli, signed_lists: Path, issuer: IssuerKey) -> None:
    doc = json.loads(signed_lists.read_text())
    doc["list"]["reentry"] = False
    signed_lists.write_text(json.dumps(doc))
    bad = gate_cli("check", "--set", "gate.list=lists/stadium.list.json", ticket(issuer, "c2"))
    assert bad.returncode == 2 and "bad signature" in bad.stderr and "Traceback" not in bad.stderr
    missing = gate_cli("check", "--set", "gate.list=lists/nope.list.json", ticket(issuer, "c2"))
    assert missing.returncode == 2 and "nope.list.json" in missing.stderr
