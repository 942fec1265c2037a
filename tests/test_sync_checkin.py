"""Check-in lists over the wire: gate processes serving a list, one arbiter, a real broker (docs/checkin-lists.md).

Each gate sends its transitions to the arbiter, which judges them with one compare-and-set per (ticket, list)
(sync/arbiter/passes.py): the tests count ADMITs across gates, read the arbiter's file and its inside counts.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import GateProc, Site, TcpProxy, Watcher, feed_all, rows, wait_until  # noqa: E402

from gate.rules import CheckinList, sign  # noqa: E402

#: a person is waiting, but four gates, an arbiter and a broker share two cores here: no claim may time out
PATIENT = {"QRGATE_SYNC_CLAIM_BUDGET": "3"}


def serve(site: Site, *lists: CheckinList) -> dict[str, Path]:
    """Sign `lists` with the site's issuer key into the arbiter's lists folder; each list's file by name."""
    folder = site.arbiter_home / "lists"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for lst in lists:
        paths[lst.name] = folder / f"{lst.name}.list.json"
        paths[lst.name].write_text(json.dumps(sign(lst, site.key)))
    return paths


def list_gate(site: Site, gate_id: str, path: Path, direction: str = "in", **extra: str) -> GateProc:
    return site.start_gate(gate_id, QRGATE_GATE_LIST=str(path), QRGATE_GATE_DIRECTION=direction, **extra)


def code(d: dict[str, Any]) -> str:
    return str(d["reason"] or d["outcome"])


def arbiter_inside(site: Site) -> dict[str, Any]:
    shown = site.gate_cli("arbiter", "lists", "inside", "--arbiter", "--json")
    assert shown.returncode == 0, shown.stderr
    return {d["list"]: d for d in map(json.loads, shown.stdout.splitlines())}


def test_in_out_in_through_separate_gates_and_already_inside_at_the_other_gate(site: Site) -> None:
    paths = serve(site, CheckinList("stadium", "show7", reentry=True))
    site.start_arbiter()
    watcher = Watcher(site.broker)
    north, south, out = (list_gate(site, "north", paths["stadium"]), list_gate(site, "south", paths["stadium"]),
                         list_gate(site, "exit-1", paths["stadium"], "out"))
    watcher.wait_online("north", "south", "exit-1")
    [ticket] = site.mint(1)
    got = [north.check(ticket), south.check(ticket), out.check(ticket), south.check(ticket), north.check(ticket)]
    assert [code(d) for d in got] == ["ADMIT", "already_inside", "exit", "ADMIT", "already_inside"]
    assert not any(d["provisional"] for d in got), "every answer came from the arbiter"
    assert "already inside since" in got[1]["detail"]
    assert arbiter_inside(site)["stadium"] == {"list": "stadium", "inside": 1, "entries": 1}
    # the stream carried each move to every gate: the exit gate, which never saw an entry, knows it is inside
    wait_until(lambda: rows(site.gate_db("exit-1"), "SELECT inside, entries FROM passes") == [(1, 1)], 10,
               "the pass state on the stream")
    for gate in (north, south, out):
        assert gate.finish() in (0, 1), gate.stderr
    assert rows(site.arbiter_db(), "SELECT gate_id, direction, outcome, reason FROM pass_scans ORDER BY at") == [
        ("north", "in", "ADMIT", ""), ("south", "in", "ALREADY_USED", "already_inside"),
        ("exit-1", "out", "ADMIT", "exit"), ("south", "in", "ADMIT", ""),
        ("north", "in", "ALREADY_USED", "already_inside")]
    watcher.close()


def test_four_gates_racing_on_multi_entry_tickets_admit_exactly_the_allowed_entries(site: Site) -> None:
    paths = serve(site, CheckinList("multi", "show7", entries=3))
    site.start_arbiter()
    tickets = site.mint(12)
    ids = [f"gate-{n}" for n in range(4)]
    watcher = Watcher(site.broker)
    gates = [list_gate(site, g, paths["multi"], **PATIENT) for g in ids]
    watcher.wait_online(*ids)
    orders = [tickets * 4, tickets[::-1] * 4, tickets * 4, tickets[::-1] * 4]
    decisions = [d for out in feed_all(gates, orders) for d in out]
    assert len(decisions) == 4 * 4 * len(tickets) and not any(d["provisional"] for d in decisions)
    admits = Counter(d["ticket_id"] for d in decisions if d["outcome"] == "ADMIT")
    assert admits == Counter({f"t{i}": 3 for i in range(len(tickets))})
    assert Counter(code(d) for d in decisions) == {"ADMIT": 3 * len(tickets), "entries_exhausted": 13 * len(tickets)}
    assert len({d["gate_id"] for d in decisions if d["outcome"] == "ADMIT"}) >= 3, "the gates did not race"
    assert rows(site.arbiter_db(), "SELECT entries, count(*) FROM pass_states GROUP BY entries") == [(3, len(tickets))]
    watcher.close()


def test_capacity_across_racing_gates_admits_exactly_n_and_the_rest_is_area_full(site: Site) -> None:
    paths = serve(site, CheckinList("hall", "show7", entries=0, capacity=7))
    site.start_arbiter()
    tickets = site.mint(24)
    ids = [f"gate-{n}" for n in range(4)]
    watcher = Watcher(site.broker)
    gates = [list_gate(site, g, paths["hall"], **PATIENT) for g in ids]
    watcher.wait_online(*ids)
    decisions = [d for out in feed_all(gates, [tickets[n::4] for n in range(4)]) for d in out]
    assert Counter(code(d) for d in decisions) == {"ADMIT": 7, "area_full": 17}
    assert not any(d["provisional"] for d in decisions)
    assert arbiter_inside(site)["hall"] == {"list": "hall", "inside": 7, "entries": 7}
    watcher.close()


def test_a_partition_where_tickets_enter_on_both_sides_heals_into_exactly_those_conflicts(site: Site) -> None:
    paths = serve(site, CheckinList("stadium", "show7", reentry=True))
    site.start_arbiter()
    watcher = Watcher(site.broker)
    far_in, far_out = TcpProxy(site.broker.port), TcpProxy(site.broker.port)
    a = list_gate(site, "a-in", paths["stadium"])
    b = list_gate(site, "b-in", paths["stadium"], broker_url=far_in.url)
    b_out = list_gate(site, "b-out", paths["stadium"], "out", broker_url=far_out.url)
    watcher.wait_online("a-in", "b-in", "b-out")
    p1, p2, p3, p4, p5 = site.mint(5, "p")
    far_in.cut()
    far_out.cut()
    wait_until(lambda: all((watcher.last(f"qrgate/status/{g}") or {}).get("state") == "offline"
                           for g in ("b-in", "b-out")), 15, "side b cut off")
    side_a = [a.check(p1), a.check(p4), a.check(p5)]  # online: the arbiter decides
    side_b = [b.check(p1), b.check(p2), b.check(p3), b.check(p4)]  # offline: b's own judgement
    exits = [b_out.check(p3), b_out.check(p5)]  # exits are always let through
    assert [code(d) for d in side_a] == ["ADMIT"] * 3 and not any(d["provisional"] for d in side_a)
    assert [code(d) for d in side_b] == ["ADMIT"] * 4 and all(d["provisional"] for d in side_b)
    assert [code(d) for d in exits] == ["exit"] * 2
    far_out.heal()  # the exits reach the arbiter before the entries they followed: late moves come in any order
    wait_until(lambda: rows(site.gate_db("b-out"), "SELECT count(*) FROM pass_outbox WHERE state != 'done'")
               == [(0,)], 30, "b-out's outbox to drain")
    far_in.heal()
    for gate in (a, b, b_out):
        assert gate.finish() in (0, 1), gate.stderr
    assert rows(site.gate_db("b-in"), "SELECT count(*) FROM pass_outbox WHERE state != 'done'") == [(0,)]
    conflicts = {s for (s,) in rows(site.arbiter_db(), "SELECT scan_id FROM pass_scans WHERE conflict = 1")}
    assert conflicts == {side_b[0]["scan_id"], side_b[3]["scan_id"]}, "p1 and p4 entered on both sides"
    assert rows(site.arbiter_db(), "SELECT DISTINCT reason FROM pass_scans WHERE conflict = 1") == [("already_inside",)]
    listed = site.gate_cli("arbiter", "lists", "conflicts", "--json")
    assert listed.returncode == 1, listed.stderr
    assert {json.loads(line)["late_scan_id"] for line in listed.stdout.splitlines()} == conflicts
    published = wait_until(lambda: len(watcher.on("qrgate/conflict/show7")) == 2 and watcher.on("qrgate/conflict/show7"),
                           10, "the list conflicts on the conflict topic")
    assert {(m["late"]["scan"], m["list"], m["reason"], m["first"]["gate"], m["late"]["gate"]) for m in published} == {
        (s, "stadium", "already_inside", "a-in", "b-in") for s in conflicts}
    both = site.gate_cli("arbiter", "conflicts", "--arbiter")  # beside the double entries (none here)
    assert both.returncode == 1, both.stderr
    assert sorted(line.split(" (already inside since")[0] for line in both.stdout.splitlines()) == sorted(
        f"show7/{d['ticket_id']} open (list stadium): entered at b-in while already inside since a-in"
        for d in (side_b[0], side_b[3])), both.stdout
    # the arbiter's count equals a recount from the scans: a ticket is inside if its last move let through was in
    last: dict[str, str] = {}
    for d in sorted(side_a + side_b + exits, key=lambda d: d["at"]):
        last[d["ticket_id"]] = "out" if d["reason"] == "exit" else "in"
    assert arbiter_inside(site)["stadium"]["inside"] == sum(way == "in" for way in last.values()) == 3
    far_in.close()
    far_out.close()
    watcher.close()


def test_two_arbiter_instances_on_postgresql_share_one_capacity(site: Site) -> None:
    from pg_fixtures import fresh_database

    paths = serve(site, CheckinList("hall", "show7", entries=0, capacity=5))
    with fresh_database() as url:
        for name in ("a", "b"):
            site.start_arbiter("--store", url, "--instance", name, "--group", "arbiters")
        tickets = site.mint(16)
        ids = [f"gate-{n}" for n in range(4)]
        watcher = Watcher(site.broker)
        gates = [list_gate(site, g, paths["hall"], **PATIENT) for g in ids]
        watcher.wait_online(*ids)
        decisions = [d for out in feed_all(gates, [tickets[n::4] for n in range(4)]) for d in out]
        assert Counter(code(d) for d in decisions) == {"ADMIT": 5, "area_full": 11}
        shown = site.gate_cli("arbiter", "lists", "inside", "--arbiter", QRGATE_SYNC_ARBITER_DB=url)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.strip() == "hall: 5 inside, 5 entries admitted"
        served = lambda n: ((watcher.last(f"qrgate/arbiter/status/{n}") or {}).get("counters") or {}).get(  # noqa: E731
            "transitions", 0)
        wait_until(lambda: served("a") + served("b") == 16, 10, "the instances' statuses to count every transition")
        assert served("a") and served("b"), "one instance judged them all"
        watcher.close()
        site.close()  # the instances let go of the database before it is dropped


def test_a_stolen_gate_credential_moves_no_ticket_it_was_not_shown(site: Site) -> None:
    """Transitions are checked like claims (docs/security.md): no code, a forged product or another gate's
    scan id move nothing; only a genuine code of the named product is judged."""
    import time

    from gate.product import with_product
    from gate.ticket import Ticket
    from sync import wire
    from sync.link import RequestProperties

    serve(site, CheckinList("vip", "show7", products=("vip",), entries=0))
    site.start_arbiter()
    replies = Watcher(site.broker, "qrgate/reply/+")
    general = site.key.sign(with_product(Ticket("show7", "g1"), "general"))
    vip = site.key.sign(with_product(Ticket("show7", "v1"), "vip"))

    def send(gate: str, *moves: wire.Transition) -> dict[str, dict[str, Any]]:
        before = len(replies.on(f"qrgate/reply/{gate}"))
        replies.client.publish(f"qrgate/claim/{gate}", wire.encode(wire.request("transitions", list(moves))), qos=1,
                               properties=RequestProperties(f"qrgate/reply/{gate}", b"c1")).wait_for_publish(5)
        [reply] = wait_until(lambda: replies.on(f"qrgate/reply/{gate}")[before:], 10, "the answer")
        assert reply["kind"] == "transition"
        return {a["scan"]: a for a in reply["results"]}

    now = time.time()
    got = send("gate-a", wire.Transition("s0", "show7", "v1", "gate-a", now, "vip", 1),
               wire.Transition("s1", "show7", "g1", "gate-a", now, "vip", 1, product="vip", text=general),
               wire.Transition("s2", "show7", "v1", "gate-a", now, "vip", 1, product="vip", text=vip))
    assert [(got[s]["outcome"], got[s]["reason"], got[s].get("detail", "").split(":")[0]) for s in ("s0", "s1")] == [
        ("INVALID", "refused", "no_ticket"), ("INVALID", "refused", "mismatch")]
    assert (got["s2"]["outcome"], got["s2"]["state"]["inside"]) == ("ADMIT", True)
    other = send("gate-b", wire.Transition("s2", "show7", "v1", "gate-b", now, "vip", 1, void=True))
    assert (other["s2"]["outcome"], other["s2"]["reason"]) == ("INVALID", "refused")
    assert arbiter_inside(site)["vip"]["inside"] == 1
    replies.close()


def test_a_gate_that_gave_up_waiting_and_refused_voids_what_the_arbiter_applied_late(site: Site) -> None:
    """The arbiter stalls past the budget (SIGSTOP), the deny policy refuses; the arbiter then applies the
    transition it had queued, and the gate's void undoes it: nobody is counted inside who was not let in."""
    import os
    import signal

    paths = serve(site, CheckinList("hall", "show7", entries=0, capacity=10))
    arbiter = site.start_arbiter()
    watcher = Watcher(site.broker)
    gate = list_gate(site, "gate-1", paths["hall"], QRGATE_SYNC_OFFLINE_POLICY="deny")
    watcher.wait_online("gate-1")
    first, second = site.mint(2)
    assert code(gate.check(first)) == "ADMIT"
    os.kill(arbiter.proc.pid, signal.SIGSTOP)
    try:
        refused = gate.check(second)
    finally:
        os.kill(arbiter.proc.pid, signal.SIGCONT)
    assert (refused["outcome"], refused["reason"]) == ("FAULT", "offline")
    assert gate.finish() in (0, 1), gate.stderr
    assert rows(site.arbiter_db(), "SELECT outcome, reason FROM pass_scans WHERE scan_id = ?",
                refused["scan_id"]) == [("FAULT", "offline")]
    # applied when the arbiter woke (the transition was queued before the void), then undone
    moves = [json.loads(body) for (body,) in rows(site.arbiter_db(), "SELECT body FROM stream WHERE kind = 'pass'")]
    assert [(m["ticket"], m["reason"], m["state"]["inside"]) for m in moves] == [
        ("t0", "", True), ("t1", "", True), ("t1", "offline", False)]
    assert arbiter_inside(site)["hall"] == {"list": "hall", "inside": 1, "entries": 1}
    watcher.close()
