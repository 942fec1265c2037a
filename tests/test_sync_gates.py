"""Several gates, one arbiter, real processes on a real broker: each ticket is admitted exactly once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import Site, Watcher, feed_all, rows, wait_until  # noqa: E402

from sync import wire  # noqa: E402
from sync.link import RequestProperties  # noqa: E402
from sync.topics import Topics  # noqa: E402


def test_four_gates_check_the_same_500_tickets_and_admit_each_exactly_once(site: Site) -> None:
    site.start_arbiter()
    tickets = site.mint(500)
    watcher = Watcher(site.broker)
    ids = [f"gate-{n}" for n in range(1, 5)]
    gates = [site.start_gate(g) for g in ids]
    watcher.wait_online(*ids)
    # two pairs race on the same order: every ticket is contended at the arbiter, not only in the stream
    outputs = feed_all(gates, [tickets, tickets, tickets[::-1], tickets[::-1]])
    # the stream goes out in commit order although batches are committed and sent by two threads
    wire_seqs = lambda: [i["seq"] for m in watcher.on("qrgate/stream") for i in m["items"]]  # noqa: E731
    wait_until(lambda: len(wire_seqs()) >= 500, 20, "the whole stream on the wire")
    assert wire_seqs() == list(range(1, 501))
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
    watcher.wait_online("gate-1", "gate-2")
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


class Flood:
    """A gate's connection that keeps `in_flight` claims (each for a ticket of its own) at the arbiter."""

    def __init__(self, site: Site, gate: str, claims: int, in_flight: int) -> None:
        self.site, self.gate, self.left, self.in_flight = site, gate, claims, in_flight
        broker = site.broker
        self.answers: list[str] = []
        self.topics = Topics()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"flood-{gate}", protocol=mqtt.MQTTv5)
        self.client.on_message = self._answered
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(self.topics.reply(gate), qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def start(self) -> None:
        for _ in range(self.in_flight):
            self._claim()

    def _claim(self) -> None:
        if self.left <= 0:
            return
        self.left -= 1
        scan = uuid.uuid4().hex
        claim = self.site.claim(scan, f"{self.gate}-{scan[:8]}", self.gate)
        self.client.publish(self.topics.request("claim", self.gate), wire.encode(wire.request("claims", [claim])),
                            properties=RequestProperties(self.topics.reply(self.gate), scan.encode()))

    def _answered(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.answers += [a.answer for a in wire.parse_answers(wire.decode(msg.payload))]
        self._claim()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_under_load_the_stream_goes_out_in_commit_order(site: Site) -> None:
    """Batches commit on two threads, and one batch's messages go out while the next commits: the stream
    must still reach the wire in sequence order, and every claim be answered."""
    site.start_arbiter()
    watcher = Watcher(site.broker, "qrgate/stream")
    floods = [Flood(site, f"gate-{n}", claims=500, in_flight=16) for n in range(1, 7)]
    for flood in floods:
        flood.start()
    for flood in floods:
        wait_until(lambda f=flood: len(f.answers) == 500, 60, f"{flood.gate}'s answers")
        assert set(flood.answers) == {"won"}
        flood.close()
    seqs = lambda: [i["seq"] for m in watcher.on("qrgate/stream") for i in m["items"]]  # noqa: E731
    wait_until(lambda: len(seqs()) >= 3000, 20, "the whole stream on the wire")
    assert seqs() == list(range(1, 3001))
    assert len(watcher.on("qrgate/stream")) < 3000, "no two claims were ever committed together"
    watcher.close()
