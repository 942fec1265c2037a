"""The dashboard's payloads and topics: docs/mqtt.md's examples of them are test vectors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sync import wire
from sync.exc import BadMessage
from sync.gateside.discovery import discovery_configs, node_id
from sync.topics import Topics
from sync.wire import Override, override_request, parse_overrides, parse_scan

DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt.md"


def examples() -> dict[str, dict[str, Any]]:
    found = re.findall(r"<!-- dashboard-example: ([a-z-]+) -->\n```json\n(.*?)```", DOC.read_text(), re.S)
    return {name: json.loads(body) for name, body in found}


def test_the_doc_examples_decode_and_say_what_the_doc_says() -> None:
    found = examples()
    assert set(found) == {"scan", "overrides", "ha-config"}
    scan = parse_scan(wire.decode(json.dumps(found["scan"]).encode()), "gate-south-2")
    assert (scan.outcome, scan.first_gate, scan.decided_at > scan.at) == ("ALREADY_USED", "gate-north-1", True)
    [override] = parse_overrides(found["overrides"], "admin")
    assert override == Override("unredeem", "show7", "9f2", "admin", "alice", "scanned, but turned away at the door")
    assert parse_overrides(override_request([override]), "admin") == [override]
    configs = dict(discovery_configs("gate-north-1", "qrgate/status/gate-north-1"))
    assert configs[f"homeassistant/sensor/{node_id('gate-north-1')}/admitted/config"] == found["ha-config"]


def test_every_dashboard_topic_is_in_the_doc_table() -> None:
    text = DOC.read_text()
    t = Topics()
    for topic in (t.scan("{gate}"), t.request("override", "{admin}"), "homeassistant/sensor/qrgate_{node}/{sensor}/config"):
        assert f"| `{topic}` |" in text, topic
    assert (t.scans, t.statuses) == ("qrgate/scan/+", "qrgate/status/+")


@pytest.mark.parametrize("bad", [
    {"action": "erase", "event": "show7", "ticket": "9f2", "admin": "alice"},
    {"action": "admit", "event": "show7", "ticket": "9f2"},
    {"action": "admit", "event": "", "ticket": "9f2", "admin": "alice"},
])
def test_bad_overrides_are_bad_messages(bad: dict[str, Any]) -> None:
    with pytest.raises(BadMessage):
        parse_overrides({"v": 1, "overrides": [bad]}, "admin")


def test_a_scan_without_its_fields_is_a_bad_message() -> None:
    with pytest.raises(BadMessage):
        parse_scan({"v": 1, "scan_id": "x", "gate_id": "gate-1", "at": 1.0}, "gate-1")  # no outcome
