"""`gate arbiter`, `gate sync` and `gate conflicts`: the multi-gate commands (sync/, docs/mqtt.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from gate.cli.common import (
    HOME_MADE,
    HOME_NEEDED,
    HOME_UNUSED,
    SubParsers,
    check_home,
    command,
    counted,
    home_given,
    iso,
    need_broker,
    outbox_left,
    plural,
    say,
    stop_on_signals,
)
from gate.config import Config
from gate.exc import ConfigError
from gate.wiring import admin_client, arbiter_store_at, open_arbiter, open_store, start_gate_sync

#: where the README's arbiter (--home /var/lib/qrgate-arbiter) and a provisioned one (systemd's StateDirectory,
#: gate/deploy/provision.py INSTALL) keep their SQLite store
INSTALLED_ARBITER_DB = Path("/var/lib/qrgate-arbiter/arbiter.db")


def add(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = command(sub, common, "arbiter", cmd_arbiter,
                 "the central arbiter: answers claims (won/lost), publishes the redemption stream, until SIGTERM",
                 "gate arbiter --broker mqtt://10.0.0.2:1883 --store postgresql://arbiter@db1/qrgate --instance a",
                 home=HOME_MADE)
    p.add_argument("--store", default="", metavar="WHERE",
                   help="its store: a SQLite file or a postgresql:// URL (sync.arbiter_db)")
    p.add_argument("--instance", default="", metavar="NAME",
                   help="this instance's name among several on one database (sync.arbiter_instance)")
    p.add_argument("--group", default="", metavar="GROUP",
                   help="the shared-subscription group of the instances (sync.arbiter_group)")
    p.add_argument("action", nargs="?", choices=["migrate"],
                   help="migrate --from SQLITE_HOME --to postgresql://...: move a SQLite arbiter's state, stream "
                        "positions included, to a new PostgreSQL database (stop that arbiter first)")
    p.add_argument("--from", dest="source", default="", metavar="SQLITE_HOME",
                   help="migrate: the SQLite arbiter's home folder (its arbiter.db) or the file itself")
    p.add_argument("--to", dest="target", default="", metavar="URL", help="migrate: the PostgreSQL database")
    p = command(sub, common, "sync", cmd_sync,
                 "deliver this gate's outbox to the arbiter and apply its stream, until SIGTERM (or --once)",
                 "gate sync --once --broker mqtt://10.0.0.2:1883   # exit 0 once the outbox is empty")
    p.add_argument("--once", action="store_true",
                   help="exit 0 when the outbox is empty, 1 if it is not after sync.drain_wait seconds")
    p = command(sub, common, "conflicts", cmd_conflicts,
                 "conflicts: double entries and list entries let through offline that the arbiter refuses; exit 1 if any",
                 "gate conflicts --arbiter --json --home /var/lib/qrgate-arbiter   # the arbiter's home",
                 home=HOME_UNUSED)  # --arbiter reads the arbiter's store, wherever that is; the gate's needs its home
    p.add_argument("--arbiter", action="store_true",
                   help=f"read the arbiter's store (sync.arbiter_db under --home; without a home given, "
                        f"{INSTALLED_ARBITER_DB} if it is there)")
    p.add_argument("--store", default="", metavar="WHERE",
                   help="with --arbiter: its store, a SQLite file or a postgresql:// URL (as `gate arbiter --store`)")
    p.add_argument("--all", action="store_true", help="also list void ones (the first scan was released)")
    p.add_argument("--json", action="store_true", help="one JSON object a line")


def cmd_arbiter(args: argparse.Namespace, config: Config) -> int:
    if args.action == "migrate":
        return migrate_arbiter(args.source, args.target)
    need_broker(config)
    settings = {"arbiter_instance": args.instance, "arbiter_group": args.group}
    config = dataclasses.replace(config, sync=dataclasses.replace(
        config.sync, **{k: v for k, v in settings.items() if v}))
    arbiter, store = open_arbiter(config, args.store)
    stop = stop_on_signals()

    def ready() -> None:
        say(f"arbiter ready on {arbiter.link.broker} (db {store.path}, epoch {store.epoch}, head {store.head()})")
    try:
        arbiter.run(stop, on_ready=ready)
    finally:
        store.close()
    say(stopped_line(arbiter.counters.snapshot()))
    return 0


def stopped_line(counts: dict[str, int]) -> str:
    """The arbiter's closing line: 'arbiter stopped: 12 claims answered; catchups 2, ...' (tests read the number)."""
    events = counted({k: n for k, n in counts.items() if k != "claims"})
    return f"arbiter stopped: {plural(counts.get('claims', 0), 'claim')} answered{f'; {events}' if events else ''}"


def migrate_arbiter(source: str, target: str) -> int:
    """`gate arbiter migrate`: the SQLite arbiter's state into a new PostgreSQL database, epoch and stream as
    they were (gates go on from their position)."""
    from sync.arbiter.pgstore import PgArbiterStore
    from sync.arbiter.store import ArbiterStore
    from sync.arbiter.stores import is_url

    if not source or not is_url(target):
        raise ConfigError("gate arbiter migrate --from SQLITE_HOME --to postgresql://...: both are needed")
    path = Path(source) / "arbiter.db" if Path(source).is_dir() else Path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: no arbiter store here")
    old, new = ArbiterStore.open(path), PgArbiterStore.open(target)
    try:
        copied = new.adopt(old)
        say(f"migrated {path} to {new.path}: epoch {new.epoch}, head {new.head()}; "
            + ", ".join(f"{table} {n}" for table, n in copied.items()))
    finally:
        old.close()
        new.close()
    return 0


def cmd_sync(args: argparse.Namespace, config: Config) -> int:
    need_broker(config)
    with open_store(config) as store:
        gate_sync = start_gate_sync(config, store)
        if not args.once:
            stop_on_signals(again=lambda _signum: gate_sync.hurry()).wait()
        elif not gate_sync.wait_ready(config.sync.connect_wait):
            print(f"gate: warning: no answer from the arbiter via {gate_sync.link.broker} ({gate_sync.unready()})",
                  file=sys.stderr)
        drained = gate_sync.close(config.sync.drain_wait)
        left = gate_sync.outbox_counts()
    events = counted(gate_sync.counters.snapshot())
    print(f"{outbox_left(left)}{f'; this run: {events}' if events else ''}")
    return 0 if drained else 1


def cmd_conflicts(args: argparse.Namespace, config: Config) -> int:
    named = home_given(args)
    if not args.arbiter:
        check_home(HOME_NEEDED, config, named)
    rows = arbiter_conflicts(arbiter_store_found(config, args.store, named)) if args.arbiter \
        else _gate_conflicts(config)
    return print_conflicts([r for r in rows if args.all or r["state"] == "open"], args.json)


def print_conflicts(rows: list[dict[str, object]], as_json: bool) -> int:
    """One line (or JSON object) per conflict; exit 1 if any (`gate conflicts`, `gate lists conflicts`)."""
    for row in rows:
        if as_json:
            print(json.dumps(row))
            continue
        where = f"list {row['list']}" if row["kind"] == "list" else "single use"
        first = (f"first {row['first_gate']} {iso(row['first_at'])}, " if row["first_gate"] else "")  # type: ignore[arg-type]
        detail = f" ({row['detail']})" if row.get("detail") else ""
        print(f"{row['event']}/{row['ticket_id']} {row['state']} ({where}): {row['words']}{detail}; "
              f"{first}again {row['late_gate']} {iso(row['late_at'])}")  # type: ignore[arg-type]
    return 1 if rows else 0


def conflict_rows(doubles: list[dict[str, object]], lists: list[dict[str, object]],
                  order: str) -> list[dict[str, object]]:
    """Both kinds in one list, ordered by `order` (a column of both): each row as its table has it, plus
    `kind` ("double" or "list"), `list` (None for a double entry), `reason` (a code) and `words` (in words,
    as the dashboard says it: sync/dashboard/words.py)."""
    from sync.dashboard.words import conflict_words

    out = [{**r, "kind": "double", "list": None, "reason": "already_used",
            "words": conflict_words("already_used", str(r["late_gate"]), str(r["first_gate"]), double=True)}
           for r in doubles]
    out += [{**r, "kind": "list", "words": conflict_words(str(r["reason"]), str(r["late_gate"]),
                                                          str(r["first_gate"]) if r["first_gate"] else None)}
            for r in lists]
    return sorted(out, key=lambda r: (r[order] or 0, str(r["late_scan_id"])))


def _gate_conflicts(config: Config) -> list[dict[str, object]]:
    from gate.ledger import Ledger

    with open_store(config) as store:
        ledger = Ledger(store)
        return conflict_rows(ledger.conflicts(), ledger.pass_conflicts(), "recorded_at")


def arbiter_store_found(config: Config, store: str, home_given: bool,
                        installed: Path = INSTALLED_ARBITER_DB) -> str | Path:
    """The arbiter's store for a report: `store`, or sync.arbiter_db under the home; with neither a home nor a
    store given and none in the default home, the one the README's and the provisioned arbiter keep in
    `installed`.  ConfigError (naming --home and --store) when there is none."""
    where = arbiter_store_at(config, store)
    if not isinstance(where, Path) or where.exists():
        return where
    if not (home_given or store) and installed.exists():
        return installed
    raise ConfigError(f"{where}: no arbiter store here: give the arbiter's home (--home DIR, as given to "
                      "`gate arbiter`) or its store (--store FILE or postgresql://...)")


def arbiter_conflicts(where: str | Path, *, doubles: bool = True) -> list[dict[str, object]]:
    """The arbiter's conflicts, double entries (unless not `doubles`) and list conflicts, by stream seq."""
    from sync.arbiter.passes import CONFLICTS
    from sync.arbiter.stores import open_store

    store = open_store(where)
    try:
        return conflict_rows(store.rows("SELECT * FROM conflicts ORDER BY seq") if doubles else [],
                             store.rows(CONFLICTS), "seq")
    finally:
        store.close()


def distribute_revocation(config: Config, event: str | None, ticket_id: str, reason: str, person: str = "") -> int:
    """Send a revocation to the arbiter, which puts it on every gate's stream (naming `person`, the operator);
    exit code 0 once it confirms."""
    with admin_client(config, "revoke") as admin:
        result = admin.revoke(event, ticket_id, reason, person)
    if not result.answered:
        print(f"gate: warning: the arbiter did not confirm via {config.sync.broker}: revoked on this gate only"
              f" ({result.detail})", file=sys.stderr)
        return 1
    print(f"distributed by the arbiter{f' (stream seq {result.seq})' if result.seq else ' (it had it already)'}")
    return 0


def distribute_generation(config: Config, event: str, ticket_id: str, generation: int, *, at: float = 0.0) -> int:
    """Send one raised ownership generation to the arbiter (docs/ownership.md); exit code 0 once it confirms."""
    with admin_client(config, "generation") as admin:
        result = admin.supersede(event, ticket_id, generation, at)
    if not result.answered:
        print(f"gate: warning: the arbiter did not confirm via {config.sync.broker}: gates have not heard of "
              f"generation {generation} yet (run again; {result.detail})", file=sys.stderr)
        return 1
    print(f"generation {generation} of {event}/{ticket_id} on the arbiter's stream (seq {result.seq})")
    return 0
