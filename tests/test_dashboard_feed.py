"""What gates publish for dashboards and admins' MQTT tools: one message per decision, Home Assistant discovery."""

from __future__ import annotations

import json
import time

import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import Site, TcpProxy, Watcher, wait_until  # noqa: E402

from sync.dashboard.model import Model  # noqa: E402
from sync.exc import BadMessage  # noqa: E402
from sync.gateside.discovery import SENSORS, discovery_configs, node_id  # noqa: E402
from sync.wire import parse_scan  # noqa: E402

DECISION_FIELDS = {"outcome", "reason", "scan_id", "gate_id", "at", "event", "ticket_id", "seat", "generation",
                   "first_gate", "first_at", "provisional", "detail"}


def test_every_decision_is_published_on_the_gates_scan_topic(site: Site) -> None:
    site.start_arbiter()
    watcher = Watcher(site.broker)
    tickets = site.mint(2)
    gate = site.start_gate("gate-1")
    wait_until(lambda: (watcher.last("qrgate/status/gate-1") or {}).get("state") == "online", 20, "gate-1 online")
    decisions = [gate.check(t) for t in (tickets[0], tickets[0], "QG:NOPE", tickets[1])]
    wait_until(lambda: len(watcher.on("qrgate/scan/gate-1")) == 4, 5, "4 scan messages")

    published = watcher.on("qrgate/scan/gate-1")
    assert [m["scan_id"] for m in published] == [d["scan_id"] for d in decisions]
    for message, decision in zip(published, decisions, strict=True):
        assert set(message) == DECISION_FIELDS | {"v", "decided_at"}
        assert {k: message[k] for k in DECISION_FIELDS} == decision  # the same fields as `gate check --json`
        assert message["v"] == 1 and message["decided_at"] >= message["at"]
        assert parse_scan(message, "gate-1").outcome == decision["outcome"]
    assert [m["outcome"] for m in published] == ["ADMIT", "ALREADY_USED", "INVALID", "ADMIT"]
    assert not any(retained for topic, _m, retained in watcher.messages if topic.startswith("qrgate/scan/"))
    with pytest.raises(BadMessage):
        parse_scan(published[0], "gate-2")  # a gate cannot speak for another
    wait_until(lambda: (watcher.last("qrgate/status/gate-1") or {}).get("counters", {}).get("scans_sent") == 4, 10,
               "the status to count the 4 scans sent")
    assert gate.finish() in (0, 1)
    watcher.close()


def test_without_a_broker_the_decision_stands_and_the_scan_is_dropped_and_counted(site: Site) -> None:
    proxy = TcpProxy(site.broker.port)
    site.start_arbiter()
    watcher = Watcher(site.broker)
    tickets = site.mint(4)
    gate = site.start_gate("gate-1", broker_url=proxy.url)
    watcher.wait_online("gate-1")
    first = gate.check(tickets[0])
    assert first["outcome"] == "ADMIT" and not first["provisional"]
    wait_until(lambda: watcher.on("qrgate/scan/gate-1"), 10, "the first scan message")  # QoS 0: out before the cut
    proxy.cut()
    wait_until(lambda: watcher.last("qrgate/status/gate-1")["state"] == "offline", 10, "gate-1's last will")
    offline = [gate.check(t) for t in tickets[1:]]
    assert all(d["outcome"] == "ADMIT" and d["provisional"] for d in offline)  # the decisions stand
    proxy.heal()
    status = wait_until(lambda: (watcher.last("qrgate/status/gate-1") or {}).get("state") == "online"
                        and watcher.last("qrgate/status/gate-1"), 20, "gate-1 back online")
    counters = status["counters"]
    assert (counters.get("scans_sent"), counters.get("scans_dropped")) == (1, 3), counters
    assert (counters["connects"], counters["disconnects"], counters["offline_decisions"]) == (2, 1, 3), counters
    assert [m["scan_id"] for m in watcher.on("qrgate/scan/gate-1")] == [first["scan_id"]]
    model = Model()  # and the admins' page shows the 3 dropped
    model.status("gate-1", status, time.time(), retained=False)
    assert model.snapshot(time.time())["gates"][0]["dropped"] == 3
    assert gate.finish() == 0 and "Traceback" not in gate.stderr
    watcher.close()
    proxy.close()


def test_home_assistant_discovery_is_announced_retained_when_switched_on(site: Site) -> None:
    site.start_arbiter()
    gate = site.start_gate("gate.east-1", QRGATE_SYNC_HA_DISCOVERY="true")
    plain = site.start_gate("gate-2")
    watcher = Watcher(site.broker)
    wait_until(lambda: (watcher.last("qrgate/status/gate.east-1") or {}).get("state") == "online", 20, "online")
    node = node_id("gate.east-1")
    assert node.startswith("qrgate_gate_east-1_") and node != node_id("gate_east-1")
    topics = [f"homeassistant/sensor/{node}/{key}/config" for key, *_ in SENSORS]
    late = Watcher(site.broker, "homeassistant/#")  # subscribes after the announcement: retained copies
    wait_until(lambda: all(late.on(t) for t in topics), 10, "every sensor config")
    for topic, _payload, retained in late.messages:
        assert retained and topic in topics
    for topic in topics:
        config = late.last(topic)
        assert config is not None
        assert {"name", "unique_id", "state_topic", "value_template", "device"} <= set(config)
        assert config["state_topic"] == "qrgate/status/gate.east-1"
        assert config["unique_id"] == f"{node}_{topic.split('/')[3]}"
        assert config["device"]["identifiers"] == [node]
    assert not any(t.startswith("homeassistant/sensor/qrgate_gate-2") for t, _m, _r in late.messages)
    raw = dict(late.raw)
    assert all(json.loads(raw[t]) == late.last(t) for t in topics)  # plain JSON, as Home Assistant reads it
    assert discovery_configs("gate.east-1", "qrgate/status/gate.east-1") == [(t, late.last(t)) for t in topics]
    for proc in (gate, plain):
        assert proc.finish() in (0, 1)
    late.close()
    watcher.close()
