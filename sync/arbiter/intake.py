"""The arbiter's front door: what one gate credential's flood can cost the others (docs/security.md).

What a caller may rely on:

* `Intake.screen(msg)` runs on the network thread for every request before
  it is decoded, and costs a dict lookup and a little arithmetic.  It drops,
  unread and counted: a payload over sync.wire.MAX_PAYLOAD
  (``dropped_oversize``), and whatever a sender sends beyond its rate in
  messages or in bytes (``dropped_over_rate``; a token bucket per sender, the
  sender being the topic's last level, which the broker's ACL binds to the
  credential).
* A small request (every online claim is one) is handed to `now` at once,
  on the network thread: a claim never waits behind another gate's drain.
  A large one (an outbox drain, or a flood) is queued per
  sender, at most `depth` a sender (``dropped_queue_full`` beyond), and a
  decoder thread takes the queues in turn, one message a sender at a time,
  so one sender's backlog delays no other's, and hands each to `later`.
* Handlers never raise into the decoder thread: an error is counted
  (``intake_errors``) and logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from sync import wire
from sync.counters import Counters, Quiet

log = logging.getLogger(__name__)

#: a request at most this large is decoded on the network thread (a claim with a holder code is ~1.3 KB)
SMALL = 16 * 1024
#: per sender: messages a second, and the burst allowed above it
MESSAGE_RATE, MESSAGE_BURST = 2000.0, 4000.0
#: per sender: bytes a second, and the burst allowed (a drain of 200 claims with holder codes is ~250 KB)
BYTE_RATE, BYTE_BURST = 2 * 1024 * 1024.0, 4 * 1024 * 1024.0
#: senders with buckets of their own; beyond, new senders share one (the ACL bounds the real number)
MAX_SENDERS = 4096


@dataclass
class Bucket:
    """A token bucket: `take(n)` spends n tokens if it holds them, refilled at `rate` up to `burst`."""

    rate: float
    burst: float
    level: float
    at: float

    def take(self, n: float, now: float) -> bool:
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level < n:
            return False
        self.level -= n
        return True


@dataclass(frozen=True)
class Raw:
    """A large request as it came off the wire, waiting for the decoder thread."""

    topic: str
    payload: bytes
    response_topic: str | None
    correlation: bytes | None


class Intake:
    """Screen on the network thread, decode large requests on a thread of its own; `start`, then `stop`."""

    def __init__(self, now: Callable[[Raw], None], later: Callable[[Raw], None], counters: Counters, *,
                 small: int = SMALL, depth: int = 8,
                 message_rate: float = MESSAGE_RATE, message_burst: float = MESSAGE_BURST,
                 byte_rate: float = BYTE_RATE, byte_burst: float = BYTE_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.now, self.later = now, later
        self.counters = counters
        self.small = small
        self.depth = depth
        self.rates = (message_rate, message_burst, byte_rate, byte_burst)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[Bucket, Bucket]] = OrderedDict()
        self._queues: OrderedDict[str, deque[Raw]] = OrderedDict()
        self._cond = threading.Condition()
        self._stopping = False
        self._quiet = Quiet()
        self._thread = threading.Thread(target=self._run, name="arbiter-intake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the network thread ---------------------------------------------------------------------------
    def screen(self, msg: mqtt.MQTTMessage) -> bool:
        """Take the message (the Link's `screen`: always True): dropped, handled now, or queued."""
        size = len(msg.payload)
        sender = msg.topic.rpartition("/")[2]
        if size > wire.MAX_PAYLOAD:
            return self._drop("dropped_oversize", sender, f"{size} bytes, over {wire.MAX_PAYLOAD}")
        messages, volume = self._bucket(sender)
        now = self.clock()
        if not messages.take(1, now) or not volume.take(size, now):
            return self._drop("dropped_over_rate", sender, "over its message or byte rate")
        props = msg.properties
        raw = Raw(msg.topic, bytes(msg.payload), getattr(props, "ResponseTopic", None),
                  getattr(props, "CorrelationData", None))
        if size <= self.small:
            self.now(raw)
            return True
        with self._cond:
            queue = self._queues.setdefault(sender, deque())
            if len(queue) >= self.depth:
                return self._drop("dropped_queue_full", sender, f"{self.depth} large requests already waiting")
            queue.append(raw)
            self._cond.notify()
        return True

    def _bucket(self, sender: str) -> tuple[Bucket, Bucket]:
        pair = self._buckets.get(sender)
        if pair is None:
            if len(self._buckets) >= MAX_SENDERS:
                sender = "*"  # an anonymous broker lets anyone pick a name: they share one bucket
                pair = self._buckets.get(sender)
            if pair is None:
                now = self.clock()
                m_rate, m_burst, b_rate, b_burst = self.rates
                pair = (Bucket(m_rate, m_burst, m_burst, now), Bucket(b_rate, b_burst, b_burst, now))
                self._buckets[sender] = pair
        return pair

    def _drop(self, counter: str, sender: str, why: str) -> bool:
        self.counters.add(counter)
        if self._quiet(counter):
            log.warning("dropping requests from %s unread: %s (counted in %s; logged once every %.0f s)",
                        sender, why, counter, self._quiet.every)
        return True

    # -- the decoder thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queues and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                sender, queue = self._queues.popitem(last=False)  # the sender waiting longest
                raw = queue.popleft()
                if queue:
                    self._queues[sender] = queue  # back of the line: one message a sender per turn
            try:
                self.later(raw)
            except Exception as exc:  # the thread must outlive any one request
                self.counters.add("intake_errors")
                log.exception("a request from %s could not be handled: %s", sender, exc)
