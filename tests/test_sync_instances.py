"""Several `gate arbiter` instances on one PostgreSQL database, sharing the requests through an MQTT v5 shared
subscription: real processes, a real mosquitto, a real PostgreSQL database made and dropped by each test."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

pytest.register_assert_rewrite("sync_fixtures")

from pg_fixtures import fresh_database  # noqa: E402
from sync_fixtures import Proc, Site, Watcher, feed_all, rows, wait_until  # noqa: E402

GROUP = "arbiters"


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as found:
        yield found


def start_instance(site: Site, url: str, name: str) -> Proc:
    return site.start_arbiter("--store", url, "--instance", name, "--group", GROUP)


def arbiter_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def check_gates_caught_up(site: Site, url: str, gate_ids: list[str]) -> None:
    """Every gate holds exactly the arbiter's redeemed set, each redemption at its sequence number of the stream
    (so every gate saw the same stream), at the arbiter's head, with an empty outbox."""
    held = sorted(arbiter_rows(url, "SELECT ticket_id, scan_id, seq FROM claims"))
    [(head,)] = arbiter_rows(url, "SELECT seq FROM stream_head")
    for gate_id in gate_ids:
        db = site.gate_db(gate_id)
        assert sorted(rows(db, "SELECT ticket_id, scan_id, arbiter_seq FROM redeemed")) == held, gate_id
        assert rows(db, "SELECT count(*) FROM outbox WHERE state != 'done'") == [(0,)], gate_id
        assert rows(db, "SELECT value FROM sync_state WHERE key = 'seq'") == [(str(head),)], gate_id


@pytest.mark.slow
def test_three_instances_six_gates_the_same_500_tickets_exactly_500_admits_one_gap_free_stream(
        site: Site, url: str) -> None:
    instances = [start_instance(site, url, name) for name in "abc"]
    watcher = Watcher(site.broker)
    tickets = site.mint(500)
    ids = [f"gate-{n}" for n in range(1, 7)]
    gates = [site.start_gate(g) for g in ids]
    watcher.wait_online(*ids)
    outputs = feed_all(gates, [tickets if n % 2 else tickets[::-1] for n in range(6)], 180)

    decisions = [row for out in outputs for row in out]
    assert [len(out) for out in outputs] == [500] * 6
    admits = [r for r in decisions if r["outcome"] == "ADMIT"]
    assert Counter(r["ticket_id"] for r in admits) == Counter({f"t{i}": 1 for i in range(500)})
    assert {r["outcome"] for r in decisions} == {"ADMIT", "ALREADY_USED"}
    assert not any(r["provisional"] for r in decisions)
    stream = sorted(i["seq"] for m in watcher.on("qrgate/stream") for i in m["items"])
    assert stream == list(range(1, 501)), "each committed item went out once, by the instance that committed it"
    watcher.close()
    check_gates_caught_up(site, url, ids)
    answered = [claims_answered(proc) for proc in instances]
    assert all(n > 0 for n in answered), f"the shared subscription did not spread the claims: {answered}"


def claims_answered(proc: Proc) -> int:
    """Stop an instance (SIGTERM); the claims it answered, from its closing line."""
    proc.proc.terminate()
    assert proc.finish(20) == 0, proc.stderr
    lines = []
    while not proc.lines.empty():
        lines.append(proc.lines.get())
    closing = next(line for line in reversed(lines) if line.startswith("arbiter stopped: "))
    return int(closing.removeprefix("arbiter stopped: ").split()[0])  # "arbiter stopped: 12 claims answered; ..."


@pytest.mark.slow
def test_killing_an_instance_again_and_again_loses_at_most_the_claims_in_flight_and_admits_nothing_twice(
        site: Site, url: str) -> None:
    """Instance b runs throughout; instance a is killed with SIGKILL every half second or so and started again.
    Three gates check the same 300 tickets in different orders meanwhile."""
    start_instance(site, url, "b")
    victim = [start_instance(site, url, "a")]
    tickets = site.mint(300)
    ids = ["gate-1", "gate-2", "gate-3"]
    watcher = Watcher(site.broker)
    gates = [site.start_gate(g) for g in ids]
    watcher.wait_online(*ids)
    kills = 0
    stop = threading.Event()

    def killer() -> None:
        nonlocal kills
        rng = random.Random(14)
        while not stop.wait(rng.uniform(0.3, 0.9)):
            victim[0].kill()
            kills += 1
            victim[0] = start_instance(site, url, "a")
    thread = threading.Thread(target=killer)
    thread.start()
    try:
        orders = [tickets, tickets[::-1], tickets[150:] + tickets[:150]]
        for n in range(len(tickets)):  # a steady flow of people, so that the kills land in the middle of it
            for gate, order in zip(gates, orders, strict=True):
                gate.send(order[n])
            time.sleep(0.02)
        wait_until(lambda: all(g.lines.qsize() >= 300 for g in gates), 120, "the gates to decide everything")
    finally:
        stop.set()
        thread.join()
    outputs = feed_all(gates, [[], [], []], 180)
    watcher.close()

    decisions = [row for out in outputs for row in out]
    assert len(decisions) == 900 and kills >= 3, (len(decisions), kills)
    online = [r for r in decisions if r["outcome"] == "ADMIT" and not r["provisional"]]
    assert max(Counter(r["ticket_id"] for r in online).values()) == 1, "a ticket was admitted twice online"
    offline = [r for r in decisions if r["provisional"] or r["outcome"] == "FAULT"]
    print(f"{kills} kills, {len(offline)} claims decided offline")
    assert len(offline) <= kills * len(gates), "more claims went unanswered than were in flight at the kills"
    # nothing lost: every admitted scan is at the arbiter, as the holder or as a recorded double entry
    admitted = {r["scan_id"] for r in decisions if r["outcome"] == "ADMIT"}
    holders = {s for (s,) in arbiter_rows(url, "SELECT scan_id FROM claims")}
    late = {s for (s,) in arbiter_rows(url, "SELECT late_scan_id FROM conflicts WHERE state = 'open'")}
    assert admitted <= holders | late
    assert len(holders) == 300
    check_gates_caught_up(site, url, ids)


def test_a_gate_resends_an_unanswered_claim_once_and_the_live_instance_answers_it(site: Site, url: str) -> None:
    """The claim reaches an instance that is stopped (SIGSTOP: connected, answering nothing, as one that has
    just died before the broker noticed): the gate's copy, half way through the budget, goes to the other."""
    a = start_instance(site, url, "a")
    start_instance(site, url, "b")
    tickets = site.mint(20)
    gate = site.start_gate("gate-1")
    Watcher(site.broker).wait_online("gate-1")
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        decisions = [gate.check(t) for t in tickets]
        elapsed = time.monotonic() - started
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    assert [d["outcome"] for d in decisions] == ["ADMIT"] * 20
    assert not any(d["provisional"] for d in decisions), "a claim went unanswered"
    assert elapsed < 20 * 0.3, elapsed
    assert gate.finish(60) == 0
