"""`gate lists ...`: write, sign and show check-in lists (gate/rules.py, docs/checkin-lists.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from gate.cli.common import (
    EXIT_OK,
    EXIT_REJECTED,
    HOME_NEEDED,
    HOME_UNUSED,
    SubParsers,
    check_home,
    command,
    home_given,
    iso,
    say,
)
from gate.config import Config
from gate.exc import ConfigError
from gate.keys import Keyring, KeyStore
from gate.rules import CheckinList, load, sign

if TYPE_CHECKING:
    from sync.arbiter.store import ArbiterStore


def add(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    lists = sub.add_parser("lists", help="check-in lists: which tickets a gate admits, when, how often",
                           description="Check-in lists: products, time windows and entry policy, signed by the "
                                       "issuer (docs/checkin-lists.md).")
    ls = lists.add_subparsers(title="list commands", metavar="ACTION")
    p = command(ls, common, "sign", cmd_lists_sign,
                "sign every [[list]] of an issuer's TOML file with its event's issuer key",
                "gate lists sign lists.toml --out lists/")
    p.add_argument("source", type=Path)
    p.add_argument("--out", required=True, type=Path, help="folder for NAME.list.json (one per list)")
    p.add_argument("--kid", help="issuer key id (default: the newest for the list's event)")
    p = command(ls, common, "show", cmd_lists_show,
                "the list this gate decides by (version, from its file or adopted from the stream, signer), or "
                "signed list files, verified against this gate's keyring",
                "gate lists show   # or: gate lists show lists/vip.list.json")
    p.add_argument("files", nargs="*", type=Path,
                   help="signed list files to verify and show (default: the list of gate.list, as this gate uses it)")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p = command(ls, common, "inside", cmd_lists_inside,
                "tickets inside each list's area: this gate's own scans, or (--arbiter) exact across gates",
                "gate lists inside --json", home=HOME_UNUSED)  # --arbiter reads the arbiter's store; the gate's needs its home
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("--arbiter", action="store_true",
                   help="read the arbiter's store (sync.arbiter_db, on the arbiter's host): exact across gates")
    p.add_argument("--store", default="", metavar="WHERE",
                   help="with --arbiter: its store, a SQLite file or a postgresql:// URL (as `gate arbiter --store`)")
    p = command(ls, common, "conflicts", cmd_lists_conflicts,
                "`gate conflicts --arbiter`, list conflicts only: entries let through offline the arbiter refuses",
                "gate lists conflicts --json --home /var/lib/qrgate-arbiter", home=HOME_UNUSED)
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("--store", default="", metavar="WHERE",
                   help="the arbiter's store, a SQLite file or a postgresql:// URL (default: as `gate conflicts --arbiter`)")


def cmd_lists_sign(args: argparse.Namespace, config: Config) -> int:
    keys = KeyStore(config.keys_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    for lst in CheckinList.from_source(args.source):
        doc = sign(lst, keys.signing_key(lst.event, args.kid))
        path = args.out / f"{lst.name}.list.json"
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        say(f"{path}: {lst.ref} signed by {doc['kid']}")
    return EXIT_OK


def cmd_lists_show(args: argparse.Namespace, config: Config) -> int:
    keyring = KeyStore(config.keys_dir).keyring()
    if not args.files:
        return _show_served(args, config, keyring)
    for path in args.files:
        lst = load(path, keyring)
        signer = _signer(path.read_text(encoding="utf-8"))
        say(json.dumps({**lst.to_json(), "signer": signer}, sort_keys=True) if args.json
            else f"{describe(lst)}; signed by {signer}")
    return EXIT_OK


def _show_served(args: argparse.Namespace, config: Config, keyring: Keyring) -> int:
    """The list this gate decides by: gate.list's file, or a higher version adopted from the stream (chosen as
    the gate chooses it: gate/wiring.py served_version), with where it came from and who signed it."""
    from gate.ledger import Ledger
    from gate.servedlist import choose
    from gate.wiring import open_store

    if not config.gate.list:
        raise ConfigError("this gate serves no check-in list (gate.list): name the signed list files to show")
    path = config.path(config.gate.list)
    from_file = load(path, keyring)
    with open_store(config) as store:
        adopted = Ledger(store).adoption(from_file.name)
    stored = str(adopted["document"]) if adopted else None
    lst = choose(from_file, stored, keyring, f"{config.store_path}: list {from_file.name} adopted from the stream")
    on_stream = adopted is not None and lst is not from_file
    shown: dict[str, object] = {
        **lst.to_json(), "source": "stream" if on_stream else "file", "file": str(path),
        "file_version": from_file.version, "signer": _signer(stored if on_stream and stored else
                                                             path.read_text(encoding="utf-8"))}
    if adopted is not None:
        shown.update(adopted_version=adopted["version"], adopted_seq=adopted["seq"],
                     adopted_at=adopted["adopted_at"], adopted_in_use=on_stream)
    if args.json:
        say(json.dumps(shown, sort_keys=True))
        return EXIT_OK
    if on_stream:
        where = (f"adopted from the stream (item {shown['adopted_seq']}, {iso(shown['adopted_at'])}); "  # type: ignore[arg-type]
                 f"{path} holds version {from_file.version}")
    else:
        where = f"from {path}"
        if adopted is not None:
            where += (f" (version {adopted['version']} adopted from the stream is not used: it no longer verifies or"
                      f" is not higher; see the gate's log)")
    say(f"in use at this gate: {lst.name} version {lst.version} signed by {shown['signer']}, {where}")
    say(describe(lst))
    return EXIT_OK


def _signer(document: str) -> str:
    """The key id a signed list document names (verified by the caller)."""
    try:
        doc = json.loads(document)
    except ValueError:
        return "?"
    return str(doc.get("kid", "?")) if isinstance(doc, dict) else "?"


def cmd_lists_inside(args: argparse.Namespace, config: Config) -> int:
    if not args.arbiter:
        check_home(HOME_NEEDED, config, home_given(args))
    counts = _arbiter_inside(config, args) if args.arbiter else _gate_inside(config)
    for name, (inside, entries) in counts.items():
        say(json.dumps({"list": name, "inside": inside, "entries": entries}) if args.json
            else f"{name}: {inside} inside, {entries} entries admitted")
    if not counts and not args.json:
        say("no scans decided by a check-in list at this gate")
    return EXIT_OK


def cmd_lists_conflicts(args: argparse.Namespace, config: Config) -> int:
    """`gate conflicts --arbiter`, its list conflicts only."""
    from gate.cli.sync import arbiter_conflicts, arbiter_store_found, print_conflicts

    rows = arbiter_conflicts(arbiter_store_found(config, args.store, home_given(args)), doubles=False)
    return EXIT_REJECTED if print_conflicts(rows, args.json) else EXIT_OK


def _gate_inside(config: Config) -> dict[str, tuple[int, int]]:
    from gate.wiring import open_store

    with open_store(config) as store:
        return store.inside()


def _arbiter_inside(config: Config, args: argparse.Namespace) -> dict[str, tuple[int, int]]:
    store = _arbiter(config, args)
    try:
        return store.inside()
    finally:
        store.close()


def _arbiter(config: Config, args: argparse.Namespace) -> ArbiterStore:
    """The arbiter's store, found as `gate conflicts --arbiter` finds it (--store, the home, the installed one)."""
    from gate.cli.sync import arbiter_store_found
    from sync.arbiter.stores import open_store

    return open_store(arbiter_store_found(config, args.store, home_given(args)))


def describe(lst: CheckinList) -> str:
    """One line a person reads: what the list admits and how often."""
    products = ", ".join(lst.products) or "every product"
    if not lst.entries:
        policy = "unlimited entries"
    else:
        policy = f"{lst.entries} entr{'y' if lst.entries == 1 else 'ies'}" + (" a day" if lst.per_day else " in total")
    extras = ["re-entry after exit" if lst.reentry else "", f"{lst.min_gap} min between entries" if lst.min_gap else "",
              f"capacity {lst.capacity}" if lst.capacity else "",
              f"{len(lst.windows)} time window(s)" if lst.windows else ""]
    more = "".join(f", {e}" for e in extras if e)
    return f"{lst.ref} ({lst.event}, {lst.timezone}): {products}; {policy}{more}"
