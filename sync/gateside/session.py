"""A gate's link to the arbiter: claims, the outbox drain, the redemption stream, the retained status.

What a caller may rely on:

* `claim` asks the arbiter and waits at most the given budget; it returns
  None (never raises) when there is no usable answer.  `can_claim` is False
  while the broker is gone, while the arbiter's retained status (or last
  will) says it is offline, and after 3 claims in a row went unanswered
  (until any answer comes back): a waiting person is then not made to wait
  for an answer that will not come.  `should_claim` is what the claimers ask:
  `can_claim`, or, while only unanswered claims make it False, one scan every
  PROBE_EVERY s, whose claim (waiting its budget) tests whether the arbiter
  answers again: the gate is back at the first answer after a heal.  When, with those claims (or a worker's
  request) unanswered, nothing at all came in for RENEW_SILENCE s, the connection has gone silent, not just the arbiter: it is made
  again at once (`Link.renew`, at most once per RENEW_EVERY s unless an
  answer came since), so the gate is back within about a second of a heal
  instead of when TCP's backed-off retransmissions get through.
* One thread applies the live stream in sequence order (what arrives
  within `STREAM_EVERY` of a batch is applied with it, in one transaction:
  one commit instead of one per redemption, and the decision thread's own
  commit seldom waits behind one), whatever else the gate is waiting for.
  A worker thread catches up from the stored position on every (re)connect,
  on a gap and whenever the arbiter's head is ahead, drains the outbox
  whenever it is online, and publishes the retained status (online, fault;
  offline on `close`, by last will if the process dies).  When an arbiter
  instance's status changes, the worker's waiting request is given up at once
  (asked again of whoever answers now) instead of waiting out REQUEST_TIMEOUT.
  Both threads' errors are counted and reported in the status, never raised.
* `close` drains the outbox and catches up for at most `drain_wait` seconds,
  then publishes "offline" and disconnects.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from gate.clock import TimeTrust
from gate.exc import StoreError
from gate.ledger import STALE_GRACE, Ledger, Ruling
from sync import wire
from sync.counters import Counters
from sync.exc import BadMessage, SyncError
from sync.follower import REQUEST_TIMEOUT, StreamFollower
from sync.gateside.terms import claim_of, release_of, ruling_of
from sync.link import Broker, Credentials, Inbound, Link
from sync.topics import Topics

log = logging.getLogger(__name__)

SUSPECT_AFTER = 3  # unanswered claims in a row before the arbiter is taken for gone
#: the share of the claim budget after which an unanswered claim is sent once more (same scan id: idempotent).
#: Arbiter instances share the claim topic: the copy goes to a live one if the first went to one that died
RESEND_AT = 0.5
#: seconds between probes while the arbiter is taken for gone for unanswered claims (`should_claim`)
PROBE_EVERY = 1.0
#: seconds of silence (no message in at all) since an unanswered claim was sent before the connection is taken
#: for dead: longer than a loaded arbiter's stalls (an arbiter stuck behind a live broker costs a reconnect)
RENEW_SILENCE = 2.0
#: seconds between two renewals of a silent connection with no answer between them (an arbiter that is merely
#: stuck, behind a live broker, costs one quick reconnect this often, not one per unanswered claim)
RENEW_EVERY = 10.0
#: the tag of the worker thread's requests (catch-up, outbox drain): given up when an arbiter's status changes
WORKER = "worker"
#: seconds the worker gathers stream batches before applying them together.  A gate's own win comes back on
#: the stream right after its answer, while the decision thread commits its result: applied at once it took
#: the store from that commit (0.2-0.3 ms a claim on this machine, a whole fsync on a gate's SD card)
STREAM_EVERY = 0.1
#: seconds between the passes over the outbox while `close` waits for it to drain
CLOSE_POLL = 0.2


class GateSync:
    """Start with `start()`, stop with `close()`; thread-safe."""

    def __init__(self, ledger: Ledger, gate_id: str, broker: Broker, topics: Topics, *, budget: float = 0.3,
                 batch: int = 200, status_every: float = 10.0, keepalive: int = 10,
                 reconnect: tuple[int, int] = (1, 16), credentials: Credentials | None = None,
                 client_suffix: str = "", time_trust: TimeTrust | None = None) -> None:
        self.ledger = ledger
        self.time_trust = time_trust or TimeTrust()
        self.gate_id = gate_id
        self.topics = topics
        self.budget = budget
        self.batch = batch
        self.status_every = status_every
        self.counters = Counters()
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stream_inbox: queue.Queue[tuple[str, list[wire.Json]] | None] = queue.Queue()
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._idle = threading.Event()
        self._arbiter = "unknown"
        self._instances: dict[str, str] = {}  # status topic -> state of each arbiter instance heard of
        self._unanswered = 0
        self._unanswered_since = 0.0  # time.monotonic() when the first of the unanswered claims was sent
        self._renewed_at = -RENEW_EVERY
        self._answered_at = 0.0  # time.monotonic() of the last answer
        self._probe_at = 0.0  # time.monotonic() from which the next probe may go (should_claim)
        self._fault = ""
        self._clock_offset: float | None = None
        self._need_catchup = True
        self.hurried = False  # set by `hurry`: a plain flag, so a signal handler may set it
        self._drain_after = 0.0
        self._next_status = 0.0
        #: called on the worker thread after every (re)connect (sync.dashboard.GateFeed announces the gate)
        self.on_connect: list[Callable[[], None]] = []
        #: more outboxes of this gate's store (sync/gateside/passclaimer.py: list transitions): each drain runs
        #: on the worker after the claims' and returns False if the arbiter did not answer; each backlog counts
        #: its entries not yet answered (in the status's `outbox`; `close` waits for them too)
        self.drains: list[Callable[[], bool]] = []
        self.backlogs: list[Callable[[], dict[str, int]]] = []
        self._worker = threading.Thread(target=self._run, name=f"sync-{gate_id}", daemon=True)
        self._applier = threading.Thread(target=self._apply_live, name=f"stream-{gate_id}", daemon=True)
        self.link = Link(broker, f"{gate_id}{client_suffix}",
                         subscriptions=[topics.stream, topics.instance_statuses], reply_topic=topics.reply(gate_id),
                         on_message=self._received, on_ready=lambda up: self._inbox.put(("link", up)),
                         will=(topics.status(gate_id), self._status_payload("offline", reason="lost", at=None)),
                         keepalive=keepalive, reconnect=reconnect, credentials=credentials, counters=self.counters)
        self.follower = StreamFollower(self.link, topics, gate_id, self.counters, on_reply=self._answered,
                                       tag=WORKER)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.link.start()
        self._worker.start()
        self._applier.start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected and caught up with the arbiter (which proves it answers)."""
        return self._caught_up.wait(timeout)

    def unready(self) -> str:
        """Why `wait_ready` is not true yet, in a line: the broker's problem, or the arbiter's silence."""
        if self.link.problem:
            return self.link.problem
        if not self.link.ready:
            return "not connected to the broker yet"
        if self._arbiter == "offline":
            return "the broker is connected, and the arbiter's last status says it is offline"
        return "the broker is connected, but the arbiter has not answered (is `gate arbiter` running?)"

    def close(self, drain_wait: float = 0.0) -> bool:
        """Drain and catch up for at most `drain_wait` s (until `hurry`), publish "offline", disconnect; True if
        drained."""
        deadline = time.monotonic() + drain_wait
        self._need_catchup = self._need_catchup or self.link.ready  # leave with the arbiter's latest state
        drained = self._settled()
        while not drained and not self.hurried and (left := deadline - time.monotonic()) > 0:
            drained = self._flush(time.monotonic() + min(CLOSE_POLL, left))
        self._stop.set()
        self._inbox.put(("stop", None))
        self._stream_inbox.put(None)
        self.link.wake(WORKER)
        self._worker.join(timeout=REQUEST_TIMEOUT + 1)
        self._applier.join(timeout=REQUEST_TIMEOUT + 1)
        self.link.stop(final=(self.topics.status(self.gate_id), self._status_payload("offline", reason="stopped")))
        return drained

    def hurry(self) -> None:
        """Cut a drain short (an operator's second Ctrl-C): `close` stops draining within CLOSE_POLL and
        leaves the rest in the outbox.  It takes no lock: a signal handler may call it."""
        self.hurried = True

    def _flush(self, until: float) -> bool:
        """One pass of the worker over the outbox, then (not drained) a pause until `until`: True if drained.

        Without the pause a gate whose broker is gone asked its worker for another pass the moment the last
        one found nothing to send: a core spun for the whole `drain_wait`."""
        self._idle.clear()
        self._inbox.put(("flush", None))
        self._idle.wait(max(0.0, until - time.monotonic()))
        if self._settled():
            return True
        self._stop.wait(max(0.0, until - time.monotonic()))  # not set until close ends: a plain pause
        return False

    def _settled(self) -> bool:
        """Nothing left to deliver, and caught up if the arbiter can be asked at all."""
        try:
            if self.outbox_counts():
                return False
        except StoreError:
            return False
        reachable = self.link.ready and self._arbiter != "offline"
        return not (reachable and self._need_catchup)

    # -- the claim path (decide thread) ----------------------------------------------------------
    def can_claim(self) -> bool:
        """Whether the arbiter is taken for reachable (the offline light's question; it never probes)."""
        return self.link.ready and self._arbiter != "offline" and self._unanswered < SUSPECT_AFTER

    def should_claim(self) -> bool:
        """Whether to claim this scan online: `can_claim`, or a probe (see the module docstring)."""
        if self.can_claim():
            return True
        now = time.monotonic()
        if not (self.link.ready and self._arbiter != "offline") or now < self._probe_at:
            return False
        self._probe_at = now + PROBE_EVERY
        return True

    def claim(self, claim: wire.Claim, budget: float | None = None) -> wire.Answer | None:
        """The arbiter's answer to one claim within the budget, or None."""
        reply = self._live("claims", [claim], budget)
        if reply is None:
            return None
        try:
            answers = wire.parse_answers(reply)
        except BadMessage as exc:
            self.counters.add("bad_replies")
            log.warning("unusable answer to claim %s: %s", claim.scan, exc)
            return None
        return next((a for a in answers if a.scan == claim.scan), None)

    def transition(self, move: wire.Transition, budget: float | None = None) -> wire.PassAnswer | None:
        """The arbiter's ruling on one check-in list transition within the budget, or None (like `claim`)."""
        reply = self._live("transitions", [move], budget)
        if reply is None:
            return None
        try:
            answers = wire.parse_pass_answers(reply)
        except BadMessage as exc:  # an arbiter that knows no lists answers an error: decide locally
            self.counters.add("bad_replies")
            log.warning("unusable answer to list transition %s: %s", move.scan, exc)
            return None
        return next((a for a in answers if a.scan == move.scan), None)

    def _live(self, key: str, entries: list[wire.Claim] | list[wire.Transition], budget: float | None) -> wire.Json | None:
        """One live request on the claim topic (a person is waiting): its reply within the budget, or None."""
        self.counters.add("claims")
        budget = self.budget if budget is None else budget
        sent = time.monotonic()
        reply = self.link.request(self.topics.request("claim", self.gate_id), wire.request(key, entries),
                                  budget, resend_after=budget * RESEND_AT)
        if reply is None:
            if self._unanswered == 0:
                self._unanswered_since = sent
            self._unanswered += 1
            self.counters.add("claim_timeouts")
            if self._unanswered == SUSPECT_AFTER:
                self._probe_at = time.monotonic() + PROBE_EVERY
            self._renew_if_suspect()
            return None
        self._answered(reply)
        return reply

    def ask(self, payload: wire.Json) -> wire.Json | None:
        """The worker's request on the claim topic (an outbox drain's `drains`): its reply, or None."""
        sent = time.monotonic()
        reply = self.link.request(self.topics.request("claim", self.gate_id), payload, REQUEST_TIMEOUT, tag=WORKER)
        if reply is None:
            self.counters.add("drain_timeouts")
            self._renew_if_silent(sent, "an outbox request unanswered")
            return None
        self._answered(reply)
        return reply

    def _renew_if_suspect(self) -> None:
        """While claims go unanswered (SUSPECT_AFTER in a row), the silence since the first of them."""
        if self._unanswered >= SUSPECT_AFTER:
            self._renew_if_silent(self._unanswered_since, f"{self._unanswered} claims unanswered")

    def _renew_if_silent(self, since: float, why: str) -> None:
        """Requests unanswered since `since` (monotonic) and nothing at all heard for RENEW_SILENCE s: make the
        connection again."""
        now = time.monotonic()
        again = self._answered_at > self._renewed_at or now - self._renewed_at >= RENEW_EVERY
        silent = now - max(since, self.link.heard())
        if silent >= RENEW_SILENCE and again and self.link.renew(f"{why}, nothing heard for {silent:.1f} s"):
            self._renewed_at = now

    def kick(self) -> None:
        """The outbox has new work: drain it as soon as the arbiter answers."""
        self._drain_after = 0.0
        self._inbox.put(("kick", None))

    def note_fault(self, fault: str) -> None:
        """The store failed (FAULT at the gate): say so in the status until a decision succeeds again."""
        if fault != self._fault:
            self._fault = fault
            self._next_status = 0.0
            self._inbox.put(("kick", None))

    # -- the network thread --------------------------------------------------------------------------
    def _received(self, msg: Inbound) -> None:
        if msg.topic == self.topics.stream:
            self._stream_inbox.put(wire.parse_stream(msg.payload))
        elif msg.topic.startswith(self.topics.arbiter_status):  # one instance's status (Topics.instance_status)
            state = wire.text(msg.payload, "state")
            if self._instances.get(msg.topic) != state:  # it died, or came (back): ask whoever answers now
                self.link.wake(WORKER)
            self._instances[msg.topic] = state
            # offline only when every instance says so: a dead instance's last will does not speak for the rest
            self._arbiter = "offline" if all(s == "offline" for s in self._instances.values()) else "online"
            if state != "offline":
                self._unanswered = 0
            self._inbox.put(("arbiter", msg.payload))

    # -- the worker ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                kind, data = self._inbox.get(timeout=0.25)
            except queue.Empty:
                kind, data = "tick", None
            self._guarded(kind, functools.partial(self._step, kind, data))
            if self._inbox.empty():
                self._idle.set()

    def _step(self, kind: str, data: Any) -> None:
        self._handle(kind, data)
        self._housekeeping()

    def _apply_live(self) -> None:
        """The live stream's thread: apply batches as they come, whatever requests the worker waits for."""
        following: tuple[str, list[wire.Json]] | None = None  # a batch of another epoch that ended a gathering
        while not self._stop.is_set():
            first = following if following is not None else self._stream_inbox.get()
            if first is None:
                return
            batch, following = self._gather(first)
            self._guarded("stream", functools.partial(self._apply_batch, *batch))

    def _guarded(self, kind: str, step: Callable[[], object]) -> None:
        """Run one step of a sync thread: its errors are counted, logged and shown in the status, never raised."""
        try:
            step()
        except StoreError as exc:
            self.counters.add("store_errors")
            self.note_fault(str(exc))
            log.error("sync could not use the store: %s", exc)
        except SyncError as exc:
            self.counters.add("errors")
            log.warning("sync: %s", exc)
        except Exception as exc:  # a bug must not stop stream apply, outbox drain and status: count, log
            self.counters.add("errors")
            log.exception("sync: unexpected error handling %s: %s", kind, exc)

    def _gather(self, first: tuple[str, list[wire.Json]]) -> tuple[tuple[str, list[wire.Json]],
                                                                   tuple[str, list[wire.Json]] | None]:
        """The stream batches that arrive within STREAM_EVERY of `first` (same epoch) as one, and the batch
        that ended the gathering early, if any (applied next, in order)."""
        epoch, entries = first[0], list(first[1])
        until = time.monotonic() + STREAM_EVERY
        while (wait := until - time.monotonic()) > 0:
            try:
                data = self._stream_inbox.get(timeout=wait)
            except queue.Empty:
                break
            if data is None:
                self._stream_inbox.put(None)  # stop: after this batch
                break
            if data[0] != epoch:
                return (epoch, sorted(entries, key=lambda item: item["seq"])), data
            entries.extend(data[1])
        return (epoch, sorted(entries, key=lambda item: item["seq"])), None

    def _apply_batch(self, epoch: str, entries: list[wire.Json]) -> None:
        _applied, gap = self.ledger.apply_stream(epoch, entries)
        if gap:
            self.counters.add("stream_gaps")
            self._need_catchup = True
            self._inbox.put(("kick", None))

    def _handle(self, kind: str, data: Any) -> None:
        if kind == "link":
            self.counters.add("online" if data else "offline")
            self._need_catchup = self._need_catchup or bool(data)
            self._next_status = 0.0
            for connected in self.on_connect if data else ():
                connected()
        elif kind == "arbiter":
            head = data.get("head")
            if data.get("state") != "offline":
                self._drain_after = 0.0
                if not isinstance(head, int) or head > self.ledger.position()[1]:
                    self._need_catchup = True

    def _housekeeping(self) -> None:
        self._renew_if_suspect()  # no claim is sent while suspect (but a probe): the silence is checked here too
        if self.link.ready and self._arbiter != "offline":
            if self._need_catchup:
                self._catch_up()
            if time.monotonic() >= self._drain_after:
                self._drain()
        if time.monotonic() >= self._next_status:
            self._publish_status()

    def _catch_up(self) -> None:
        def deliver(epoch: str, entries: list[wire.Json]) -> bool:
            applied, gap = self.ledger.apply_stream(epoch, entries)
            self.counters.add("catchup_items", applied)
            return not gap

        if self.follower.catch_up(self.ledger.position(), deliver, self.ledger.reset_stream):
            self._need_catchup = False
            self._caught_up.set()

    def _drain(self) -> None:
        """Send late claims and releases until the outbox is empty; back off 1 s when unanswered."""
        stale = time.time() - self.budget - STALE_GRACE
        while not self._stop.is_set():
            late, released = self.ledger.pending(self.gate_id, self.batch, stale)
            claims = [claim_of(scan, admitted=True) for scan in late]
            releases = [release_of(scan) for scan in released]
            if not claims and not releases:
                for drain in self.drains:
                    drain()
                self._drain_after = time.monotonic() + 1.0  # claim entries turn stale with time
                return
            if not self._send(claims, "claim", "claims") or not self._send(releases, "release", "releases"):
                self._drain_after = time.monotonic() + 1.0
                return

    def _send(self, entries: list[wire.Claim] | list[wire.Release], kind: str, key: str) -> bool:
        for payload in wire.requests(key, entries):  # each well under the broker's message size limit
            reply = self.link.request(self.topics.request(kind, self.gate_id), payload, REQUEST_TIMEOUT,
                                      tag=WORKER)
            if reply is None:
                self.counters.add("drain_timeouts")
                return False
            self._answered(reply)
            self._settle(kind, [ruling_of(a) for a in wire.parse_answers(reply)])
        return True

    def _settle(self, kind: str, rulings: list[Ruling]) -> None:
        if kind == "claim":
            tally = self.ledger.settle_late(rulings)
            self.counters.add("late_won", tally.get("won", 0))
            self.counters.add("conflicts", tally.get("lost", 0))
            odd = sum(n for answer, n in tally.items() if answer not in ("won", "lost", "revoked"))
            if odd:
                self.counters.add("late_refused", odd)
                log.error("the arbiter refused %d late admissions: %s", odd, tally)
        else:
            self.counters.add("released", self.ledger.settle_released(rulings))

    def _answered(self, reply: wire.Json) -> None:
        self._unanswered = 0
        self._answered_at = time.monotonic()
        at = reply.get("at")
        if isinstance(at, int | float):
            self._clock_offset = at - time.time()
            self.time_trust.note_arbiter(self._clock_offset)

    def outbox_counts(self) -> dict[str, int]:
        """Every outbox's entries not yet answered, by state (the list transitions' prefixed ``pass_``)."""
        counts = self.ledger.outbox_counts()
        for backlog in self.backlogs:
            counts.update(backlog())
        return counts

    # -- status ------------------------------------------------------------------------------------------
    def _status_payload(self, state: str, **extra: object) -> wire.Json:
        return {"v": wire.VERSION, "gate": self.gate_id, "state": state, "at": time.time(), **extra}

    def _publish_status(self) -> None:
        self._next_status = time.monotonic() + self.status_every
        if not self.link.ready:
            return
        try:
            outbox = self.outbox_counts()
            _epoch, seq = self.ledger.position()
            outcomes = self.ledger.store.counts()
        except StoreError as exc:
            self.note_fault(str(exc))
            outbox, seq, outcomes = {}, -1, {}
        payload = self._status_payload("fault" if self._fault else "online", detail=self._fault,
                                       arbiter=self._arbiter, stream_seq=seq, outbox=outbox, decisions=outcomes,
                                       counters=self.counters.snapshot(), clock_offset=self._clock_offset,
                                       time=self.time_trust.source())
        self.link.publish(self.topics.status(self.gate_id), payload, retain=True)
