"""A gate's feed for dashboards: every decision on ``{prefix}/scan/{gate}``, and Home Assistant discovery.

What a caller may rely on:

* `decided` never raises and never waits for the network: it hands the
  message to the MQTT client (QoS 0) or, with no broker, drops it.  Each is
  counted in the gate's status counters (``scans_sent``, ``scans_dropped``).
  A decision is final before it is published; the feed cannot change it.
* `connected` (called on every connect) publishes the Home Assistant sensor
  configs, retained, when discovery is on (sync/gateside/discovery.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gate.decide import Decision
from sync.exc import SyncError
from sync.gateside.discovery import discovery_configs
from sync.link import Link
from sync.topics import Topics
from sync.wire import scan_payload

log = logging.getLogger(__name__)


class GateFeed:
    """Publishes one gate's decisions; `ha_prefix` None: no Home Assistant discovery."""

    def __init__(self, link: Link, topics: Topics, gate_id: str, *, ha_prefix: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.link = link
        self.counters = link.counters
        self.gate_id = gate_id
        self.topic = topics.scan(gate_id)
        self.status_topic = topics.status(gate_id)
        self.ha_prefix = ha_prefix
        self.clock = clock

    def decided(self, decision: Decision) -> None:
        """Publish one final decision (a gate.decide.DecisionListener)."""
        try:
            sent = self.link.publish(self.topic, scan_payload(decision, self.clock()), qos=0)
        except (SyncError, ValueError, TypeError) as exc:  # paho refuses, or a field cannot be encoded
            log.warning("scan %s not published: %s", decision.scan_id, exc)
            sent = False
        self.counters.add("scans_sent" if sent else "scans_dropped")

    def connected(self) -> None:
        """Announce this gate to Home Assistant (when discovery is on); called on every connect."""
        if self.ha_prefix is None:
            return
        sent = sum(self.link.publish(topic, payload, retain=True)
                   for topic, payload in discovery_configs(self.gate_id, self.status_topic, self.ha_prefix))
        self.counters.add("ha_configs_sent", sent)
