"""The arbiter's front door (sync/arbiter/intake.py): what it drops unread, what it decodes where, in turn."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest

from sync import wire
from sync.arbiter.intake import Intake, Raw
from sync.counters import Counters


def message(sender: str, size: int) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(topic=f"qrgate/claim/{sender}".encode())
    msg.payload = b"x" * size
    return msg


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def parts() -> Iterator[tuple[Intake, list[str], list[str], Clock, threading.Event]]:
    now: list[str] = []
    later: list[str] = []
    go, taken = threading.Event(), threading.Event()
    clock = Clock()

    def slow(raw: Raw) -> None:
        taken.set()
        go.wait(10)  # the decoder thread holds on to its first message until the test lets it go
        later.append(raw.topic.rpartition("/")[2] + f":{len(raw.payload)}")
    intake = Intake(lambda raw: now.append(raw.topic), slow, Counters(), small=100, depth=3,
                    message_rate=10, message_burst=10, byte_rate=10_000, byte_burst=10_000, clock=clock)
    intake.start()
    intake.taken = taken  # type: ignore[attr-defined]
    yield intake, now, later, clock, go
    go.set()
    intake.stop()


def test_small_requests_are_handled_at_once_and_oversized_ones_dropped_unread(parts) -> None:  # type: ignore[no-untyped-def]
    intake, now, later, _, _ = parts
    assert intake.screen(message("gate-1", 50)) and now == ["qrgate/claim/gate-1"]
    assert intake.screen(message("gate-1", wire.MAX_PAYLOAD + 1))
    assert intake.counters["dropped_oversize"] == 1 and later == [] and len(now) == 1


def test_a_sender_over_its_rate_is_dropped_and_the_others_are_not(parts) -> None:  # type: ignore[no-untyped-def]
    intake, now, _, clock, _ = parts
    for _ in range(15):
        intake.screen(message("flood", 10))
    assert intake.counters["dropped_over_rate"] == 5  # a burst of 10, then nothing until the bucket refills
    intake.screen(message("honest", 10))
    assert now.count("qrgate/claim/honest") == 1
    clock.t += 0.5  # half a second refills 5 messages
    for _ in range(6):
        intake.screen(message("flood", 10))
    assert intake.counters["dropped_over_rate"] == 6
    assert intake.screen(message("bytes", 5_000)) and intake.screen(message("bytes", 5_000))
    intake.screen(message("bytes", 50))  # its byte bucket is empty: dropped though it is small
    assert intake.counters["dropped_over_rate"] == 7


def test_large_requests_wait_in_turn_one_sender_at_a_time(parts) -> None:  # type: ignore[no-untyped-def]
    intake, now, later, _, go = parts
    intake.screen(message("drain", 101))
    assert intake.taken.wait(5)  # the decoder thread holds it: the next three wait, a fifth is one too many
    for size in (102, 103, 104):
        intake.screen(message("drain", size))
    assert intake.screen(message("drain", 105)) and intake.counters["dropped_queue_full"] == 1
    intake.screen(message("other", 200))
    go.set()
    deadline = threading.Event()
    for _ in range(100):
        if len(later) == 5:
            break
        deadline.wait(0.05)
    # the other sender is not served after the whole backlog of the first, but in turn
    assert later == ["drain:101", "drain:102", "other:200", "drain:103", "drain:104"]
    assert now == []
