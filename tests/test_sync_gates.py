"""Several gates, one arbiter, real processes on a real broker: each ticket is admitted exactly once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import GateProc, Site, Watcher, rows, wait_until  # noqa: E402


def feed_all(gates: list[GateProc], orders: list[list[str]]) -> list[list[dict[str, Any]]]:
    for gate, order in zip(gates, orders, strict=True):
        for ticket in order:
            gate.send(ticket)
    for gate in gates:
        assert gate.finish(120) in (0, 1), gate.stderr
        assert "Traceback" not in gate.stderr
    return [gate.outputs() for gate in gates]


def wait_online(watcher: Watcher, *gate_ids: str) -> None:
    for gate_id in gate_ids:
        wait_until(lambda g=gate_id: (watcher.last(f"qrgate/status/{g}") or {}).get("state") == "online",
                   20, f"{gate_id} online")


def test_four_gates_check_the_same_500_tickets_and_admit_each_exactly_once(site: Site) -> None:
    site.start_arbiter()
    tickets = site.mint(500)
    watcher = Watcher(site.broker)
    ids = [f"gate-{n}" for n in range(1, 5)]
    gates = [site.start_gate(g) for g in ids]
    wait_online(watcher, *ids)
    # two pairs race on the same order: every ticket is contended at the arbiter, not only in the stream
    outputs = feed_all(gates, [tickets, tickets, tickets[::-1], tickets[::-1]])
    watcher.close()

    decisions = [row for out in outputs for row in out]
    assert [len(out) for out in outputs] == [500] * 4
    admits = [r for r in decisions if r["outcome"] == "ADMIT"]
    assert len(admits) == 500
    assert Counter(r["ticket_id"] for r in admits) == Counter({f"t{i}": 1 for i in range(500)})
    assert {r["outcome"] for r in decisions} == {"ADMIT", "ALREADY_USED"}
    assert not any(r["provisional"] for r in decisions)
    assert len({r["gate_id"] for r in admits}) >= 3, "the gates did not race"
    winner = {r["ticket_id"]: r for r in admits}
    for r in decisions:
        if r["outcome"] == "ALREADY_USED":  # where and when it was used first
            assert (r["first_gate"], r["first_at"]) == (winner[r["ticket_id"]]["gate_id"], winner[r["ticket_id"]]["at"])

    arbiter = site.arbiter_db()
    held = {t: (g, s) for t, g, s in rows(arbiter, "SELECT ticket_id, gate_id, scan_id FROM claims")}
    assert held == {t: (r["gate_id"], r["scan_id"]) for t, r in winner.items()}
    assert rows(arbiter, "SELECT count(*) FROM conflicts") == [(0,)]
    lost = rows(arbiter, "SELECT count(*) FROM scans WHERE answer = 'lost'")[0][0]
    print(f"claims lost at the arbiter: {lost}; admits by gate: {Counter(r['gate_id'] for r in admits)}")
    assert lost > 0, "no two gates claimed the same ticket at the same time"
    assert rows(arbiter, "SELECT count(*), min(seq), max(seq) FROM stream WHERE kind = 'redemption'") == [(500, 1, 500)]
    for gate_id in ids:
        db = site.gate_db(gate_id)
        local = {t: s for t, s, a in rows(db, "SELECT ticket_id, scan_id, arbiter FROM redeemed WHERE source = 'local'")
                 if a == "won"}
        assert local == {t: s for t, (g, s) in held.items() if g == gate_id}
        every = {t: s for t, s in rows(db, "SELECT ticket_id, scan_id FROM redeemed")}
        assert every == {t: s for t, (_g, s) in held.items()}  # caught up with the arbiter at exit
        assert rows(db, "SELECT count(*) FROM outbox WHERE state != 'done'") == [(0,)]
        assert rows(db, "SELECT count(*) FROM audit WHERE outcome = 'ADMIT'") == [(len(local),)]


def test_a_ticket_used_at_gate_1_is_already_used_at_gate_2_after_gate_2_lost_the_arbiter(site: Site) -> None:
    arbiter = site.start_arbiter()
    [ticket, other] = site.mint(2)
    watcher = Watcher(site.broker)
    gate1, gate2 = site.start_gate("gate-1"), site.start_gate("gate-2")
    wait_online(watcher, "gate-1", "gate-2")
    first = gate1.check(ticket)
    assert first["outcome"] == "ADMIT"
    wait_until(lambda: rows(site.gate_db("gate-2"), "SELECT 1 FROM redeemed WHERE ticket_id = 't0'"), 10,
               "the redemption to reach gate-2")
    arbiter.kill()  # its last will says offline: gate-2 decides on its own now
    wait_until(lambda: (watcher.last("qrgate/arbiter/status") or {}).get("state") == "offline", 10, "the will")
    again = gate2.check(ticket)
    assert (again["outcome"], again["first_gate"], again["first_at"]) == ("ALREADY_USED", "gate-1", first["at"])
    fresh = gate2.check(other)
    assert fresh["outcome"] == "ADMIT" and fresh["provisional"]
    watcher.close()
