"""Crash safety with real processes and SIGKILL: no admission lost, no ticket burned without a record."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import ROOT, Site, Watcher, free_port, rows, wait_until  # noqa: E402


def test_gate_killed_between_claim_and_commit_releases_the_ticket_with_a_record(site: Site) -> None:
    site.start_arbiter()
    [ticket] = site.mint(1)
    watcher = Watcher(site.broker)
    other = site.start_gate("gate-2")
    watcher.wait_online("gate-2")
    crashed = subprocess.run([sys.executable, str(ROOT / "tests" / "sync_fixtures.py"), ticket],
                             env=site.env(site.home("gate-1"), QRGATE_GATE_ID="gate-1"), cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == -signal.SIGKILL and crashed.stdout == ""  # nobody was told ADMIT
    arbiter, gate1 = site.arbiter_db(), site.gate_db("gate-1")
    [(scan_id, answer)] = rows(arbiter, "SELECT scan_id, answer FROM scans")
    assert answer == "won"  # the arbiter granted it, the gate never committed
    assert rows(gate1, "SELECT scan_id, state FROM outbox") == [(scan_id, "claim")]  # the intent came first
    assert rows(gate1, "SELECT count(*) FROM redeemed") == [(0,)]
    assert rows(gate1, "SELECT count(*) FROM audit WHERE outcome = 'ADMIT'") == [(0,)]
    assert other.check(ticket)["outcome"] == "ALREADY_USED"  # held for the crashed gate until it recovers

    recovered = site.gate_cli("gate-1", "sync", "--once")  # the orphaned claim is released after its grace
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert rows(arbiter, "SELECT answer FROM scans WHERE scan_id = ?", scan_id) == [("released",)]
    assert rows(arbiter, "SELECT count(*) FROM claims") == [(0,)]
    assert rows(gate1, "SELECT state, answer FROM outbox") == [("done", "released")]
    wait_until(lambda: rows(site.gate_db("gate-2"), "SELECT count(*) FROM redeemed") == [(0,)], 10,
               "gate-2 to apply the release")
    assert other.check(ticket)["outcome"] == "ADMIT"  # the holder gets in: the ticket was not burned
    assert other.finish() in (0, 1)
    watcher.close()


def test_gate_killed_after_an_offline_admission_delivers_it_on_restart(site: Site) -> None:
    site.start_arbiter()
    [ticket] = site.mint(1)
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    gate = site.start_gate("gate-1", broker_url=nowhere, QRGATE_SYNC_CONNECT_WAIT="0")
    decision = gate.check(ticket)
    assert decision["outcome"] == "ADMIT" and decision["provisional"]
    gate.proc.send_signal(signal.SIGKILL)
    gate.proc.wait(10)
    assert rows(site.gate_db("gate-1"), "SELECT state FROM outbox") == [("late",)]
    assert site.gate_cli("gate-1", "sync", "--once").returncode == 0
    assert rows(site.arbiter_db(), "SELECT gate_id, scan_id FROM claims") == [("gate-1", decision["scan_id"])]
    assert rows(site.gate_db("gate-1"), "SELECT arbiter FROM redeemed") == [("won",)]


def test_arbiter_killed_mid_stream_loses_no_admission_and_records_every_double_entry(site: Site) -> None:
    arbiter = site.start_arbiter()
    tickets = site.mint(300)
    watcher = Watcher(site.broker)
    gates = [site.start_gate(g) for g in ("gate-1", "gate-2")]
    watcher.wait_online("gate-1", "gate-2")
    results: list[list[dict[str, Any]]] = [[], []]

    def run(n: int) -> None:
        results[n] = [gates[n].check(t) for t in tickets]
    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    wait_until(lambda: rows(site.arbiter_db(), "SELECT count(*) FROM claims")[0][0] > 60, 30, "the run to get going")
    arbiter.kill()  # SIGKILL while both gates are claiming
    time.sleep(0.5)
    site.start_arbiter()
    for t in threads:
        t.join(120)
    for gate in gates:
        assert gate.finish() in (0, 1) and "Traceback" not in gate.stderr, gate.stderr

    decisions = results[0] + results[1]
    admits = [r for r in decisions if r["outcome"] == "ADMIT"]
    assert any(r["provisional"] for r in admits), "the kill did not land mid-run"
    per_ticket = Counter(r["ticket_id"] for r in admits)
    assert set(per_ticket) == {f"t{i}" for i in range(300)}
    db = site.arbiter_db()
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    held = dict(rows(db, "SELECT scan_id, ticket_id FROM claims"))
    late = dict(rows(db, "SELECT late_scan_id, ticket_id FROM conflicts WHERE state = 'open'"))
    assert {r["scan_id"] for r in admits} == set(held) | set(late), "an admission did not reach the arbiter"
    assert Counter(late.values()) == Counter({t: n - 1 for t, n in per_ticket.items() if n > 1})
    [(count, low, high)] = rows(db, "SELECT count(*), min(seq), max(seq) FROM stream")
    assert (low, high) == (1, count)  # no sequence number lost or reused across the crash
    for gate_id in ("gate-1", "gate-2"):
        assert rows(site.gate_db(gate_id), "SELECT count(*) FROM outbox WHERE state != 'done'") == [(0,)]
    watcher.close()
