"""The `gate` command: the parser, the entry point, and one module per command group.

Exit codes (every command): 0 success (all admitted), 1 a ticket was rejected or a check failed, 2 usage,
config, key or store error (gate/cli/common.py).  The console script calls `main`; nothing else imports
this package.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from gate import __version__
from gate.cli.common import EXIT_ERROR, Handler, SubParsers, check_home
from gate.config import describe, did_you_mean, load_config
from gate.exc import ConfigError, GateError

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
        check_home(args.home_rule, config, given=bool(args.home or os.environ.get("QRGATE_HOME")))
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
        if not sep:
            raise ConfigError(f"option --set {setting!r}: expected KEY=VALUE, e.g. --set sync.claim_budget=0.5")
        if key.strip() not in keys:
            raise ConfigError(f"option --set {setting!r}: unknown key {key.strip()}{did_you_mean(key.strip(), keys)}")
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
    for add in commands():
        add(sub, common)
    return parser


def commands() -> list[Callable[[SubParsers, argparse.ArgumentParser], None]]:
    """Each command module's `add`, in the order `gate --help` lists them (each module imports the rest of
    what it uses only when its command runs)."""
    from gate.cli import boxoffice, dashboard, demo, deploy, keys, lists, scan, sync, tickets, wallet

    return [keys.add, tickets.add, lists.add, demo.add, scan.add, sync.add, deploy.add, boxoffice.add, wallet.add,
            dashboard.add]


if __name__ == "__main__":
    sys.exit(main())
