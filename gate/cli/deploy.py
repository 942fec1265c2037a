"""`gate provision`: the venue's CA, broker files and one bundle per gate, arbiter and dashboard
(gate/provision.py; docs/operations.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gate.cli.common import HOME_MADE, SubParsers, command
from gate.config import Config
from gate.deploy.provision import BROKER_DIR, INSTALL, Report, Venue

BROKER_INSTALL = (f"sudo install -d -m 0750 -g mosquitto {BROKER_DIR} && "
                  f"sudo install -m 0640 -g mosquitto {{broker}}/* {BROKER_DIR}/")


def add(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = command(sub, common, "provision", cmd_provision,
                 "create or refresh the venue's CA and broker files (--mosquitto), or one bundle: config, broker\n"
                 "credential, TLS client files and (gates) verification keys (--gate ID, --arbiter, --dashboard).\n"
                 "Safe to run again: existing credentials are kept unless --rotate.",
                 "gate provision --mosquitto --broker-url mqtts://gates.venue.lan:8883 && "
                 "gate provision --gate gate-north-1 --event show7", home=HOME_MADE)
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--mosquitto", action="store_true",
                      help="the venue's CA, and the broker's certificate, config, password file and ACL")
    role.add_argument("--gate", metavar="ID", help="a gate's bundle (ID: its gate.id and MQTT user name)")
    role.add_argument("--arbiter", action="store_true", help="the arbiter's bundle")
    role.add_argument("--dashboard", action="store_true", help="the dashboard's bundle (read all, admin commands)")
    role.add_argument("--retire-gate", metavar="ID", help="retire a gate: revoke its certificate (broker/crl.pem), "
                      "remove its password and ACL block, move its bundle to retired/")
    p.add_argument("--venue", type=Path, metavar="DIR", help="the venue folder (default: HOME/venue); keep it private "
                   "and backed up: it holds the CA key and every credential")
    p.add_argument("--broker-url", metavar="URL", help="mqtts://HOST[:PORT] the gates connect to (first run; kept in "
                   "DIR/venue.toml)")
    p.add_argument("--broker-host", action="append", default=[], metavar="NAME",
                   help="another name or address of the broker for its certificate (repeatable)")
    p.add_argument("--prefix", help="topic prefix (sync.prefix) for the venue's first run; default qrgate")
    p.add_argument("--event", action="append", default=[], metavar="EVENT",
                   help="--gate: admit only this event and hold only its keys (repeatable; default: every event "
                        "with an issuer key in HOME/keys)")
    p.add_argument("--listen", metavar="ADDR",
                   help="--dashboard: the address its page listens on (dashboard.host; first time 127.0.0.1), also "
                        "named in its HTTPS certificate and Host allow-list")
    p.add_argument("--rotate", action="store_true",
                   help="replace the credential (password, TLS key and certificate; --mosquitto: the broker's)")


def cmd_provision(args: argparse.Namespace, config: Config) -> int:
    venue = Venue(args.venue or config.home / "venue", config.keys_dir)
    try:
        if args.mosquitto:
            report = venue.setup_broker(args.broker_url, tuple(args.broker_host), args.prefix, args.rotate)
        elif args.retire_gate:
            report = venue.retire(args.retire_gate)
        else:
            if args.broker_url or args.broker_host or args.prefix:
                report = venue.setup_broker(args.broker_url, tuple(args.broker_host), args.prefix)
            role = "gate" if args.gate else "arbiter" if args.arbiter else "dashboard"
            report = venue.provision(role, args.gate, tuple(args.event), args.rotate,
                                     args.listen if role == "dashboard" else None)
    except OSError as exc:  # a template that cannot be read (not a checkout) or a folder that cannot be made
        print(f"gate: error: {exc}", file=sys.stderr)
        return 2
    what = "broker" if args.mosquitto or args.retire_gate else \
        args.gate or ("arbiter" if args.arbiter else "dashboard")
    print_report(report, venue, what)
    return 0


def print_report(report: Report, venue: Venue, what: str) -> None:
    for action, path in report.changes:
        print(f"{action} {path}")
    if not report.changes:
        print(f"{what}: nothing to change in {venue.folder}")
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    broker_changed = any(path.parent == venue.broker for _, path in report.changes)
    if what == "broker":
        print(f"next: install the broker's files: {BROKER_INSTALL.format(broker=venue.broker)} && "
              f"sudo ln -sf {BROKER_DIR}/qrgate.conf /etc/mosquitto/conf.d/qrgate.conf && "
              "sudo systemctl restart mosquitto")
        return
    if broker_changed:
        print(f"next: the broker's password file and ACL changed: {BROKER_INSTALL.format(broker=venue.broker)} && "
              "sudo systemctl reload mosquitto")
    role = what if what in ("arbiter", "dashboard") else "gate"
    print(f"next: install {venue.bundle(role, what)} as {INSTALL[role][0]} on its machine "
          "(README.md: Deploying)")
