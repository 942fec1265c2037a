"""Past the claim budget the offline policy decides; the arbiter's late grant is then confirmed or released."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import Proc, Site, Watcher, rows, wait_until  # noqa: E402


@pytest.fixture
def frozen(site: Site) -> Iterator[tuple[Site, Proc, Watcher]]:
    arbiter = site.start_arbiter()
    watcher = Watcher(site.broker)
    yield site, arbiter, watcher
    watcher.close()


def test_admit_if_unseen_past_the_budget_admits_provisionally_and_the_late_grant_confirms_it(
        frozen: tuple[Site, Proc, Watcher]) -> None:
    site, arbiter, watcher = frozen
    [ticket] = site.mint(1)
    gate = site.start_gate("gate-1")
    watcher.wait_online("gate-1")
    arbiter.proc.send_signal(signal.SIGSTOP)  # connected but silent: the claim waits out its budget
    try:
        decision = gate.check(ticket)
    finally:
        arbiter.proc.send_signal(signal.SIGCONT)
    assert decision["outcome"] == "ADMIT" and decision["provisional"]
    wait_until(lambda: rows(site.gate_db("gate-1"), "SELECT count(*) FROM outbox WHERE state != 'done'") == [(0,)],
               20, "the late claim to be answered")
    assert rows(site.arbiter_db(), "SELECT scan_id, admitted, answer FROM scans") == [(decision["scan_id"], 1, "won")]
    assert rows(site.arbiter_db(), "SELECT count(*) FROM conflicts") == [(0,)]
    assert rows(site.gate_db("gate-1"), "SELECT arbiter FROM redeemed") == [("won",)]
    assert gate.finish() == 0


def test_deny_past_the_budget_refuses_and_releases_what_the_arbiter_granted_late(
        frozen: tuple[Site, Proc, Watcher]) -> None:
    site, arbiter, watcher = frozen
    [ticket] = site.mint(1)
    gate = site.start_gate("gate-1", "--set", "sync.offline_policy=deny")
    watcher.wait_online("gate-1")
    arbiter.proc.send_signal(signal.SIGSTOP)
    try:
        decision = gate.check(ticket)
    finally:
        arbiter.proc.send_signal(signal.SIGCONT)
    assert (decision["outcome"], decision["reason"]) == ("FAULT", "offline")
    wait_until(lambda: rows(site.gate_db("gate-1"), "SELECT state, answer FROM outbox") == [("done", "released")],
               20, "the release")
    assert rows(site.arbiter_db(), "SELECT answer FROM scans") == [("released",)]
    kinds = [k for (k,) in rows(site.arbiter_db(), "SELECT kind FROM stream ORDER BY seq")]
    assert kinds == ["redemption", "release"]  # granted after the gate gave up, then given back
    other = site.gate_cli("gate-2", "check", "--json", ticket)
    assert '"ADMIT"' in other.stdout, other.stderr  # not burned
    assert gate.finish() == 1


def test_with_the_broker_gone_and_deny_the_gate_refuses_at_once(site: Site) -> None:
    [ticket] = site.mint(1)
    site.broker.stop()
    result = site.gate_cli("gate-1", "check", "--json", "--set", "sync.offline_policy=deny", ticket,
                           QRGATE_SYNC_CONNECT_WAIT="0", QRGATE_SYNC_DRAIN_WAIT="0")
    assert result.returncode == 1 and '"reason": "offline"' in result.stdout
    assert "Traceback" not in result.stderr and "no answer from the arbiter" in result.stderr


def test_an_offline_gate_with_nothing_to_deliver_exits_at_once(site: Site) -> None:
    site.broker.stop()
    result = site.gate_cli("gate-1", "check", "not a ticket", QRGATE_SYNC_CONNECT_WAIT="0",
                           QRGATE_SYNC_DRAIN_WAIT="600")  # waiting for the drain would hit the 120 s timeout
    assert result.returncode == 1 and result.stdout.startswith("INVALID")
