"""The `gate` command.  Exit codes: 0 success (all admitted), 1 a ticket was
rejected or a check failed, 2 usage, config, key or store error."""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from gate import __version__
from gate.app import gate_session, iso, open_store, parse_time
from gate.config import Config, describe, load_config
from gate.decide import Decision
from gate.exc import ConfigError, GateError
from gate.keys import IssuerKey, KeyStore
from gate.ticket import Ticket

EXIT_OK, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2

Handler = Callable[[argparse.Namespace, Config], int]
GLOBAL_DEFAULTS: dict[str, object] = {"home": None, "config": None, "gate_id": None, "verbose": False,
                                      "broker": None, "settings": []}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, default in GLOBAL_DEFAULTS.items():  # SUPPRESS lets them stand before or after the command
        if not hasattr(args, name):
            setattr(args, name, default)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_ERROR
    try:
        config = load_config(args.home, args.config, overrides=_overrides(args))
        return handler(args, config)
    except GateError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line for the operator, the traceback only in the debug log
        logging.getLogger("gate").debug("unexpected error", exc_info=True)
        print(f"gate: error: unexpected {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
        return EXIT_ERROR


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {}
    keys = {key for key, *_ in describe()}
    for setting in args.settings:
        key, sep, value = setting.partition("=")
        if not sep or key.strip() not in keys:
            raise ConfigError(f"option --set {setting!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(keys))}")
        overrides[key.strip()] = value
    overrides.update({k: v for k, v in (("gate.id", args.gate_id), ("sync.broker", args.broker)) if v is not None})
    return overrides


# -- parser -----------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", default=argparse.SUPPRESS, metavar="DIR",
                        help="data folder: keys, store, gate.toml (env QRGATE_HOME)")
    common.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                        help="config file (default: HOME/gate.toml)")
    common.add_argument("--gate-id", default=argparse.SUPPRESS, metavar="ID", help="this gate's id (gate.id)")
    common.add_argument("--broker", default=argparse.SUPPRESS, metavar="URL",
                        help="MQTT broker, mqtt://host:port (sync.broker; env QRGATE_SYNC_BROKER)")
    common.add_argument("--set", dest="settings", action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE",
                        help="any config key, e.g. --set sync.claim_budget=0.5 (repeatable)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    parser = argparse.ArgumentParser(
        prog="gate", parents=[common], description="qrgate: offline-first QR ticket gate.",
        epilog="Example: gate keys new --event show7 && gate mint --event show7 --seat 12B | gate check")
    parser.add_argument("--version", action="version", version=f"qrgate {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in COMMANDS:
        register(sub, common)
    return parser


def _time_arg(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _command(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser,
             name: str, handler: Handler, help: str, example: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, parents=[common], help=help, description=help, epilog=f"Example: {example}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=handler)
    return p


def add_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    keys = sub.add_parser("keys", help="issuer keys and gate keyrings",
                          description="Issuer keys and gate keyrings.")
    ks = keys.add_subparsers(title="key commands", metavar="ACTION")
    p = _command(ks, common, "new", cmd_keys_new, "create an issuer key for an event (file 0600)",
                 "gate keys new --event show7 --scheme ed25519")
    p.add_argument("--event", required=True)
    p.add_argument("--scheme", choices=("hmac", "ed25519"), default="hmac")
    _command(ks, common, "list", cmd_keys_list, "list key ids, schemes and events", "gate keys list")
    p = _command(ks, common, "export", cmd_keys_export,
                 "write what a gate needs to verify an event (derived HMAC key or public key)",
                 "gate keys export --event show7 --out show7.keyring.json")
    p.add_argument("--event", required=True)
    p.add_argument("--out", required=True, type=Path)
    p = _command(ks, common, "import", cmd_keys_import, "install an exported keyring on this gate",
                 "gate keys import show7.keyring.json")
    p.add_argument("file", type=Path)
    p = _command(ks, common, "retire", cmd_keys_retire, "retire a key id: its tickets are rejected",
                 "gate keys retire 3fa2c1d0")
    p.add_argument("kid")


def add_mint(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "mint", cmd_mint, "mint signed tickets: one QR text a line",
                 "gate mint --event show7 --seat 12B --id 9f2 --qr out/")
    p.add_argument("--event", required=True)
    p.add_argument("--seat", default="")
    p.add_argument("--id", dest="ticket_id", help="ticket id (with --count N: ID-1 .. ID-N); default random")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--valid-from", type=_time_arg, default=0, metavar="T", help="unix seconds or ISO 8601")
    p.add_argument("--valid-until", type=_time_arg, default=0, metavar="T", help="unix seconds or ISO 8601")
    p.add_argument("--generation", type=int, default=0, help="ownership generation")
    p.add_argument("--kid", help="issuer key id (default: the newest for the event)")
    p.add_argument("--qr", type=Path, metavar="DIR", help="also write ID.png and ID.svg QR images here")


def add_check(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "check", cmd_check,
                 "decide tickets (arguments, or one a line on stdin) against the local store; with --broker,\n"
                 "each is claimed at the arbiter first (the scan daemon's path)",
                 "gate mint --event show7 --seat 12B --id 9f2 | gate check --json")
    p.add_argument("tickets", nargs="*", metavar="TICKET")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p = _command(sub, common, "revoke", cmd_revoke, "add a ticket id to the revocation list",
                 "gate revoke 9f2 --event show7 --reason 'refunded'")
    p.add_argument("ticket_id")
    p.add_argument("--event", help="only this event (default: every event)")
    p.add_argument("--reason", default="")
    p = _command(sub, common, "history", cmd_history, "every scan of one ticket at this gate",
                 "gate history 9f2 --event show7")
    p.add_argument("ticket_id")
    p.add_argument("--event")
    p.add_argument("--json", action="store_true")


def add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    from gate.demo import add_arguments, run_demo
    p = _command(sub, common, "demo", run_demo, "the worked example on a throwaway key and store", "gate demo")
    add_arguments(p)


def add_scan(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    from gate.cli_scan import add_scan as add
    add(sub, common)


def add_sync(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    from gate.cli_sync import add_sync as add
    add(sub, common)


def add_deploy(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    from gate.cli_deploy import add_deploy as add
    add(sub, common)


def add_ownership(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """`gate boxoffice`, `gate wallet`, `gate fake-agent`, `gate supersede` (gate/chain/, docs/ownership.md)."""
    from gate.chain.cli_boxoffice import add_boxoffice, add_fake_agent, add_supersede
    from gate.chain.cli_wallet import add_wallet
    for add in (add_boxoffice, add_wallet, add_fake_agent, add_supersede):
        add(sub, common)


def add_dashboard(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    from gate.cli_dashboard import add_dashboard as add
    add(sub, common)


COMMANDS = [add_keys, add_mint, add_check, add_demo, add_scan, add_sync, add_deploy, add_ownership, add_dashboard]


# -- handlers ------------------------------------------------------------------------

def cmd_keys_new(args: argparse.Namespace, config: Config) -> int:
    key = IssuerKey.new(args.event, args.scheme)
    path = KeyStore(config.keys_dir).add_issuer_key(key)
    print(f"{key.kid} {key.scheme} {key.event} {path}")
    return EXIT_OK


def cmd_keys_list(args: argparse.Namespace, config: Config) -> int:
    store = KeyStore(config.keys_dir)
    issuers = {k.kid for k in store.issuer_keys()}
    for key in store.keyring():
        role = "issuer" if key.kid in issuers else "verify"
        print(f"{key.kid} {key.scheme:7} {key.event} {role}{' retired' if key.retired else ''}")
    return EXIT_OK


def cmd_keys_export(args: argparse.Namespace, config: Config) -> int:
    for key in KeyStore(config.keys_dir).export(args.event, args.out):
        print(f"{key.kid} {key.scheme} {key.event} -> {args.out}")
    return EXIT_OK


def cmd_keys_import(args: argparse.Namespace, config: Config) -> int:
    for key in KeyStore(config.keys_dir).import_keyring(args.file):
        print(f"{key.kid} {key.scheme} {key.event} imported")
    return EXIT_OK


def cmd_keys_retire(args: argparse.Namespace, config: Config) -> int:
    if not KeyStore(config.keys_dir).retire(args.kid):
        print(f"gate: error: no key with id {args.kid}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.kid} retired")
    return EXIT_OK


def cmd_mint(args: argparse.Namespace, config: Config) -> int:
    if args.count < 1:
        print("gate: error: --count must be at least 1", file=sys.stderr)
        return EXIT_ERROR
    key = KeyStore(config.keys_dir).signing_key(args.event, args.kid)
    if args.qr:
        args.qr.mkdir(parents=True, exist_ok=True)
    for ticket_id in mint_ids(args.ticket_id, args.count):
        ticket = Ticket(event=args.event, ticket_id=ticket_id, seat=args.seat, valid_from=args.valid_from,
                        valid_until=args.valid_until, generation=args.generation)
        text = key.sign(ticket)
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

    qr = segno.make_qr(text, error="m", boost_error=False)
    qr.save(str(stem) + ".png", scale=8, border=4)
    qr.save(str(stem) + ".svg", scale=8, border=4)


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    rejected = False
    lines: Iterable[str] = args.tickets or (line.rstrip("\r\n") for line in sys.stdin)
    with gate_session(config) as decider:  # with sync.broker set: claims at the arbiter (docs/mqtt.md)
        for text in lines:
            if not args.tickets and not text.strip():
                continue
            decision = decider.decide(text)
            rejected |= not decision.admitted
            print(json.dumps(decision.to_dict()) if args.json else format_decision(decision), flush=True)
    return EXIT_REJECTED if rejected else EXIT_OK


def format_decision(d: Decision) -> str:
    parts = [d.outcome.value, d.reason.value or "-"]
    if d.ticket_id is not None:
        parts.append(f"{d.event}/{d.ticket_id}")
        if d.seat:
            parts.append(f"seat={d.seat}")
    if d.first_gate is not None:
        parts.append(f"first_used_at={d.first_gate} first_used={iso(d.first_at)}")
    if d.provisional:
        parts.append("provisional")
    if d.detail:
        parts.append(f"({d.detail})")
    return " ".join(parts)


def cmd_revoke(args: argparse.Namespace, config: Config) -> int:
    with open_store(config) as store:
        added = store.revoke(args.event, args.ticket_id, at=time.time(), by=config.gate_id, reason=args.reason)
    print(f"{args.event or '*'}/{args.ticket_id} {'revoked' if added else 'was already revoked'}")
    if config.sync.broker:  # every gate gets it through the arbiter's stream
        from gate.cli_sync import distribute_revocation
        return distribute_revocation(config, args.event, args.ticket_id, args.reason)
    return EXIT_OK


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


if __name__ == "__main__":
    sys.exit(main())
