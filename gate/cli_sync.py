"""`gate arbiter`, `gate sync` and `gate conflicts`: the multi-gate commands (sync/, docs/mqtt.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from gate.app import iso, open_store, start_gate_sync, sync_parts
from gate.config import Config
from gate.exc import ConfigError
from gate.signals import on_stop_signals

if TYPE_CHECKING:
    from sync.wire import Json

REQUEST_TIMEOUT = 5.0


def add_sync(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    from gate.cli import _command

    _command(sub, common, "arbiter", cmd_arbiter,
             "the central arbiter: answers claims (won/lost), publishes the redemption stream, until SIGTERM",
             "gate arbiter --broker mqtt://10.0.0.2:1883 --home /var/lib/qrgate-arbiter")
    p = _command(sub, common, "sync", cmd_sync,
                 "deliver this gate's outbox to the arbiter and apply its stream, until SIGTERM (or --once)",
                 "gate sync --once --broker mqtt://10.0.0.2:1883   # exit 0 once the outbox is empty")
    p.add_argument("--once", action="store_true",
                   help="exit 0 when the outbox is empty, 1 if it is not after sync.drain_wait seconds")
    p = _command(sub, common, "conflicts", cmd_conflicts,
                 "double entries: late (offline) admissions of tickets already used elsewhere; exit 1 if any",
                 "gate conflicts --arbiter --json")
    p.add_argument("--arbiter", action="store_true", help="read the arbiter's store (sync.arbiter_db)")
    p.add_argument("--all", action="store_true", help="also list void ones (the first scan was released)")
    p.add_argument("--json", action="store_true", help="one JSON object a line")


def _need_broker(config: Config) -> None:
    if not config.sync.broker:
        raise ConfigError("no broker: give --broker mqtt://host:port (or sync.broker, or QRGATE_SYNC_BROKER)")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    on_stop_signals(lambda _signum: stop.set())
    return stop


def cmd_arbiter(args: argparse.Namespace, config: Config) -> int:
    from sync import Arbiter, ArbiterStore

    _need_broker(config)
    broker, topics, credentials = sync_parts(config)
    store = ArbiterStore.open(config.path(config.sync.arbiter_db))
    s = config.sync
    arbiter = Arbiter(store, broker, topics, keepalive=s.keepalive, reconnect=(s.reconnect_min, s.reconnect_max),
                      credentials=credentials, status_every=s.status_every)
    stop = _stop_on_signals()

    def ready() -> None:
        say(f"arbiter ready on {broker} (db {store.path}, epoch {store.epoch}, head {store.head()})")
    try:
        arbiter.run(stop, on_ready=ready)
    finally:
        store.close()
    say(f"arbiter stopped: {json.dumps(arbiter.counters.snapshot())}")
    return 0


def say(line: str) -> None:
    """Print a line for whoever started us; if they stopped reading (a closed pipe), say nothing more."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error again at exit


def cmd_sync(args: argparse.Namespace, config: Config) -> int:
    from sync import Ledger

    _need_broker(config)
    with open_store(config) as store:
        gate_sync = start_gate_sync(config, store)
        if not args.once:
            _stop_on_signals().wait()
        elif not gate_sync.wait_ready(config.sync.connect_wait):
            print(f"gate: warning: no answer from the arbiter via {gate_sync.link.broker}", file=sys.stderr)
        drained = gate_sync.close(config.sync.drain_wait)
        left = Ledger(store).outbox_counts()
    print(f"outbox {'empty' if not left else json.dumps(left)}; {json.dumps(gate_sync.counters.snapshot())}")
    return 0 if drained else 1


def cmd_conflicts(args: argparse.Namespace, config: Config) -> int:
    rows = _arbiter_conflicts(config) if args.arbiter else _gate_conflicts(config)
    rows = [r for r in rows if args.all or r["state"] == "open"]
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{row['event']}/{row['ticket_id']} {row['state']}: first {row['first_gate']} "
                  f"{iso(row['first_at'])}, again {row['late_gate']} {iso(row['late_at'])}")  # type: ignore[arg-type]
    return 1 if rows else 0


def _gate_conflicts(config: Config) -> list[dict[str, object]]:
    from sync import Ledger

    with open_store(config) as store:
        return Ledger(store).conflicts()


def _arbiter_conflicts(config: Config) -> list[dict[str, object]]:
    from sync import ArbiterStore

    path = config.path(config.sync.arbiter_db)
    if not path.exists():
        raise ConfigError(f"{path}: no arbiter store here (sync.arbiter_db)")
    store = ArbiterStore.open(path)
    try:
        return store.rows("SELECT * FROM conflicts ORDER BY seq")
    finally:
        store.close()


def ask_arbiter(config: Config, what: str, key: str, entries: list[Any]) -> tuple[Json | None, str]:
    """One admin request (`key`: revocations or generations) on `revoke/{gate.id}`, over a short-lived link.

    Returns (the arbiter's reply, or None if it did not answer within REQUEST_TIMEOUT; the broker, for
    messages).  `what` names the link's purpose in its client id.
    """
    from sync import Link, wire

    broker, topics, credentials = sync_parts(config)
    sender = config.gate_id
    link = Link(broker, f"{sender}-{what}-{os.getpid()}", subscriptions=[], reply_topic=topics.reply(sender),
                on_message=lambda _msg: None, credentials=credentials)
    link.start()
    try:
        if not link.wait_ready(config.sync.connect_wait):
            return None, str(broker)
        return link.request(topics.request("revoke", sender), wire.request(key, entries), REQUEST_TIMEOUT), str(broker)
    finally:
        link.stop()


def first_seq(reply: Json) -> int | None:
    """The stream sequence number of the first answer in a reply (None if it made no stream item)."""
    from sync import wire

    answers = wire.parse_answers(reply)
    return answers[0].seq if answers else None


def distribute_revocation(config: Config, event: str | None, ticket_id: str, reason: str) -> int:
    """Send a revocation to the arbiter, which puts it on every gate's stream; exit code 0 once it confirms."""
    from sync import wire

    revocation = wire.Revocation(event or "*", ticket_id, config.gate_id, reason)
    reply, broker = ask_arbiter(config, "revoke", "revocations", [revocation])
    if reply is None:
        print(f"gate: warning: the arbiter did not confirm via {broker}: revoked on this gate only",
              file=sys.stderr)
        return 1
    seq = first_seq(reply)
    print(f"distributed by the arbiter{f' (stream seq {seq})' if seq else ' (it had it already)'}")
    return 0
