"""Outages with real processes: the broker stops and restarts, one gate is cut off and heals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import GateProc, Site, TcpProxy, Watcher, rows, wait_until  # noqa: E402


def check_all(gates: list[GateProc], batches: list[list[str]]) -> list[list[dict[str, Any]]]:
    """Each gate checks its batch, one ticket at a time, all gates at once."""
    results: list[list[dict[str, Any]]] = [[] for _ in gates]

    def run(n: int) -> None:
        results[n] = [gates[n].check(t) for t in batches[n]]
    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(gates))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [len(r) for r in results] == [len(b) for b in batches]
    return results


def pending(site: Site, gate_id: str) -> int:
    return int(rows(site.gate_db(gate_id), "SELECT count(*) FROM outbox WHERE state != 'done'")[0][0])


def unread(pid: int, port: int) -> int:
    """Bytes waiting unread in process `pid`'s TCP connections to `port`: their kernel receive queues
    (/proc/net/tcp), which fill while the process is stopped."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[len("socket:["):-1])
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    total += int(fields[4].split(":")[1], 16)
    return total


def settled(read: Callable[[], int], quiet: float = 0.3) -> Callable[[], bool]:
    """A check for wait_until: true once `read()` is above 0 and has not changed for `quiet` s."""
    last = [-1, time.monotonic()]

    def check() -> bool:
        now, value = time.monotonic(), read()
        if value != last[0]:
            last[:] = [value, now]
            return False
        return value > 0 and now - last[1] >= quiet
    return check


def past_budget(site: Site, gate_id: str) -> int:
    """Claims a gate has sent and the arbiter has not answered within their budget (admitted offline or not)."""
    return int(rows(site.gate_db(gate_id), "SELECT count(*) FROM outbox WHERE state = 'late'")[0][0])


def test_broker_stopped_mid_run_and_restarted_loses_nothing_and_applies_nothing_twice(site: Site) -> None:
    arbiter = site.start_arbiter()
    tickets = site.mint(300)
    ids = ["gate-1", "gate-2", "gate-3"]
    watcher = Watcher(site.broker)
    gates = [site.start_gate(g) for g in ids]
    watcher.wait_online(*ids)
    watcher.close()

    online = check_all(gates, [tickets[:100]] * 3)  # all racing for the same tickets
    own = [tickets[100 + 30 * n:130 + 30 * n] for n in range(3)]
    shared = tickets[190:200]  # admitted offline at two gates: double entries
    # the broker stops with claims in flight: they reached the arbiter (stopped, so it has not answered yet)
    arbiter.proc.send_signal(signal.SIGSTOP)
    offline: list[list[dict[str, Any]]] = []
    checking = threading.Thread(target=lambda: offline.extend(
        check_all(gates, [shared + own[0], shared + own[1], own[2] + tickets[:10]])))  # shared ones first
    checking.start()
    # a claim is in the outbox before it is published, and the broker must also hand it on: on a loaded
    # machine a claim stopped with the broker never reached the arbiter.  So: a claim past its budget at every
    # gate (sent 0.3 s ago or more), and the stopped arbiter's socket filled and no longer filling
    wait_until(lambda: all(past_budget(site, g) for g in ids), 20, "a claim in flight, past its budget, at every gate")
    wait_until(settled(lambda: unread(arbiter.proc.pid, site.broker.port)), 20,
               "the claims in flight to reach the stopped arbiter's socket")
    site.broker.stop()
    stopped = time.time()
    arbiter.proc.send_signal(signal.SIGCONT)  # it decides what reached it, with no broker to answer on
    checking.join(120)
    late_decided = "SELECT count(*) FROM scans WHERE arbiter_at > ?"
    # At least one, not every gate's: on a loaded machine one request of the three was at times still unread
    # when the arbiter's connection died (2 decided, about 1 run in 12 with the stream coalesced); it is lost
    # with that connection like any unread TCP data, and the gate's outbox brings it again (checked below:
    # every admission reaches the arbiter, none twice)
    wait_until(lambda: rows(site.arbiter_db(), late_decided, stopped)[0][0] >= 1, 20,
               "the arbiter to decide a claim that reached it, with no broker to answer on")
    restarted = time.time()
    site.broker.start()
    for gate_id in ids:
        wait_until(lambda g=gate_id: pending(site, g) == 0, 30, f"{gate_id}'s outbox to drain")
    again = check_all(gates, [tickets[200:]] * 3)
    for gate in gates:
        assert gate.finish() in (0, 1) and "Traceback" not in gate.stderr, gate.stderr

    decisions = [r for batch in (online, offline, again) for out in batch for r in out]
    admits = [r for r in decisions if r["outcome"] == "ADMIT"]
    per_ticket = Counter(r["ticket_id"] for r in admits)
    assert set(per_ticket) == {f"t{i}" for i in range(300)}
    assert {t for t, n in per_ticket.items() if n > 1} == {f"t{i}" for i in range(190, 200)}
    assert all(r["provisional"] for out in offline for r in out if r["outcome"] == "ADMIT")
    assert not any(r["provisional"] for batch in (online, again) for out in batch for r in out)
    assert [r["outcome"] for r in offline[2][30:]] == ["ALREADY_USED"] * 10  # the local set, no round trip

    arbiter = site.arbiter_db()
    unanswered = rows(arbiter, "SELECT count(*) FROM scans WHERE arbiter_at BETWEEN ? AND ?", stopped, restarted)
    assert unanswered[0][0] >= 1, "no claim was in flight when the broker stopped"  # decided, answered only later
    held = dict(rows(arbiter, "SELECT scan_id, ticket_id FROM claims"))
    late = dict(rows(arbiter, "SELECT late_scan_id, ticket_id FROM conflicts WHERE state = 'open'"))
    assert {r["scan_id"] for r in admits} == set(held) | set(late), "an admission did not reach the arbiter"
    assert set(held.values()) == set(per_ticket) and len(held) == 300
    assert Counter(late.values()) == Counter({t: n - 1 for t, n in per_ticket.items() if n > 1})
    stream = rows(arbiter, "SELECT kind, json_extract(body, '$.ticket') FROM stream")
    net = Counter(t for k, t in stream if k == "redemption")
    net.subtract(Counter(t for k, t in stream if k == "release"))
    assert set(net.values()) == {1}, "a redemption was applied twice"
    for n, gate_id in enumerate(ids):
        db = site.gate_db(gate_id)
        mine = Counter(r["ticket_id"] for batch in (online, offline, again) for r in batch[n] if r["outcome"] == "ADMIT")
        assert Counter(t for (t,) in rows(db, "SELECT ticket_id FROM audit WHERE outcome = 'ADMIT'")) == mine
        assert rows(db, "SELECT count(*) FROM redeemed WHERE source = 'local' AND arbiter = ''") == [(0,)]


def test_a_gate_cut_off_admits_offline_and_exactly_the_double_entries_become_conflicts(site: Site) -> None:
    proxy = TcpProxy(site.broker.port)
    site.start_arbiter()
    tickets = site.mint(60)
    watcher = Watcher(site.broker)
    a = site.start_gate("gate-a")
    b = site.start_gate("gate-b", broker_url=proxy.url)
    watcher.wait_online("gate-a", "gate-b")
    assert [a.check(t)["outcome"] for t in tickets[:20]] == ["ADMIT"] * 20
    wait_until(lambda: rows(site.gate_db("gate-b"), "SELECT count(*) FROM redeemed")[0][0] == 20, 10,
               "gate-b to apply gate-a's redemptions")

    proxy.cut()
    wait_until(lambda: watcher.last("qrgate/status/gate-b")["state"] == "offline", 10, "gate-b's last will")
    both, only_b, only_a = tickets[20:40], tickets[40:50], tickets[50:60]
    at_a = [a.check(t) for t in both + only_a]
    at_b = [b.check(t) for t in tickets[:10] + both + only_b]
    assert [r["outcome"] for r in at_a] == ["ADMIT"] * 30 and not any(r["provisional"] for r in at_a)
    assert [r["outcome"] for r in at_b[:10]] == ["ALREADY_USED"] * 10  # gate-a's, known before the cut
    assert all(r["outcome"] == "ADMIT" and r["provisional"] for r in at_b[10:])

    proxy.heal()
    wait_until(lambda: pending(site, "gate-b") == 0, 30, "gate-b's outbox to drain")
    conflicts = rows(site.arbiter_db(), "SELECT ticket_id, first_gate, first_at, first_scan_id, late_gate, late_at,"
                     " late_scan_id FROM conflicts WHERE state = 'open'")
    first = {r["ticket_id"]: r for r in at_a}
    again = {r["ticket_id"]: r for r in at_b[10:]}
    assert sorted(c[0] for c in conflicts) == sorted(f"t{i}" for i in range(20, 40))
    for ticket, first_gate, first_at, first_scan, late_gate, late_at, late_scan in conflicts:
        assert (first_gate, first_at, first_scan) == ("gate-a", first[ticket]["at"], first[ticket]["scan_id"])
        assert (late_gate, late_at, late_scan) == ("gate-b", again[ticket]["at"], again[ticket]["scan_id"])
    held = dict(rows(site.arbiter_db(), "SELECT ticket_id, gate_id FROM claims"))
    assert all(held[f"t{i}"] == "gate-b" for i in range(40, 50))  # late but first: no conflict

    counted = ("offline_decisions", "scans_dropped", "late_won", "conflicts")  # gate-b's status: what it went through
    wait_until(lambda: [(watcher.last("qrgate/status/gate-b") or {}).get("counters", {}).get(c) for c in counted]
               == [40, 40, 10, 20], 15, "gate-b's status to count 40 offline decisions and dropped scans, 10 late wins"
               " and 20 conflicts")
    wait_until(lambda: len(watcher.on("qrgate/conflict/show7")) == 20, 10, "the conflicts to be published")
    published = watcher.on("qrgate/conflict/show7")
    assert {(m["ticket"], m["first"]["gate"], m["late"]["gate"]) for m in published} == {
        (f"t{i}", "gate-a", "gate-b") for i in range(20, 40)}
    at_gate_b = rows(site.gate_db("gate-b"), "SELECT ticket_id FROM conflicts WHERE state = 'open'")
    assert sorted(t for (t,) in at_gate_b) == sorted(f"t{i}" for i in range(20, 40))
    listed = site.gate_cli("arbiter", "conflicts", "--arbiter", "--json")
    assert listed.returncode == 1 and len(listed.stdout.splitlines()) == 20
    assert {json.loads(line)["late_gate"] for line in listed.stdout.splitlines()} == {"gate-b"}
    for gate in (a, b):
        assert gate.finish() in (0, 1) and "Traceback" not in gate.stderr
    watcher.close()
    proxy.close()
