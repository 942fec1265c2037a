"""What a buggy or hostile gate credential cannot do to the arbiter (found in review, fixed, kept fixed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import Site, Watcher, wait_until  # noqa: E402

from sync import wire  # noqa: E402
from sync.arbiter.store import ArbiterStore  # noqa: E402
from sync.exc import BadMessage  # noqa: E402


def test_a_gate_cannot_release_another_gates_win(tmp_path: Path) -> None:
    store = ArbiterStore.open(tmp_path / "a.db")
    (won,), _ = store.apply([wire.Claim("scanB", "show7", "9f2", "gate-b", 1.0)])
    assert won.answer == "won"
    (refused,), stream = store.apply([wire.Release("scanB", "show7", "9f2", "gate-a")])  # scan id read off the stream
    assert refused.answer == "refused" and stream == []
    (again,), _ = store.apply([wire.Claim("scanC", "show7", "9f2", "gate-c", 2.0)])
    assert again.answer == "lost" and again.first is not None and again.first.gate == "gate-b"
    (own,), stream = store.apply([wire.Release("scanB", "show7", "9f2", "gate-b")])  # its own gate may
    assert own.answer == "released" and [i["kind"] for i in stream] == ["release"]
    store.close()


def test_the_arbiter_refuses_an_older_generation_and_a_replay_gets_the_same_answer(tmp_path: Path) -> None:
    store = ArbiterStore.open(tmp_path / "a.db")
    store.apply([wire.Supersession("show7", "9f2", 2, "boxoffice")])
    old = wire.Claim("alice", "show7", "9f2", "gate-a", 1.0, gen=1)
    (answer,), stream = store.apply([old])
    assert (answer.answer, stream) == ("superseded", [])
    assert "generation 2" in answer.detail
    assert store.apply([old])[0][0].answer == "superseded"
    (bob,), _ = store.apply([wire.Claim("bob", "show7", "9f2", "gate-b", 2.0, gen=2)])
    assert bob.answer == "won"
    store.apply([wire.Supersession("show7", "9f2", 1, "boxoffice")])  # a lower one later changes nothing
    assert store.apply([wire.Claim("alice2", "show7", "9f2", "gate-a", 3.0, gen=1)])[0][0].answer == "superseded"
    store.close()


def test_integers_past_sqlites_range_are_bad_messages() -> None:
    claim = {"scan": "s1", "event": "show7", "ticket": "9f2", "gen": 2**64, "gate": "g", "at": 1.0}
    with pytest.raises(BadMessage, match="gen"):
        wire.parse_claims({"v": 1, "claims": [claim]})


def request(client: mqtt.Client, topic: str, payload: dict[str, object], response_topic: str) -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = b"c0ffee"
    client.publish(topic, json.dumps(payload).encode(), qos=1, properties=props).wait_for_publish(5)


@pytest.fixture
def at_arbiter(site: Site) -> Iterator[tuple[mqtt.Client, Watcher]]:
    """A running arbiter, a raw client to send it requests as any gate, and a watcher of everything."""
    site.event_key("show/7 #2")  # an event name that is no topic level (the arbiter loads its keys at start)
    site.start_arbiter()
    watcher = Watcher(site.broker)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="raw-gate", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", site.broker.port)
    client.loop_start()
    yield client, watcher
    client.loop_stop()
    watcher.close()


def test_replies_go_only_to_the_senders_reply_topic_and_a_bad_claim_spoils_no_batch(
        site: Site, at_arbiter: tuple[mqtt.Client, Watcher]) -> None:
    client, watcher = at_arbiter
    claim = site.claim("s-steer", "t1", "gate-x").to_json()
    request(client, "qrgate/claim/gate-x", {"v": 1, "claims": [claim]}, "qrgate/stream")
    huge = {**site.claim("s-huge", "t2", "gate-x").to_json(), "gen": 2**64}
    request(client, "qrgate/claim/gate-x", {"v": 1, "claims": [huge]}, "qrgate/reply/gate-x")
    good = site.claim("s-good", "t3", "gate-x").to_json()
    request(client, "qrgate/claim/gate-x", {"v": 1, "claims": [good]}, "qrgate/reply/gate-x")
    try:
        replies = wait_until(lambda: len(watcher.on("qrgate/reply/gate-x")) >= 3
                             and watcher.on("qrgate/reply/gate-x"), 5, "three replies on the sender's own topic")
    except AssertionError:
        raise AssertionError(str(watcher.messages)) from None
    assert [bool(r.get("error")) for r in replies[:2]] == [True, True]  # steering refused, huge refused
    assert replies[2]["results"][0]["answer"] == "won"  # the arbiter kept serving
    assert all("error" not in m and "results" not in m for m in watcher.on("qrgate/stream"))


def test_a_conflict_on_an_event_that_is_no_topic_level_is_still_answered_and_streamed(
        site: Site, at_arbiter: tuple[mqtt.Client, Watcher]) -> None:
    """Its conflict cannot have a topic of its own (qrgate/conflict/{event}): that once lost the whole batch's
    answers and stream message, after their commit."""
    client, watcher = at_arbiter
    first = site.claim("s-first", "t1", "gate-a", event="show/7 #2")
    request(client, "qrgate/claim/gate-a", wire.request("claims", [first]), "qrgate/reply/gate-a")
    late = site.claim("s-late", "t1", "gate-b", event="show/7 #2", admitted=True)
    request(client, "qrgate/claim/gate-b", wire.request("claims", [late]), "qrgate/reply/gate-b")
    answer = wait_until(lambda: watcher.on("qrgate/reply/gate-b"), 5, "gate-b's answer")[0]["results"][0]
    assert (answer["answer"], answer["conflict"]) == ("lost", True)
    wait_until(lambda: "conflict" in [i["kind"] for m in watcher.on("qrgate/stream") for i in m["items"]], 5,
               "the conflict on the stream")
    after = site.claim("s-after", "t9", "gate-a")
    request(client, "qrgate/claim/gate-a", wire.request("claims", [after]), "qrgate/reply/gate-a")
    wait_until(lambda: len(watcher.on("qrgate/reply/gate-a")) == 2, 5, "the arbiter still serving")
    assert watcher.on("qrgate/reply/gate-a")[1]["results"][0]["answer"] == "won"
    status = wait_until(lambda: (watcher.last("qrgate/arbiter/status") or {}).get("counters", {})
                        .get("conflicts_not_on_topic"), 15, "the skipped conflict topic counted")
    assert status == 1
