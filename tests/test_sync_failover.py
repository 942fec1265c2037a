"""Failing over with real processes: a gate keeps applying the stream while it waits for an arbiter that died; gates
fail over to a second broker, when the first is killed and when it goes silent."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

pytest.register_assert_rewrite("sync_fixtures")

from pg_fixtures import PrivatePostgres, fresh_database  # noqa: E402
from sync_fixtures import Mosquitto, Site, TcpProxy, Watcher, rows, wait_until  # noqa: E402

from sync.follower import REQUEST_TIMEOUT  # noqa: E402


def test_a_gate_applies_the_stream_while_its_request_waits_for_an_arbiter_that_died(site: Site) -> None:
    """The reproduction of issue 14: gate-1 asks for a catch-up; the arbiter dies holding it and a new one takes
    over; gate-2 admits a ticket online through the new one; 0.5 s later gate-1 is cut off and scans the same
    ticket.  Gate-1 must have applied the stream by then: ALREADY_USED, not a (provisional) second ADMIT.  (When
    one thread both applied the stream and waited up to 5 s for its requests, it admitted.)"""
    arbiter = site.start_arbiter()
    proxy = TcpProxy(site.broker.port)
    watcher = Watcher(site.broker)
    [ticket] = site.mint(1)
    gate1, gate2 = site.start_gate("gate-1", broker_url=proxy.url), site.start_gate("gate-2")
    watcher.wait_online("gate-1", "gate-2")
    os.kill(arbiter.proc.pid, signal.SIGSTOP)  # it answers nothing from now on
    ahead = {"v": 1, "role": "arbiter", "state": "online", "at": time.time(), "head": 999}
    watcher.publish("qrgate/arbiter/status", json.dumps(ahead).encode())  # gate-1 asks to catch up to 999 ...
    asked = time.monotonic()
    time.sleep(0.1)  # ... and waits for the answer
    arbiter.kill()
    site.start_arbiter()  # the same arbiter.db, streaming again
    wait_until(lambda: (watcher.last("qrgate/arbiter/status") or {}).get("head", 999) != 999, 10,
               "the new arbiter's status")
    time.sleep(0.2)  # gate-2 has heard it too
    first = gate2.check(ticket)
    assert first["outcome"] == "ADMIT" and not first["provisional"], first["detail"]
    time.sleep(0.5)
    proxy.cut()
    cut_after = time.monotonic() - asked
    assert cut_after < REQUEST_TIMEOUT - 0.5, f"too slow to reproduce: cut {cut_after:.1f} s after the request"
    again = gate1.check(ticket)
    assert (again["outcome"], again["provisional"]) == ("ALREADY_USED", False), (cut_after, again)
    watcher.close()
    proxy.close()


@pytest.mark.slow
def test_one_broker_of_two_killed_mid_run_the_gates_fail_over_and_keep_claiming_online(
        site: Site, tmp_path: Path) -> None:
    """Two independent mosquittos, an arbiter instance on each (one PostgreSQL database); three gates that know
    both brokers check the same tickets at a steady pace while the first broker is killed."""
    second = Mosquitto(tmp_path / "broker-2").start()
    try:
        with fresh_database() as url:
            site.start_arbiter("--store", url, "--instance", "a", "--group", "arbiters")
            site.start_arbiter("--store", url, "--instance", "b", "--group", "arbiters", broker_url=second.url)
            both = f"{site.broker.url},{second.url}"
            ids = ["gate-1", "gate-2", "gate-3"]
            watcher = Watcher(site.broker)
            gates = [site.start_gate(g, broker_url=both) for g in ids]
            watcher.wait_online(*ids)
            watcher.close()
            tickets = site.mint(240)
            orders = [tickets, tickets[::-1], tickets[120:] + tickets[:120]]
            for n in range(len(tickets)):
                if n == 80:
                    site.broker.proc.kill()  # type: ignore[union-attr]
                for gate, order in zip(gates, orders, strict=True):
                    gate.send(order[n])
                time.sleep(0.02)
            time.sleep(1.5)  # the failover is done by now ...
            for k, gate in enumerate(gates):  # ... and every gate claims tickets of its own online
                for ticket in site.mint(20, prefix=f"own{k}-"):
                    gate.send(ticket)
            outputs = [[] for _ in gates]  # type: list[list[dict[str, object]]]
            for gate, out in zip(gates, outputs, strict=True):
                assert gate.finish(120) in (0, 1), gate.stderr
                out += gate.outputs()
            check_failover(url, outputs, [gate.stderr for gate in gates])
    finally:
        second.stop()


@pytest.mark.slow
def test_one_broker_of_two_goes_silent_the_gate_fails_over_within_seconds(site: Site, tmp_path: Path) -> None:
    """The first broker's machine loses power: nothing is closed or refused, nothing comes back.  The gate does not
    wait for TCP to notice (its keepalive: 10-20 s, every person at the gate decided offline meanwhile): 3 claims
    unanswered with nothing heard, it makes its connection again, to the other broker, and claims online within
    seconds.  (Before the renewal, it stayed on the silent connection until the keepalive gave it up.)"""
    second = Mosquitto(tmp_path / "broker-2").start()
    proxy = TcpProxy(site.broker.port)
    try:
        with fresh_database() as url:
            site.start_arbiter("--store", url, "--instance", "a", "--group", "arbiters")
            site.start_arbiter("--store", url, "--instance", "b", "--group", "arbiters", broker_url=second.url)
            watcher = Watcher(site.broker)
            gate = site.start_gate("gate-1", broker_url=f"{proxy.url},{second.url}")
            watcher.wait_online("gate-1")
            watcher.close()
            tickets = site.mint(60)
            first = gate.check(tickets[0])
            assert (first["outcome"], first["provisional"]) == ("ADMIT", False), first
            proxy.silence()
            silenced = time.monotonic()
            seen = []
            for ticket in tickets[1:]:
                result = gate.check(ticket)
                seen.append((round(time.monotonic() - silenced, 2), result["outcome"], result["provisional"]))
                if (result["outcome"], result["provisional"]) == ("ADMIT", False):
                    break
                time.sleep(0.1)
            assert seen[-1][1:] == ("ADMIT", False), seen
            assert seen[-1][0] < 6.0, f"online again only {seen[-1][0]} s after the broker went silent: {seen}"
            assert all(outcome == "ADMIT" for _, outcome, _ in seen), seen  # offline meanwhile: admitted provisionally
            assert gate.finish(30) in (0, 1), gate.stderr
    finally:
        proxy.close()
        second.stop()


def check_failover(url: str, outputs: list[list[dict[str, object]]], logs: list[str]) -> None:
    assert [len(out) for out in outputs] == [260] * 3
    for out in outputs:
        assert [(r["outcome"], r["provisional"]) for r in out[240:]] == [("ADMIT", False)] * 20, out[240:]
    decisions = [r for out in outputs for r in out]
    online = [r for r in decisions if r["outcome"] == "ADMIT" and not r["provisional"]]
    assert max(Counter(r["ticket_id"] for r in online).values()) == 1, "a ticket was admitted twice online"
    offline = [[i for i, r in enumerate(out) if r["provisional"] or r["outcome"] == "FAULT"] for out in outputs]
    print(f"decided offline (by position in each gate's run; the broker died at 80): {offline}")
    told = [[line for line in log.splitlines() if "broker" in line or "arbiter" in line] for log in logs]
    assert all(len(positions) <= 80 for positions in offline), told
    with psycopg.connect(url, autocommit=True) as conn:
        holders = {s for (s,) in conn.execute("SELECT scan_id FROM claims")}
        late = {s for (s,) in conn.execute("SELECT late_scan_id FROM conflicts WHERE state = 'open'")}
    admitted = {r["scan_id"] for r in decisions if r["outcome"] == "ADMIT"}
    assert admitted <= holders | late, "an admission never reached the arbiter"


@pytest.mark.slow
def test_postgresql_restarted_mid_run_gates_decide_offline_then_reconcile_into_exactly_the_double_entries(
        site: Site) -> None:
    """The instance answers nothing it cannot commit while its database is down; afterwards the outboxes drain and
    exactly the tickets admitted offline at two gates become conflicts."""
    server = PrivatePostgres().start()
    try:
        site.start_arbiter("--store", server.url, "--instance", "a", "--group", "arbiters")
        ids = ["gate-1", "gate-2", "gate-3"]
        watcher = Watcher(site.broker)
        gates = [site.start_gate(g) for g in ids]
        watcher.wait_online(*ids)
        tickets = site.mint(60)
        before = [[gate.check(t) for t in tickets[:10]] for gate in gates]
        server.stop()
        shared = tickets[10:15]  # admitted offline at gate-1 and gate-2: double entries
        own = [tickets[15 + 10 * k:25 + 10 * k] for k in range(3)]
        during = [[gate.check(t) for t in batch] for gate, batch in
                  zip(gates, [shared + own[0], shared + own[1], own[2]], strict=True)]
        server.start()
        wait_until(lambda: all(pending(site, g) == 0 for g in ids), 60, "the outboxes to drain")
        after = [gate.check(t) for t in tickets[45:50] for gate in gates[:1]]
        for gate in gates:
            assert gate.finish(60) in (0, 1), gate.stderr
        watcher.close()

        assert [d["outcome"] for out in before for d in out].count("ADMIT") == 10
        assert all(d["outcome"] == "ADMIT" and d["provisional"] for out in during for d in out), during
        assert [(d["outcome"], d["provisional"]) for d in after] == [("ADMIT", False)] * 5
        with psycopg.connect(server.url, autocommit=True) as conn:
            conflicts = sorted(t for (t,) in conn.execute("SELECT ticket_id FROM conflicts WHERE state = 'open'"))
            held = {t for (t,) in conn.execute("SELECT ticket_id FROM claims")}
        assert conflicts == sorted(f"t{i}" for i in range(10, 15))
        assert held == {f"t{i}" for i in [*range(45), *range(45, 50)]}
    finally:
        server.close()


def pending(site: Site, gate_id: str) -> int:
    return int(rows(site.gate_db(gate_id), "SELECT count(*) FROM outbox WHERE state != 'done'")[0][0])
