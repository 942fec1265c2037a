"""The dashboard's MQTT side: it listens to everything, keeps its history, and sends the admins' requests.

What a caller may rely on:

* One MQTT v5 connection (sync.link.Link, reconnecting by itself) subscribed
  to the gates' statuses and scans, the arbiter's status and its stream.  The
  network thread only queues; one worker thread applies each message to the
  live model (sync/dashboard/model.py) and the history
  (sync/dashboard/history.py), and pushes it to the pages (`push`).
* A scan is pushed before it is written to the history: the page sees it
  as soon as it arrives.  The state (gates, charts, conflicts) is pushed at
  most every PUSH_EVERY seconds while something changed, and every second
  anyway (a gate falls silent without a message).
* On every (re)connect, on a gap, and when the arbiter's head is ahead, it
  catches up from the arbiter's stream (the gates' catch-up request), so a
  restarted dashboard is complete.  A catch-up thread asks for the pages
  (retrying every CATCHUP_RETRY s while the arbiter does not answer) and
  queues them like live stream messages: the worker never waits for the
  arbiter, and applies every item in sequence order.
* `revoke` and `override` send one admin request and wait for the arbiter's
  answer (at most REQUEST_TIMEOUT s); each is recorded in the history with
  who (the logged-in account), when, why and from where, whatever the answer.  They never raise for
  a missing broker or arbiter: the result says so.
* Errors (a bad message, the history file) are counted and logged, never
  raised out of the worker.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sync import wire
from sync.admin import REQUEST_TIMEOUT, AdminClient, AdminResult
from sync.counters import Counters
from sync.dashboard.history import History, HistoryError
from sync.dashboard.model import WINDOW, Model
from sync.exc import BadMessage, SyncError
from sync.follower import StreamFollower
from sync.link import Broker, Credentials, Inbound, Link
from sync.topics import Topics

log = logging.getLogger(__name__)

CATCHUP_RETRY = 2.0
PUSH_EVERY = 0.25
BATCH = 500

Push = Callable[[str, wire.Json], None]


#: what became of an admin's request (the name the web server and tests use)
ActionResult = AdminResult


class DashboardService:
    """Start with `start()`, stop with `stop()`."""

    def __init__(self, history: History, model: Model, broker: Broker, topics: Topics, sender: str, *,
                 push: Push, credentials: Credentials | None = None, keepalive: int = 10,
                 reconnect: tuple[int, int] = (1, 16), client_suffix: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.history = history
        self.model = model
        self.topics = topics
        self.sender = sender
        self.push = push
        self.clock = clock
        self.counters = Counters()
        self._inbox: queue.Queue[tuple[str, Any, float]] = queue.Queue()
        self._stop = threading.Event()
        self._want_catchup = threading.Event()
        self._want_catchup.set()
        self._dirty = True
        self._last_push = 0.0
        self._scan_prefix = topics.scan("x")[:-1]
        self._status_prefix = topics.status("x")[:-1]
        self._worker = threading.Thread(target=self._run, name="dashboard", daemon=True)
        self._catcher = threading.Thread(target=self._catch_ups, name="dashboard-catchup", daemon=True)
        self.link = Link(broker, f"{sender}{client_suffix}",
                         subscriptions=[topics.statuses, topics.scans, topics.arbiter_status, topics.stream],
                         reply_topic=topics.reply(sender), on_message=self._received,
                         on_ready=lambda up: self._inbox.put(("link", up, self.clock())),
                         keepalive=keepalive, reconnect=reconnect, credentials=credentials, counters=self.counters)
        self.admin = AdminClient(self.link, topics, sender)
        self.follower = StreamFollower(self.link, topics, sender, self.counters)

    # -- lifecycle --------------------------------------------------------------------------------------
    def load(self) -> None:
        """Rebuild the live view from the history (the stream, the tickets' states on the check-in lists, the
        last WINDOW minutes of scans)."""
        for item in self.history.stream_items():  # in order: a list conflict says where the ticket entered before
            self.model.stream_item(item)
        self.model.restore_passes(self.history.pass_states())
        for scan, received in self.history.recent_scans(self.clock() - WINDOW * 60):
            self.model.scan(scan, received, live=False)

    def start(self) -> None:
        self.model.link(False, self.clock(), str(self.link.broker))
        self.link.start()
        self._worker.start()
        self._catcher.start()

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(("stop", None, 0.0))
        self._want_catchup.set()
        self._worker.join(timeout=REQUEST_TIMEOUT + 2)
        self._catcher.join(timeout=REQUEST_TIMEOUT + 2)
        self.link.stop()

    # -- admin requests (HTTP threads) ------------------------------------------------------------------
    def revoke(self, event: str, ticket: str, reason: str, admin: str, remote: str) -> ActionResult:
        result = self.admin.revoke(event or "*", ticket, reason, admin)
        self._record(admin, "revoke", event or "*", ticket, reason, remote, result)
        return result

    def override(self, action: str, event: str, ticket: str, reason: str, admin: str, remote: str) -> ActionResult:
        result = self.admin.override(action, event, ticket, reason, admin)
        self._record(admin, action, event, ticket, reason, remote, result)
        return result

    def denied(self, action: str, event: str, ticket: str, reason: str, account: str, remote: str,
               why: str) -> None:
        """Audit a request the dashboard refused itself (the arbiter never sees it)."""
        self._record(account, action, event, ticket, reason, remote, ActionResult(False, "denied", why))

    def _record(self, admin: str, action: str, event: str, ticket: str, reason: str, remote: str,
                result: ActionResult) -> None:
        try:
            self.history.record_action(self.clock(), admin, action, event, ticket, reason, remote, result.answer,
                                       result.detail)
        except HistoryError as exc:
            self.counters.add("history_errors")
            log.error("admin action not recorded: %s", exc)
        self._dirty = True

    # -- the network thread ----------------------------------------------------------------------------------
    def _received(self, msg: Inbound) -> None:
        now = self.clock()
        if msg.topic.startswith(self._scan_prefix):
            self._inbox.put(("scan", (msg.topic[len(self._scan_prefix):], msg.payload), now))
        elif msg.topic.startswith(self._status_prefix):
            self._inbox.put(("status", (msg.topic[len(self._status_prefix):], msg.payload, msg.retained), now))
        elif msg.topic == self.topics.stream:
            self._inbox.put(("stream", wire.parse_stream(msg.payload), now))
        elif msg.topic == self.topics.arbiter_status:
            self._inbox.put(("arbiter", msg.payload, now))

    # -- the worker ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            scans = []
            for kind, data, received in batch:
                try:
                    scan = self._handle(kind, data, received)
                except (BadMessage, HistoryError, SyncError) as exc:
                    self.counters.add("bad_messages" if isinstance(exc, BadMessage) else "errors")
                    log.warning("dashboard: %s message not applied: %s", kind, exc)
                    continue
                if scan is not None:
                    scans.append(scan)
            self._settle(scans)

    def _take(self) -> list[tuple[str, Any, float]]:
        try:
            batch = [self._inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(batch) < BATCH:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _handle(self, kind: str, data: Any, received: float) -> Any:
        if kind == "scan":
            gate, payload = data
            scan = wire.parse_scan(payload, gate)
            self.push("scan", self.model.scan(scan, received))  # before anything slower: the page waits for it
            self.counters.add("scans")
            self._dirty = True
            return (scan, received)
        self._dirty = True
        if kind == "status":
            gate, payload, retained = data
            self.model.status(gate, payload, received, retained)
        elif kind == "arbiter":
            self.model.arbiter_status(data, received)
            head = data.get("head")
            if data.get("state") != "offline" and isinstance(head, int) and head > self.history.position()[1]:
                self._want_catchup.set()
        elif kind == "stream":
            epoch, items = data
            self._apply(epoch, items)
        elif kind == "reset":  # the catch-up found another arbiter database: follow it from 0
            self.history.reset_stream(data)
            self.model.reset_stream()
        elif kind == "link":
            self.model.link(bool(data), received)
            if data:
                self._want_catchup.set()
            self._last_push = 0.0  # say stale (or live again) at once
        return None

    def _apply(self, epoch: str, items: list[wire.Json]) -> bool:
        """Keep and show the items that follow the position; True if there was a gap."""
        kept, gap = self.history.apply_stream(epoch, items)
        for item in kept:
            self.model.stream_item(item)
        self.counters.add("stream_items", len(kept))
        if gap:
            self.counters.add("stream_gaps")
            self._want_catchup.set()
        return gap

    def _settle(self, scans: list[Any]) -> None:
        if scans:
            try:
                self.history.add_scans(scans)
            except HistoryError as exc:
                self.counters.add("history_errors")
                log.error("scans not kept in the history: %s", exc)
        now = time.monotonic()
        if now - self._last_push >= (PUSH_EVERY if self._dirty else 1.0):
            self._last_push, self._dirty = now, False
            self.push("state", self.model.snapshot(self.clock(), counters=self.counters.snapshot()))

    # -- the catch-up thread --------------------------------------------------------------------------------
    def _catch_ups(self) -> None:
        while not self._stop.is_set():
            self._want_catchup.wait()
            if self._stop.is_set():
                return
            self._want_catchup.clear()
            if not self.link.wait_ready(CATCHUP_RETRY):
                self._want_catchup.set()  # the link-up message asks again anyway
                continue
            try:
                done = self._catch_up()
            except (BadMessage, HistoryError) as exc:
                self.counters.add("catchup_errors")
                log.warning("catch-up failed: %s", exc)
                done = False
            if not done:
                self._stop.wait(CATCHUP_RETRY)
                self._want_catchup.set()

    def _catch_up(self) -> bool:
        """Queue the stream from the stored position up to the arbiter's head; False if it did not answer."""
        def deliver(epoch: str, items: list[wire.Json]) -> bool:
            self._inbox.put(("stream", (epoch, items), self.clock()))  # the worker applies it, in order
            return True

        def reset(epoch: str) -> None:
            self._inbox.put(("reset", epoch, self.clock()))

        return self.follower.catch_up(self.history.position(), deliver, reset, self._stop)
