"""Wiring: build the decision core from a Config (the one place that does it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from gate.config import Config
from gate.decide import Decider
from gate.keys import KeyStore
from gate.store import Store
from gate.verify import Verifier


def open_store(config: Config) -> Store:
    return Store.open(config.store_path, busy_timeout=config.store.busy_timeout)


def build_verifier(config: Config) -> Verifier:
    keyring = KeyStore(config.keys_dir).keyring()
    return Verifier(keyring, config.gate.events, skew=config.gate.clock_skew)


def build_decider(config: Config, store: Store | None = None) -> Decider:
    return Decider(build_verifier(config), store or open_store(config), config.gate_id, clock=time.time)


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
