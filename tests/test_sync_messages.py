"""Duplicated, reordered and replayed messages change nothing; the last will; revocations; TCP_NODELAY."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import GateProc, Mosquitto, Site, Watcher, rows, wait_until  # noqa: E402

from sync.link import Broker, Link  # noqa: E402


def snapshot(db: sqlite3.Connection, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(rows(db, f"SELECT * FROM {t}"), key=repr) for t in tables}


GATE_TABLES = ("redeemed", "revoked", "conflicts", "outbox", "sync_state", "audit")
ARBITER_TABLES = ("claims", "scans", "conflicts", "revoked", "stream")


class Replier:
    """A raw paho client that replays requests exactly as gate-1 sent them (answers on gate-1's own reply
    topic, where the arbiter sends them; a request asking elsewhere is refused) and collects the answers
    to its own correlation ids."""

    PREFIX = b"replay-"

    def __init__(self, broker: Mosquitto, gate_id: str) -> None:
        self.answers: list[dict[str, Any]] = []
        self.got = threading.Condition()
        self.reply_topic = f"qrgate/reply/{gate_id}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="replayer", protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(self.reply_topic, qos=1)  # sent before any replay: the broker routes in order
        self.client.loop_start()

    def _message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        correlation = getattr(msg.properties, "CorrelationData", b"") or b""
        if not correlation.startswith(self.PREFIX):
            return  # the gate's own answers
        with self.got:
            self.answers.append(json.loads(msg.payload))
            self.got.notify_all()

    def ask(self, topic: str, payload: bytes, n: int) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        props.CorrelationData = self.PREFIX + str(n).encode()
        self.client.publish(topic, payload, qos=1, properties=props).wait_for_publish(5)

    def wait(self, n: int, timeout: float) -> bool:
        with self.got:
            return self.got.wait_for(lambda: len(self.answers) >= n, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_duplicated_reordered_and_replayed_messages_change_nothing(site: Site) -> None:
    site.start_arbiter()
    tickets = site.mint(20)
    watcher = Watcher(site.broker)
    gate = site.start_gate("gate-1")
    watcher.wait_online("gate-1")
    assert [gate.check(t)["outcome"] for t in tickets[:15]] == ["ADMIT"] * 15
    assert site.gate_cli("admin", "revoke", "t19", "--event", "show7").returncode == 0
    head = rows(site.arbiter_db(), "SELECT max(seq) FROM stream")[0][0]
    wait_until(lambda: rows(site.gate_db("gate-1"), "SELECT value FROM sync_state WHERE key = 'seq'") == [
        (str(head),)], 10, "gate-1 to catch up")
    gate_before = snapshot(site.gate_db("gate-1"), GATE_TABLES)
    arbiter_before = snapshot(site.arbiter_db(), ARBITER_TABLES)
    claims = [p for t, p in watcher.raw if t == "qrgate/claim/gate-1"]
    streams = [p for t, p in watcher.raw if t == "qrgate/stream"]
    replies = [p for t, p in watcher.raw if t == "qrgate/reply/gate-1"]
    assert len(claims) == 15 and streams and replies

    replier = Replier(site.broker, "gate-1")
    for n, payload in enumerate(claims + claims[::-1]):  # every claim twice, the second time in reverse order
        replier.ask("qrgate/claim/gate-1", payload, n)
    for payload in streams[::-1] + streams:  # the stream reordered, duplicated and replayed
        watcher.publish("qrgate/stream", payload)
    for payload in replies:  # answers nobody waits for any more
        watcher.publish("qrgate/reply/gate-1", payload)
    forged = {"v": 1, "epoch": json.loads(streams[0])["epoch"],
              "items": [{"seq": head + 5, "kind": "redemption", "event": "show7", "ticket": "t15", "gen": 0,
                         "scan": "forged", "gate": "gate-9", "at": 1.0}]}
    watcher.publish("qrgate/stream", json.dumps(forged).encode())  # past a gap: never applied, only caught up
    assert replier.wait(30, 10), f"only {len(replier.answers)} of the 30 replayed claims were answered"
    replier.close()
    assert len(replier.answers) == 30 and not [a for a in replier.answers if "error" in a], replier.answers
    original = {a["results"][0]["scan"]: a["results"][0] for a in map(json.loads, replies)
                if a.get("kind") == "claim"}
    assert len(original) == 15 and {a["answer"] for a in original.values()} == {"won"}
    replayed = Counter(a["results"][0]["scan"] for a in replier.answers)
    assert replayed == Counter({scan: 2 for scan in original})  # each replay reached the arbiter, twice
    assert all(a["results"][0] == original[a["results"][0]["scan"]] for a in replier.answers)  # the same answer
    wait_until(lambda: (watcher.last("qrgate/status/gate-1") or {}).get("counters", {}).get("stream_gaps"), 10,
               "gate-1 to see the gap")
    wait_until(lambda: (watcher.last("qrgate/status/gate-1") or {}).get("counters", {}).get("late_replies"), 10,
               "gate-1 to count the stale replies")

    assert snapshot(site.gate_db("gate-1"), GATE_TABLES) == gate_before
    assert snapshot(site.arbiter_db(), ARBITER_TABLES) == arbiter_before
    assert gate.check(tickets[15])["outcome"] == "ADMIT"  # and the gate still works
    assert gate.check(tickets[19])["outcome"] == "REVOKED"
    assert gate.finish() == 1
    watcher.close()


def test_last_will_marks_a_killed_gate_offline_and_the_status_carries_counters(site: Site) -> None:
    site.start_arbiter()
    [ticket] = site.mint(1)
    watcher = Watcher(site.broker)
    gate = site.start_gate("gate-1")
    watcher.wait_online("gate-1")
    assert gate.check(ticket)["outcome"] == "ADMIT"
    status = wait_until(lambda: (watcher.last("qrgate/status/gate-1") or {}).get("decisions", {}).get("ADMIT")
                        and watcher.last("qrgate/status/gate-1"), 10, "a status with the admission")
    assert status["counters"]["claims"] == 1 and status["arbiter"] == "online" and status["outbox"] == {}
    gate.kill()
    wait_until(lambda: watcher.last("qrgate/status/gate-1")["state"] == "offline", 10, "the last will")
    assert watcher.last("qrgate/status/gate-1")["reason"] == "lost"
    late = Watcher(site.broker, "qrgate/status/#")  # the will is retained: a dashboard starting now sees it
    wait_until(lambda: late.last("qrgate/status/gate-1"), 10, "the retained status")
    assert late.messages[0][2] and late.last("qrgate/status/gate-1")["state"] == "offline"
    clean = site.start_gate("gate-2")
    watcher.wait_online("gate-2")
    assert clean.finish() == 0
    assert watcher.last("qrgate/status/gate-2")["reason"] == "stopped"
    late.close()
    watcher.close()


def test_revocations_reach_every_gate_through_the_stream_also_one_that_was_away(site: Site) -> None:
    site.start_arbiter()
    tickets = site.mint(3)
    watcher = Watcher(site.broker)
    gate = site.start_gate("gate-1")
    watcher.wait_online("gate-1")
    revoked = site.gate_cli("admin", "revoke", "t1", "--event", "show7", "--reason", "refunded", "--admin", "bob")
    assert revoked.returncode == 0 and "distributed by the arbiter" in revoked.stdout, revoked.stderr
    wait_until(lambda: rows(site.gate_db("gate-1"), "SELECT reason FROM revoked") == [("refunded",)], 10,
               "the revocation to reach gate-1")
    assert gate.check(tickets[1])["outcome"] == "REVOKED"
    assert gate.finish() == 1
    away = site.gate_cli("gate-2", "check", "--json", tickets[1], tickets[2])  # started after the revocation
    assert [json.loads(line)["outcome"] for line in away.stdout.splitlines()] == ["REVOKED", "ADMIT"]
    assert rows(site.arbiter_db(), "SELECT event, ticket_id, by FROM revoked") == [("show7", "t1", "admin")]
    [(body,)] = rows(site.arbiter_db(), "SELECT body FROM stream WHERE kind = 'revocation'")
    assert (json.loads(body)["by"], json.loads(body)["admin"]) == ("admin", "bob")  # the sender, and the person
    watcher.close()


def test_every_link_socket_has_tcp_nodelay_also_after_a_reconnect(broker: Mosquitto) -> None:
    link = Link(Broker.parse(broker.url), "nodelay-test", subscriptions=["x/y"], on_message=lambda _m: None,
                reconnect=(1, 1))
    link.start()
    try:
        assert link.wait_ready(10)
        assert link.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        broker.stop()
        wait_until(lambda: not link.ready, 10, "the link to notice")
        broker.start()
        assert link.wait_ready(15)
        assert link.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert link.counters["connects"] == 2 and link.counters["nodelay_failed"] == 0
    finally:
        link.stop()


def test_a_store_fault_shows_in_the_retained_status_and_clears_when_the_disk_recovers(site: Site,
                                                                                       tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "qrgate-sync-test", str(disk)], check=True)
    try:
        site.start_arbiter()
        tickets = site.mint(200)
        watcher = Watcher(site.broker)
        gate = GateProc(["check", "--json", "--gate-id", "gate-1"], site.env(disk / "home"))
        site.procs.append(gate)
        watcher.wait_online("gate-1")
        assert gate.check(tickets[0])["outcome"] == "ADMIT"
        with contextlib.suppress(OSError), open(disk / "ballast", "wb") as ballast:  # ENOSPC is the point
            while True:
                ballast.write(b"\0" * 65536)
                ballast.flush()
        faults = [d for d in (gate.check(t) for t in tickets[1:60]) if d["outcome"] == "FAULT"]
        assert faults and faults[0]["reason"] == "store_fault"
        status = wait_until(lambda: (watcher.last("qrgate/status/gate-1") or {}).get("state") == "fault"
                            and watcher.last("qrgate/status/gate-1"), 10, "the fault status")
        assert "full" in status["detail"]
        (disk / "ballast").unlink()
        denied = tickets[int(faults[0]["ticket_id"][1:])]  # ids are t0, t1, ...
        assert gate.check(denied)["outcome"] == "ADMIT"  # the denied scan burned nothing
        wait_until(lambda: watcher.last("qrgate/status/gate-1")["state"] == "online", 10, "the status to clear")
        assert gate.finish() in (0, 1) and "Traceback" not in gate.stderr
        watcher.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
