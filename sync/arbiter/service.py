"""`gate arbiter`: the central compare-and-set, answering over MQTT v5 request/response.

What a caller may rely on:

* Every request is screened before it is decoded (sync/arbiter/intake.py:
  size, a rate per sender); small ones (every online claim) are decoded on
  the network thread, large ones (drains) on the intake's thread, one
  sender at a time in turn.  Decoded requests are queued.  A batch (all that
  is queued, up to `max_batch` ops) is decided in one durable transaction
  (ArbiterStore.apply) and only then are its answers published, then its
  new stream items (group commit: nothing is answered or published before
  its commit).  Batches are committed one at a time, in arrival order, and
  published in the same order; the next batch may commit while the last
  one's answers are being sent (its fsync leaves the CPU free for them).
* The stream is coalesced: at most one stream message goes out every
  `stream_every` s (STREAM_EVERY), carrying the items of every batch
  answered since the last one, in sequence order and always after those
  batches' answers; a batch after a quieter spell goes out at once, and
  STREAM_CHUNK waiting items go out without waiting.  Nothing is streamed
  ahead of an earlier item, the status's head never overtakes what was
  streamed, and a stop streams what waits before "offline".  (One message
  per batch made a paced rush, where most batches hold one claim, one
  message per claim to every gate.)
* Who serves: the network thread itself, as soon as the socket holds no
  more bytes and no earlier batch is still sending (no thread hop for a
  lone claim; under load the batch grows while bytes keep coming); a
  committer thread serves whatever waited longer than DEFER_GRACE, and
  publishes the status.
* A request that cannot be decoded is answered with an error (if it has a
  ResponseTopic) and counted; it changes nothing.  A claim or release whose
  `gate` is not the topic's sender is refused the same way.
* A claim whose code does not verify (ClaimCheck: signature, key, event,
  validity, the claiming gate's events) is answered "refused" with a stable
  reason code in `detail`, counted, and never reaches the store.
* Check-in list transitions ride on the claim request (key "transitions",
  docs/mqtt.md) and are answered in a reply of kind "transition": checked
  the same way (a refused one is INVALID ``refused``), then judged in the
  batch's transaction by the lists `check.lists` holds (reread with the keys).
* If the store cannot commit, nothing of that batch is answered (the gates
  time out and fall back to their offline policy); the status says "fault".
* The signed check-in lists `check.documents` holds go on the stream as items
  of kind ``list`` (ArbiterStore.publish_lists: once each), at start and
  whenever its lists folder changes (noticed every `status_every`).
* The retained status on `{prefix}/arbiter/status` is "online" while
  running, "offline" after a clean stop or (last will) a crash.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gate.outcomes import Outcome, Reason
from gate.rules import CheckinList
from sync import wire
from sync.arbiter.intake import Intake, Raw
from sync.arbiter.store import ArbiterStore, Op
from sync.arbiter.trust import ClaimCheck
from sync.counters import Counters, Quiet
from sync.exc import ArbiterStoreError, BadMessage, BadTopicName
from sync.link import QOS, REQUEST_QOS, Broker, Credentials, Inbound, Link
from sync.topics import REQUESTS, Topics

log = logging.getLogger(__name__)

STREAM_CHUNK = 500
#: seconds between two stream messages at most once a stream message went out (items of the batches answered
#: meanwhile wait and go out together): half a gate's own gathering of the stream (STREAM_EVERY in
#: sync/gateside/session.py, 100 ms), so items of instances that publish apart still reach a gate together.
#: 20 ms left a paced rush's p99 at 20-26 ms on PostgreSQL here, 50 ms at 15-17 ms (docs/scale.md)
STREAM_EVERY = 0.05
#: seconds a request may wait for the network thread to serve it before the committer thread does
DEFER_GRACE = 0.001


@dataclass(frozen=True)
class Outgoing:
    """One message a served batch sends once it is its turn."""

    topic: str
    payload: wire.Json
    qos: int = REQUEST_QOS
    correlation: bytes | None = None


@dataclass(frozen=True)
class Work:
    """One decoded request waiting for the committer."""

    kind: str
    sender: str
    response_topic: str | None
    correlation: bytes | None
    ops: list[Op] = field(default_factory=list)
    #: answers decided before the store: claims whose code did not verify (sync/arbiter/trust.py)
    refused: list[wire.Answer | wire.PassAnswer] = field(default_factory=list)
    after: int = 0
    limit: int = 0


class Arbiter:
    """Run with `run(stop)` until `stop` is set; one arbiter per store file."""

    def __init__(self, store: ArbiterStore, broker: Broker, topics: Topics, check: ClaimCheck, *, keepalive: int = 10,
                 reconnect: tuple[int, int] = (1, 16), credentials: Credentials | None = None,
                 status_every: float = 10.0, max_batch: int = 2000, group: str = "", instance: str = "",
                 stream_every: float = STREAM_EVERY) -> None:
        self.store = store
        self.topics = topics
        self.check = check
        store.lists = check.lists
        self.counters = Counters()
        self.status_every = status_every
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: deque[Work] = deque()
        self._since = 0.0  # when the oldest pending work arrived
        self._busy = False
        self._turns = 0  # batches taken so far: a batch's turn is its place in the order of publication
        self._sent = threading.Condition()
        self._sent_turns = 0  # batches whose messages have all been handed to paho
        self.stream_every = stream_every
        # stream items of batches already answered, waiting to go out together (in seq order); changed only in a
        # turn (_send_in_turn), or under _busy with no turn outstanding (_status_turn)
        self._streaming: list[wire.Json] = []
        self._stream_due = 0.0  # monotonic s when the waiting items go out
        self._streamed_at = -1e9  # monotonic s when the last stream message went out
        self._fault = ""
        self._next_status = 0.0
        self._lists_due = True  # the signed lists the check holds go on the stream (once each: publish_lists)
        self._announce: Callable[[], None] | None = None
        self._quiet = Quiet()
        self.intake = Intake(self._arrived, self._arrived_large, self.counters)
        # instances on one database (sync/arbiter/pgstore.py) share the requests: each goes to one of them
        self.status_topic = topics.instance_status(instance)
        self.link = Link(broker, f"{topics.prefix}-arbiter-{instance or socket.gethostname()}-{os.getpid()}",
                         subscriptions=[topics.shared(topics.requests(kind), group) for kind in REQUESTS],
                         on_message=self._received, on_ready=self._ready_changed, after_packet=self._drained,
                         screen=self.intake.screen,
                         will=(self.status_topic, self._status("offline", reason="lost")),
                         keepalive=keepalive, reconnect=reconnect, credentials=credentials, counters=self.counters)

    # -- running ----------------------------------------------------------------------------
    def run(self, stop: threading.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until `stop` is set, then answer what is queued and publish "offline"."""
        self._announce = on_ready
        self.store.start_checkpointer()
        self.intake.start()
        self.link.start()
        try:
            while not stop.is_set():
                self.step(timeout=0.2)
            self._finish(deadline=time.monotonic() + 2.0)
        finally:
            self.intake.stop()
            self.link.stop(final=(self.status_topic, self._status("offline", reason="stopped")))

    def step(self, timeout: float) -> int:
        """The committer's turn: serve work the network thread left waiting for DEFER_GRACE s (with
        timeout 0: everything pending), then publish the status if it is due; the ops served."""
        end = time.monotonic() + timeout
        with self._cond:
            while timeout and not self._overdue() and not self._stream_overdue() and time.monotonic() < end:
                self._cond.wait(self._wait_for(end))
        served = self._serve_pending()
        self._stream_turn()
        self._status_turn()
        return served

    def _wait_for(self, end: float) -> float:
        """How long the committer may sleep (under _cond): until `end`, DEFER_GRACE while work is pending, until
        the waiting stream items are due (then DEFER_GRACE while a batch is still on its way out)."""
        now = time.monotonic()
        wait = end - now
        if self._pending:
            wait = min(wait, DEFER_GRACE)
        if self._streaming:
            wait = min(wait, max(self._stream_due - now, DEFER_GRACE))
        return max(wait, 0.0)

    def _finish(self, deadline: float) -> None:
        """Answer what is queued and let every batch's messages go out (a batch the network thread is still
        serving included) before "offline" is published; at most until `deadline`."""
        while time.monotonic() < deadline:
            self.step(timeout=0)
            self._stream_turn(now=True)
            with self._cond:
                if not self._busy and not self._pending and self._sent_turns == self._turns and not self._streaming:
                    return
            time.sleep(0.001)

    def _overdue(self) -> bool:
        return bool(self._pending) and not self._busy and time.monotonic() - self._since >= DEFER_GRACE

    def _stream_free(self) -> bool:
        """Stream items wait and nobody serves or sends a batch (that one would send them)."""
        return bool(self._streaming) and not self._busy and self._sent_turns == self._turns

    def _stream_overdue(self) -> bool:
        """Stream items are due for the committer: free (`_stream_free`), due, and no bytes waiting unread (the
        network thread reads them first, and their batch streams on its way out: a publish here on a connection
        that died would close it with those requests unread)."""
        return self._stream_free() and time.monotonic() >= self._stream_due and not self.link.more_to_read()

    def _enqueue(self, work: Work) -> None:
        with self._cond:
            if not self._pending:
                self._since = time.monotonic()
            self._pending.append(work)

    def _drained(self) -> None:
        """After each packet (network thread): serve right here, with no thread hop, unless more bytes are
        already waiting, in which case they join the batch (group commit) and the last packet serves it."""
        if self.link.more_to_read():
            with self._cond:
                self._cond.notify()  # the committer takes it if nobody else does within DEFER_GRACE
            return
        self._serve_pending(may_wait=False)

    def _serve_pending(self, may_wait: bool = True) -> int:
        """Serve what is pending (up to `max_batch` ops) unless a batch is being served: one at a time, in order.

        The network thread passes may_wait=False: it is inside a paho callback, holding paho's locks, so it
        must not wait for an earlier batch's messages to go out (that publisher may need those locks); it
        leaves the batch to the committer instead.
        """
        with self._cond:
            if self._busy or not self._pending or (not may_wait and self._sent_turns != self._turns):
                return 0
            self._busy = True
            batch, ops = [], 0
            while self._pending and ops < self.max_batch:
                batch.append(self._pending.popleft())
                ops += len(batch[-1].ops)
            self._since = time.monotonic()
            turn, self._turns = self._turns, self._turns + 1
        outgoing: list[Outgoing] = []
        stream: list[wire.Json] = []
        try:
            self._serve(batch, outgoing, stream)
        except Exception as exc:  # after its commit (apply's own errors are handled in _serve): send what was
            # made, keep serving; uncaught, it would stop the committer thread, or vanish inside paho's
            self.counters.add("serve_errors")
            log.exception("serving a batch of %d requests failed after its commit: %s", len(batch), exc)
        finally:
            with self._cond:
                self._busy = False  # the next batch may commit while this one's messages go out
                if self._pending:  # wake the committer only if there is work for it (a wake-up costs the GIL)
                    self._cond.notify()
            self._send_in_turn(turn, outgoing, stream)
        return max(ops, len(batch))

    def _send_in_turn(self, turn: int, outgoing: list[Outgoing], stream: list[wire.Json] | None = None,
                      now: bool = False) -> None:
        """Publish a served batch's messages after every earlier batch's, then queue its new stream items behind
        the earlier batches' and stream what waits if it is due (or `now`): so the stream goes out in order."""
        with self._sent:
            while self._sent_turns != turn:
                self._sent.wait()
        try:
            self._publish(outgoing)
            self._queue_stream(stream or [], now)
        finally:
            with self._sent:
                self._sent_turns += 1
                self._sent.notify_all()

    def _queue_stream(self, items: list[wire.Json], now: bool) -> None:
        """In a turn: `items` join the waiting stream items; these go out if due, else the committer is woken to
        send them when they are (at most one stream message every `stream_every` s)."""
        at = time.monotonic()
        first = bool(items) and not self._streaming
        if first:
            self._stream_due = max(at, self._streamed_at + self.stream_every)
        self._streaming.extend(items)
        if self._streaming and (now or at >= self._stream_due or len(self._streaming) >= STREAM_CHUNK):
            self._flush_stream(at)
        elif first:
            with self._cond:
                self._cond.notify()  # the committer sleeps until they are due

    def _flush_stream(self, at: float) -> None:
        """Publish every waiting stream item (in a turn, or under _busy with no turn outstanding)."""
        items, self._streaming = self._streaming, []
        self._streamed_at = at
        outgoing: list[Outgoing] = []
        self._stream(outgoing, items)
        self._publish(outgoing)

    def _publish(self, outgoing: list[Outgoing]) -> None:
        for out in outgoing:
            self.link.publish(out.topic, out.payload, qos=out.qos, correlation=out.correlation)

    def _stream_turn(self, now: bool = False) -> None:
        """The committer's turn for waiting stream items that are due (or all of them, `now`), when nobody is
        serving or sending a batch (that batch sends them on its way out otherwise)."""
        with self._cond:
            if not (self._stream_free() if now else self._stream_overdue()):
                return
            turn, self._turns = self._turns, self._turns + 1
        self._send_in_turn(turn, [], now=now)

    def _status_turn(self) -> None:
        with self._cond:
            # never while a batch is served or sent: the status's head must not overtake the stream
            if self._busy or self._sent_turns != self._turns or time.monotonic() < self._next_status:
                return
            self._busy = True  # the status reads the store: never while a batch is being served
        try:
            if self._streaming:  # what the head will say is streamed first, and before any list document
                self._flush_stream(time.monotonic())
            if self.check.refresh():  # a gate provisioned, a key imported or a list signed since: no restart needed
                self.store.lists = self.check.lists
                self._lists_due = True
            if self._lists_due:
                self._publish_lists()
            self._maybe_status()
        finally:
            with self._cond:
                self._busy = False
                if self._pending:
                    self._cond.notify()

    def _publish_lists(self) -> None:
        """Put the signed list documents not yet on the stream there (a turn of its own, under `_busy`): the gates
        verify them and adopt higher versions of their lists (gate/servedlist.py).  A store fault: next time."""
        with self._cond:
            turn, self._turns = self._turns, self._turns + 1
        outgoing: list[Outgoing] = []
        try:
            documents = [(lst, doc) for lst, doc in self.check.documents.values() if self._streamable(lst, doc)]
            items = self.store.publish_lists(documents)
        except ArbiterStoreError as exc:
            self._set_fault(str(exc))
        except Exception as exc:  # a bug: say so, keep serving (the next change of the folder tries again)
            self._lists_due = False
            self.counters.add("serve_errors")
            log.exception("putting the check-in lists on the stream failed: %s", exc)
        else:
            self._lists_due = False
            for item in items:  # one message each: a list document may be large (wire.MAX_LIST_DOC)
                log.info("list %s version %s on the stream (seq %s)", item["name"], item["version"], item["seq"])
                outgoing.append(Outgoing(self.topics.stream, wire.stream_batch(self.store.epoch, [item]), QOS))
            self.counters.add("lists_streamed", len(items))
        finally:
            self._send_in_turn(turn, outgoing)

    def _streamable(self, lst: CheckinList, doc: wire.Json) -> bool:
        size = len(wire.encode(doc))
        if size <= wire.MAX_LIST_DOC:
            return True
        if self._quiet(f"big-list-{lst.name}"):
            log.error("list %s version %d is %d bytes, over the %d a stream item may carry: copy its file to its "
                      "gates", lst.name, lst.version, size, wire.MAX_LIST_DOC)
        return False

    def _serve(self, batch: list[Work], out: list[Outgoing], stream: list[wire.Json]) -> None:
        """Decide a batch (and read its catch-ups) under `_busy`; add what it must publish to `out`, in order,
        and its new stream items to `stream` (they go out after `out`: _send_in_turn)."""
        writes = [w for w in batch if w.kind in ("claim", "transition", "release", "revoke", "override")]
        if writes:
            try:
                answers, new = self.store.apply([op for w in writes for op in w.ops])
            except ArbiterStoreError as exc:
                self._set_fault(str(exc))
            except Exception as exc:  # a bug or an op the checks let through: roll back, say so, keep serving
                self.counters.add("batch_errors")
                log.exception("batch of %d requests failed, nothing applied: %s", len(writes), exc)
                for work in writes:
                    self._reply(out, work, wire.error_reply(f"not applied: {exc}"))
            else:
                self._set_fault("")
                self._answer(out, writes, answers)
                stream.extend(new)
        for work in batch:
            if work.kind == "catchup":  # read here, under _busy: never during another batch's transaction
                self._catch_up(out, work)

    def _answer(self, out: list[Outgoing], writes: list[Work], answers: list[wire.Answer | wire.PassAnswer]) -> None:
        now = time.time()
        start = 0
        for work in writes:
            mine = answers[start:start + len(work.ops)] + work.refused
            start += len(work.ops)
            self.counters.add(f"{work.kind}s", len(mine))
            for a in mine:
                if isinstance(a, wire.PassAnswer):
                    self.counters.add(f"transition_{a.reason or a.outcome}")
                else:
                    self.counters.add(f"answer_{a.answer}")
            self._reply(out, work, wire.answers_reply(work.kind, mine, now))

    def _stream(self, out: list[Outgoing], stream: list[wire.Json]) -> None:
        """Stream messages for `stream` (items in seq order), then its conflicts on their own topics."""
        for start in range(0, len(stream), STREAM_CHUNK):
            out.append(Outgoing(self.topics.stream, wire.stream_batch(self.store.epoch, stream[start:start + STREAM_CHUNK]),
                                QOS))
        for item in stream:  # double entries and list conflicts, one shape (wire.conflict_message)
            message = wire.conflict_message(item)
            if message is not None:
                try:
                    topic = self.topics.conflict(str(item["event"]))
                except BadTopicName as exc:  # an event name that is no topic level: the stream carries it anyway
                    self.counters.add("conflicts_not_on_topic")
                    log.warning("conflict %s only on the stream: %s", item["seq"], exc)
                    continue
                out.append(Outgoing(topic, message, QOS))

    def _catch_up(self, out: list[Outgoing], work: Work) -> None:
        try:
            entries, head = self.store.read_stream(work.after, work.limit)
        except ArbiterStoreError as exc:
            self._set_fault(str(exc))
            return
        entries = self._page(entries)
        more = bool(entries) and entries[-1]["seq"] < head
        self.counters.add("catchups")
        self._reply(out, work, wire.catchup_reply(self.store.epoch, head, entries, more, time.time()))

    @staticmethod
    def _page(entries: list[wire.Json]) -> list[wire.Json]:
        """The first of `entries` that fit in a reply (list documents are large): at least one; the gate asks on."""
        room = wire.MAX_PAYLOAD - 4096
        for n, item in enumerate(entries):
            # 700: more than the longest item of any other kind (wire.CATCHUP_MAX of them fit)
            room -= len(wire.encode(item)) if item["kind"] == "list" else 700
            if room < 0:
                return entries[:max(n, 1)]
        return entries

    def _reply(self, out: list[Outgoing], work: Work, payload: wire.Json) -> None:
        if work.response_topic is None:
            self.counters.add("no_response_topic")
            return
        out.append(Outgoing(work.response_topic, payload, REQUEST_QOS, work.correlation))

    # -- the network thread -------------------------------------------------------------------
    def _received(self, msg: Inbound) -> None:
        parsed = self.topics.parse_request(msg.topic)
        if parsed is None:
            return
        kind, sender = parsed
        try:
            work = self._parse(kind, sender, msg)
        except Exception as exc:  # paho swallows callback errors: every one is counted, logged and answered
            self._refuse(kind, sender, msg.response_topic, msg.correlation, exc)
            return
        self._enqueue(work)

    def _arrived(self, raw: Raw) -> None:
        """A request as the intake hands it over (sync/arbiter/intake.py): one that is not even JSON is
        answered with an error like any other bad request, not dropped unanswered."""
        parsed = self.topics.parse_request(raw.topic)
        if parsed is None:
            return
        try:
            payload = wire.decode(raw.payload)
        except BadMessage as exc:
            self._refuse(*parsed, raw.response_topic, raw.correlation, exc)
            return
        self._received(Inbound(raw.topic, payload, raw.response_topic, raw.correlation))

    def _arrived_large(self, raw: Raw) -> None:
        """A large request, on the intake's decoder thread."""
        self._arrived(raw)
        with self._cond:
            self._cond.notify()  # no packet read wakes the committer for it

    def _refuse(self, kind: str, sender: str, response_topic: str | None, correlation: bytes | None,
                exc: Exception) -> None:
        if not isinstance(exc, BadMessage):
            log.exception("request from %s could not be read", sender)
        self.counters.add("bad_requests")
        if self._quiet("bad_requests"):
            log.warning("bad %s request from %s: %s (counted in bad_requests; logged once every %.0f s)", kind,
                        sender, exc, self._quiet.every)
        if response_topic:  # the error goes to the sender's own reply topic, whatever it asked
            self.link.publish(self.topics.reply(sender), wire.error_reply(str(exc)), qos=REQUEST_QOS,
                              correlation=correlation)

    def _parse(self, kind: str, sender: str, msg: Inbound) -> Work:
        d = msg.payload
        if kind == "catchup":
            after, limit = wire.parse_catchup(d)
            return Work(kind, sender, msg.response_topic, msg.correlation, after=after, limit=limit)
        ops: list[Op]
        if kind == "claim" and "transitions" in d:  # check-in list moves ride on the claim request (passes.py)
            kind = "transition"
            ops = list(wire.parse_transitions(d))
        elif kind == "claim":
            ops = list(wire.parse_claims(d))
        elif kind == "release":
            ops = list(wire.parse_releases(d))
        elif kind == "override":  # an admin's admit or un-redeem (ArbiterStore: docs/dashboard.md)
            ops = list(wire.parse_overrides(d, sender))
        elif "generations" in d:  # raised ownership generations ride on the revoke request (docs/ownership.md)
            ops = [wire.Supersession(g.event, g.ticket, g.gen, sender, g.at) for g in wire.parse_supersessions(d)]
        else:
            ops = [wire.Revocation(v.event, v.ticket, sender, v.reason, v.at, v.admin) for v in wire.parse_revocations(d)]
        if any(isinstance(op, wire.Claim | wire.Release | wire.Transition) and op.gate != sender for op in ops):
            raise BadMessage(f"a {kind} names a gate other than its sender {sender!r}")
        if msg.response_topic is not None and msg.response_topic != self.topics.reply(sender):
            raise BadMessage(f"a {kind} asks for its answer on {msg.response_topic!r}, not the sender's reply topic")
        refused: list[wire.Answer | wire.PassAnswer] = []
        if kind in ("claim", "transition"):
            ops, refused = self._checked(sender, ops)
        return Work(kind, sender, msg.response_topic, msg.correlation, ops=ops, refused=refused)

    def _checked(self, sender: str, claims: list[Op]) -> tuple[list[Op], list[wire.Answer | wire.PassAnswer]]:
        """(claims or transitions to decide, refusals): one whose code does not verify spends nothing."""
        keep: list[Op] = []
        refused: list[wire.Answer | wire.PassAnswer] = []
        for claim in claims:
            if isinstance(claim, wire.Transition):
                why = self.check.transition_refusal(claim)
                answer: wire.Answer | wire.PassAnswer = wire.PassAnswer(
                    claim.scan, Outcome.INVALID.value, Reason.REFUSED.value, why or "")
            else:
                assert isinstance(claim, wire.Claim)
                why = self.check.refusal(claim)
                answer = wire.Answer(claim.scan, "refused", detail=why or "")
            if why is None:
                keep.append(claim)
                continue
            refused.append(answer)
            self.counters.add("claims_refused")
            self.counters.add(f"refused_{why.split(':', 1)[0]}")
        if refused and self._quiet("refused"):
            log.warning("refused %d claims from %s: %s (counted in claims_refused; logged once every %.0f s)",
                        len(refused), sender, refused[0].detail, self._quiet.every)
        return keep, refused

    def _ready_changed(self, ready: bool) -> None:
        if ready:
            self._next_status = 0.0  # publish "online" at once (from the committer thread)
            with self._cond:
                self._cond.notify()  # the committer publishes it

    # -- status -----------------------------------------------------------------------------------
    def _status(self, state: str, **extra: object) -> wire.Json:
        return {"v": wire.VERSION, "role": "arbiter", "state": state, "at": time.time(), **extra}

    def _maybe_status(self) -> None:
        now = time.monotonic()
        if now < self._next_status or not self.link.ready:
            return
        self._next_status = now + self.status_every
        try:
            figures: wire.Json = {"head": self.store.head(), "store": self.store.counts()}
        except ArbiterStoreError as exc:  # a database that is down (pgstore): say so, keep the committer running
            self._set_fault(str(exc))
            figures = {}
        state = "fault" if self._fault else "online"
        payload = self._status(state, epoch=self.store.epoch, **figures, counters=self.counters.snapshot(),
                               detail=self._fault)
        if self.link.publish(self.status_topic, payload, retain=True) and self._announce is not None:
            self._announce()
            self._announce = None

    def _set_fault(self, fault: str) -> None:
        if fault:
            self.counters.add("store_errors")
            log.error("arbiter store fault, batch not answered: %s", fault)
        if fault != self._fault:
            self._fault = fault
            self._next_status = 0.0
