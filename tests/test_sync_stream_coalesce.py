"""The arbiter coalesces its stream (sync/arbiter/service.py, STREAM_EVERY): claims answered one batch at a time
go out as fewer stream messages than batches, gap-free, in order, each item after its answer; the status's head
never runs ahead of what was streamed; a stop streams what waits.  An arbiter in this process on a real broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import Site, Watcher, wait_until  # noqa: E402

from sync import wire  # noqa: E402
from sync.arbiter.service import Arbiter  # noqa: E402
from sync.arbiter.store import ArbiterStore  # noqa: E402
from sync.arbiter.trust import ClaimCheck  # noqa: E402
from sync.link import Broker, RequestProperties  # noqa: E402
from sync.topics import Topics  # noqa: E402


class Running:
    """An Arbiter on its own thread (run until `stop`), on the site's broker and a SQLite store."""

    def __init__(self, site: Site, tmp_path: Path, **kwargs: Any) -> None:
        self.store = ArbiterStore.open(tmp_path / "arbiter.db")
        self.arbiter = Arbiter(self.store, Broker.parse(site.broker.url), Topics(),
                               ClaimCheck.load(site.keys, None), **kwargs)
        self.stop_event, ready = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self.arbiter.run, args=(self.stop_event, ready.set), daemon=True)
        self.thread.start()
        assert ready.wait(20), "the arbiter did not come online"

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.store.close()


@pytest.fixture
def running(site: Site, tmp_path: Path) -> Iterator[list[Running]]:
    made: list[Running] = []
    yield made
    for r in made:
        if r.thread.is_alive():
            r.stop()


class OneAtATime:
    """A gate's connection with one claim at the arbiter at a time: each claim is a batch of its own."""

    def __init__(self, site: Site, gate: str) -> None:
        self.site, self.gate, self.topics = site, gate, Topics()
        self.answered = threading.Event()
        self.answers: list[wire.Answer] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"one-{gate}", protocol=mqtt.MQTTv5)
        self.client.on_message = self._answer
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", site.broker.port)
        self.client.subscribe(self.topics.reply(gate), qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def claim(self) -> wire.Answer:
        scan = uuid.uuid4().hex
        self.answered.clear()
        claim = self.site.claim(scan, f"{self.gate}-{scan[:8]}", self.gate)
        self.client.publish(self.topics.request("claim", self.gate), wire.encode(wire.request("claims", [claim])),
                            properties=RequestProperties(self.topics.reply(self.gate), scan.encode()))
        assert self.answered.wait(10), "no answer"
        return self.answers[-1]

    def _answer(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.answers += wire.parse_answers(wire.decode(msg.payload))
        self.answered.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def streamed(watcher: Watcher) -> list[int]:
    return [int(i["seq"]) for m in watcher.on("qrgate/stream") for i in m["items"]]


def test_claims_answered_one_batch_at_a_time_go_out_as_fewer_stream_messages_in_order(
        site: Site, tmp_path: Path, running: list[Running]) -> None:
    running.append(Running(site, tmp_path, stream_every=0.2))
    watcher = Watcher(site.broker)
    gate = OneAtATime(site, "gate-1")
    began = time.monotonic()
    answers = [gate.claim() for _ in range(40)]  # one claim at the arbiter at any moment: 40 batches
    took = time.monotonic() - began
    assert {a.answer for a in answers} == {"won"}
    wait_until(lambda: len(streamed(watcher)) >= 40, 10, "every item on the stream")
    assert streamed(watcher) == list(range(1, 41))  # gap-free, in order
    messages = len(watcher.on("qrgate/stream"))
    print(f"40 batches in {took:.2f} s: {messages} stream messages")
    assert messages < 40, "one stream message per batch: not coalesced"
    assert messages <= took / 0.2 + 2  # at most one every stream_every (and the one that waited when it ended)
    # each item went out after its answer (the arbiter published both, in this order, on one connection)
    order = [(t, m) for t, m, _ in watcher.messages if t in ("qrgate/stream", "qrgate/reply/gate-1")]
    answered: set[str] = set()
    for topic, message in order:
        if topic == "qrgate/stream":
            assert {i["scan"] for i in message["items"]} <= answered, "a stream item before its answer"
        else:
            answered |= {r["scan"] for r in message["results"]}
    gate.close()
    watcher.close()


def test_a_lone_claim_after_a_quiet_spell_is_streamed_at_once(site: Site, tmp_path: Path,
                                                             running: list[Running]) -> None:
    running.append(Running(site, tmp_path, stream_every=5.0))
    watcher = Watcher(site.broker)
    gate = OneAtATime(site, "gate-1")
    gate.claim()
    wait_until(lambda: streamed(watcher) == [1], 2, "the first item at once, not after stream_every")
    gate.close()
    watcher.close()


def test_the_status_head_never_overtakes_the_stream(site: Site, tmp_path: Path, running: list[Running]) -> None:
    running.append(Running(site, tmp_path, stream_every=30.0, status_every=0.3))  # items would wait 30 s
    watcher = Watcher(site.broker)
    gate = OneAtATime(site, "gate-1")
    for _ in range(5):
        gate.claim()
    wait_until(lambda: (watcher.last("qrgate/arbiter/status") or {}).get("head") == 5, 10, "a status with head 5")
    assert streamed(watcher) == [1, 2, 3, 4, 5]  # the first at once, the others before the status
    seen = 0
    for topic, message, _retained in watcher.messages:
        if topic == "qrgate/stream":
            seen = max(seen, *(int(i["seq"]) for i in message["items"]))
        elif topic == "qrgate/arbiter/status" and "head" in message:
            assert message["head"] <= seen, f"the status said head {message['head']} with {seen} streamed"
    gate.close()
    watcher.close()


def test_a_stop_streams_what_waits_before_offline(site: Site, tmp_path: Path, running: list[Running]) -> None:
    arbiter = Running(site, tmp_path, stream_every=30.0, status_every=30.0)  # nothing else would stream them
    running.append(arbiter)
    watcher = Watcher(site.broker)
    gate = OneAtATime(site, "gate-1")
    for _ in range(4):
        gate.claim()
    assert streamed(watcher) == [1]  # the others wait for stream_every
    arbiter.stop()
    wait_until(lambda: (watcher.last("qrgate/arbiter/status") or {}).get("state") == "offline", 10, "offline")
    assert streamed(watcher) == [1, 2, 3, 4]
    order = [(t, m.get("state")) for t, m, _r in watcher.messages]
    assert max(n for n, (t, _s) in enumerate(order) if t == "qrgate/stream") < \
        order.index(("qrgate/arbiter/status", "offline")), "offline before the waiting items were streamed"
    gate.close()
    watcher.close()


def test_stream_every_is_well_under_a_gates_gathering() -> None:
    """Items of two instances, each publishing apart, still reach a gate within its gathering of the stream."""
    from sync.arbiter.service import STREAM_EVERY
    from sync.gateside.session import STREAM_EVERY as GATHER

    assert 0 < STREAM_EVERY <= GATHER / 2


def test_the_arbiter_process_streams_fewer_messages_than_batches(site: Site) -> None:
    """`gate arbiter` as run (STREAM_EVERY): 60 claims one at a time, 60 batches, fewer stream messages."""
    site.start_arbiter()
    watcher = Watcher(site.broker, "qrgate/stream")
    gate = OneAtATime(site, "gate-1")
    assert {gate.claim().answer for _ in range(60)} == {"won"}
    wait_until(lambda: len(streamed(watcher)) >= 60, 10, "every item on the stream")
    assert streamed(watcher) == list(range(1, 61))
    assert len(watcher.on("qrgate/stream")) < 60, "one stream message per batch"
    gate.close()
    watcher.close()
