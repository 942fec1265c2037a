"""`gate mint`, `gate check`, `gate revoke` and `gate history`: tickets at this gate."""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from gate.cli.common import EXIT_ERROR, EXIT_OK, EXIT_REJECTED, SubParsers, command, format_decision, iso, time_arg
from gate.config import Config
from gate.keys import KeyStore
from gate.product import with_product
from gate.ticket import QR_ERROR, Ticket
from gate.wiring import gate_session, open_store


def add(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = command(sub, common, "mint", cmd_mint, "mint signed tickets: one QR text a line",
                 "gate mint --event show7 --seat 12B --id 9f2 --qr out/")
    p.add_argument("--event", required=True)
    p.add_argument("--seat", default="")
    p.add_argument("--id", dest="ticket_id", help="ticket id (with --count N: ID-1 .. ID-N); default random")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--valid-from", type=time_arg, default=0, metavar="T", help="unix seconds, ISO 8601, or now, +1d, -2h")
    p.add_argument("--valid-until", type=time_arg, default=0, metavar="T", help="unix seconds, ISO 8601, or now, +1d, -2h")
    p.add_argument("--generation", type=int, default=0, help="ownership generation")
    p.add_argument("--product", default="", help="product/category for check-in lists, e.g. vip (gate/product.py)")
    p.add_argument("--kid", help="issuer key id (default: the newest for the event)")
    p.add_argument("--qr", type=Path, metavar="DIR", help="also write ID.png and ID.svg QR images here")


    p = command(sub, common, "check", cmd_check,
                 "decide tickets (arguments, or one a line on stdin) against the local store; with --broker,\n"
                 "each is claimed at the arbiter first (the scan daemon's path)",
                 "gate mint --event show7 --seat 12B --id 9f2 | gate check --json")
    p.add_argument("tickets", nargs="*", metavar="TICKET")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("--direction", choices=("in", "out"),
                   help="the way of these scans at a gate.direction = \"both\" gate of a check-in list (default in)")
    p = command(sub, common, "revoke", cmd_revoke, "add a ticket id to the revocation list",
                 "gate revoke 9f2 --event show7 --reason 'refunded'")
    p.add_argument("ticket_id")
    p.add_argument("--event", help="only this event (default: every event)")
    p.add_argument("--reason", default="")
    p.add_argument("--admin", default=None, metavar="NAME",
                   help="with a broker: the person revoking, shown with the revocation on the dashboard "
                        "(default: your login name)")
    p = command(sub, common, "history", cmd_history, "every scan of one ticket at this gate",
                 "gate history 9f2 --event show7")
    p.add_argument("ticket_id")
    p.add_argument("--event")
    p.add_argument("--json", action="store_true")



def cmd_mint(args: argparse.Namespace, config: Config) -> int:
    if args.count < 1:
        print("gate: error: --count must be at least 1", file=sys.stderr)
        return EXIT_ERROR
    key = KeyStore(config.keys_dir).signing_key(args.event, args.kid)
    if key.holder_only:  # its gates refuse plain tickets: minting them would only make INVALID at the door
        print(f"gate: error: key {key.kid} is holder-only: its tickets are sold to wallets by the box office "
              "(`gate boxoffice`), a plain ticket would be refused at every gate", file=sys.stderr)
        return EXIT_ERROR
    if args.valid_until and args.valid_until <= time.time():
        print(f"gate: warning: --valid-until {iso(args.valid_until)} is over already: every gate says INVALID "
              "expired", file=sys.stderr)
    if args.qr:
        args.qr.mkdir(parents=True, exist_ok=True)
    for ticket_id in mint_ids(args.ticket_id, args.count):
        ticket = Ticket(event=args.event, ticket_id=ticket_id, seat=args.seat, valid_from=args.valid_from,
                        valid_until=args.valid_until, generation=args.generation)
        text = key.sign(with_product(ticket, args.product))
        print(text)
        if args.qr:
            write_qr(text, args.qr / ticket_id)
    return EXIT_OK


def mint_ids(base: str | None, count: int) -> Iterable[str]:
    if base and count == 1:
        return [base]
    if base:
        return [f"{base}-{n}" for n in range(1, count + 1)]
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(secrets.token_hex(4))
    return sorted(ids)


def write_qr(text: str, stem: Path) -> None:
    import segno

    qr = segno.make_qr(text, error=QR_ERROR, boost_error=False)
    qr.save(str(stem) + ".png", scale=8, border=4)
    qr.save(str(stem) + ".svg", scale=8, border=4)


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    rejected = False
    lines: Iterable[str] = args.tickets or (line.rstrip("\r\n") for line in sys.stdin)
    with gate_session(config) as decider:  # with sync.broker set: claims at the arbiter (docs/mqtt.md)
        for text in lines:
            if not args.tickets and not text.strip():
                continue
            decision = decider.decide(text, direction=args.direction)
            rejected |= not decision.admitted
            print(json.dumps(decision.to_dict()) if args.json else format_decision(decision), flush=True)
    return EXIT_REJECTED if rejected else EXIT_OK


def cmd_revoke(args: argparse.Namespace, config: Config) -> int:
    with open_store(config) as store:
        added = store.revoke(args.event, args.ticket_id, at=time.time(), by=config.gate_id, reason=args.reason)
    print(f"{args.event or '*'}/{args.ticket_id} {'revoked' if added else 'was already revoked'}")
    if config.sync.broker:  # every gate gets it through the arbiter's stream
        from gate.cli.sync import distribute_revocation
        return distribute_revocation(config, args.event, args.ticket_id, args.reason,
                                     login_name() if args.admin is None else args.admin)
    return EXIT_OK


def login_name() -> str:
    """Who runs this command (the person a revocation names); "" when the system cannot say."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (a bare container)
        return ""


def cmd_history(args: argparse.Namespace, config: Config) -> int:
    with open_store(config) as store:
        rows = store.history(args.ticket_id, args.event)
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            print(f"{iso(row['at'])} {row['gate_id']} {row['event']}/{row['ticket_id']} "  # type: ignore[arg-type]
                  f"{row['outcome']} {row['reason'] or '-'} {row['detail']}".rstrip())
    return EXIT_OK if rows else EXIT_REJECTED
