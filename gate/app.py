"""Wiring: build the decision core from a Config (the one place that does it)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gate.config import Config
from gate.decide import Claimer, Decider, DecisionListener
from gate.keys import KeyStore
from gate.store import Store
from gate.verify import Verifier

if TYPE_CHECKING:  # sync pulls in paho: only runs with a broker pay for it
    from sync import Broker, Credentials, GateSync, Topics

log = logging.getLogger(__name__)


def open_store(config: Config) -> Store:
    return Store.open(config.store_path, busy_timeout=config.store.busy_timeout)


def build_verifier(config: Config) -> Verifier:
    keyring = KeyStore(config.keys_dir).keyring()
    return Verifier(keyring, config.gate.events, skew=config.gate.clock_skew, code_skew=config.ownership.code_skew)


def build_decider(config: Config, store: Store | None = None, claimer: Claimer | None = None,
                  on_decision: DecisionListener | None = None) -> Decider:
    return Decider(build_verifier(config), store or open_store(config), config.gate_id, clock=time.time,
                   claimer=claimer, on_decision=on_decision)


def sync_parts(config: Config) -> tuple[Broker, Topics, Credentials]:
    """The broker, topic scheme and credentials of `config.sync` (SyncError if unusable)."""
    from sync import Broker, Credentials, Topics

    s = config.sync

    def home_path(name: str) -> str:
        return str(config.path(name)) if name else ""
    password = config.path(s.password_file) if s.password_file else None
    credentials = Credentials.load(s.username, password, home_path(s.ca_file), home_path(s.cert_file),
                                   home_path(s.key_file))
    return Broker.parse(s.broker), Topics(s.prefix), credentials


def start_gate_sync(config: Config, store: Store) -> GateSync:
    """This gate's link to the arbiter, started (it connects in the background)."""
    from sync import GateSync, Ledger

    broker, topics, credentials = sync_parts(config)
    s = config.sync
    gate_sync = GateSync(Ledger(store), config.gate_id, broker, topics, budget=s.claim_budget, batch=s.batch,
                         status_every=s.status_every, keepalive=s.keepalive,
                         reconnect=(s.reconnect_min, s.reconnect_max), credentials=credentials,
                         client_suffix=f"-{os.getpid()}")
    gate_sync.start()
    return gate_sync


@contextmanager
def gate_session(config: Config, *, after_answer: Any = None) -> Iterator[Decider]:
    """The decision core for one run of `gate check` or the scan daemon.

    Without `sync.broker` it decides from the local store alone, exactly as
    `build_decider`.  With one, each scan is claimed at the arbiter (sync/,
    docs/mqtt.md): it waits up to `sync.connect_wait` at start for the
    arbiter (then decides offline until it answers) and up to
    `sync.drain_wait` at exit for the outbox to drain.
    """
    store = open_store(config)
    try:
        if not config.sync.broker:
            yield build_decider(config, store)
            return
        from sync import GateClaimer
        from sync.dashboard import GateFeed

        gate_sync = start_gate_sync(config, store)
        # each decision on {prefix}/scan/{gate} for dashboards; Home Assistant discovery on every connect
        feed = GateFeed(gate_sync.link, gate_sync.topics, config.gate_id,
                        ha_prefix=config.sync.ha_prefix if config.sync.ha_discovery else None)
        gate_sync.on_connect.append(feed.connected)
        if gate_sync.link.ready:
            feed.connected()
        try:
            if not gate_sync.wait_ready(config.sync.connect_wait):
                log.warning("no answer from the arbiter via %s within %.1f s: deciding offline (%s) until it answers",
                            gate_sync.link.broker, config.sync.connect_wait, config.sync.offline_policy)
            claimer = GateClaimer(gate_sync.ledger, gate_sync, config.sync.offline_policy, after_answer=after_answer)
            yield build_decider(config, store, claimer, on_decision=feed.decided)
        finally:
            if not gate_sync.close(config.sync.drain_wait):
                log.warning("scans not yet confirmed by the arbiter stay in the outbox: `gate sync` delivers them")
    finally:
        store.close()


def iso(ts: float | None) -> str:
    """Unix seconds as ISO 8601 UTC ("2026-11-21T19:02:03.120Z"); '-' for None."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> int:
    """Unix seconds from digits or ISO 8601 (a time without zone is UTC)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither unix seconds nor an ISO 8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())
