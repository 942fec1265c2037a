"""Failing over with real processes: a gate keeps applying the stream while it waits for an arbiter that died."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import Site, TcpProxy, Watcher, wait_until  # noqa: E402

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
