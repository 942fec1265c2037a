"""`gate dashboard`: the admins' live page over MQTT (sync/dashboard/, docs/dashboard.md), and
`gate dashboard user ...`: the named accounts that may log in to it."""

from __future__ import annotations

import argparse
import getpass
import sys
import threading

from gate.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    HOME_MADE,
    SubParsers,
    command,
    counted,
    need_broker,
    port_arg,
    stop_on_signals,
)
from gate.config import Config
from gate.wiring import build_dashboard, dashboard_accounts


def add(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = command(sub, common, "dashboard", cmd_dashboard,
                "serve the admins' live page: gates online/offline, entries per minute, rejections by reason,\n"
                "capacity, double entries, live scans, ticket history, revoke and override; until SIGTERM.\n"
                "Every page needs a login (`gate dashboard user add`).",
                "gate dashboard --broker mqtt://10.0.0.2:1883 --port 8080 --set dashboard.capacity=2000",
                home=HOME_MADE)
    p.add_argument("--port", type=port_arg, metavar="N", help="port of the page (dashboard.port; 0: any free port)")
    p.add_argument("--host", metavar="ADDR", help="address to listen on (dashboard.host)")
    groups = p.add_subparsers(title="account commands", metavar="user")
    group = groups.add_parser("user", help="add, remove or list the accounts that may log in",
                              description="The dashboard's named accounts (dashboard.accounts_file).")
    users = group.add_subparsers(title="user commands", metavar="ACTION")
    u = command(users, common, "add", cmd_user_add,
                "add an account, or give an existing one a new password and role (its sessions end).\n"
                "The password is asked twice on a terminal, else read as the first line of stdin.",
                "gate dashboard user add alice --role admin")
    u.add_argument("name")
    u.add_argument("--role", choices=("viewer", "admin"), default="viewer",
                   help="viewer: every page; admin: also revoke and override (default viewer)")
    u = command(users, common, "remove", cmd_user_remove, "remove an account (its sessions end at once)",
                "gate dashboard user remove alice")
    u.add_argument("name")
    command(users, common, "list", cmd_user_list, "the accounts and their roles", "gate dashboard user list")


def cmd_dashboard(args: argparse.Namespace, config: Config) -> int:
    need_broker(config)
    d = config.dashboard
    host = args.host if args.host is not None else d.host
    port = args.port if args.port is not None else d.port
    service, server, hub, history = build_dashboard(config, host, port)
    try:
        stop = stop_on_signals()
        service.start()
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        print(f"dashboard ready on {server.url} (broker {service.link.broker}, history {history.path}, "
              f"{len(server.accounts.all())} accounts in {server.accounts.path})", flush=True)
        stop.wait()
        server.shutdown()
        hub.close()
        service.stop()
        server.server_close()
    finally:
        history.close()
    print(f"dashboard stopped: {counted(service.counters.snapshot()) or 'nothing counted'}", flush=True)
    return 0


def cmd_user_add(args: argparse.Namespace, config: Config) -> int:
    password = _read_password()
    if password is None:
        return EXIT_ERROR
    accounts = dashboard_accounts(config)
    existed = accounts.add(args.name, args.role, password)
    print(f"{'updated' if existed else 'added'} {args.name} ({args.role}) in {accounts.path}")
    return EXIT_OK


def cmd_user_remove(args: argparse.Namespace, config: Config) -> int:
    accounts = dashboard_accounts(config)
    if not accounts.remove(args.name):
        print(f"gate: error: no account {args.name!r} in {accounts.path}", file=sys.stderr)
        return EXIT_ERROR
    print(f"removed {args.name} from {accounts.path}")
    return EXIT_OK


def cmd_user_list(args: argparse.Namespace, config: Config) -> int:
    for account in dashboard_accounts(config).all().values():
        print(f"{account.name}\t{account.role}")
    return EXIT_OK


def _read_password() -> str | None:
    if sys.stdin.isatty():
        first, again = getpass.getpass("password: "), getpass.getpass("again: ")
        if first != again:
            print("gate: error: the two passwords differ", file=sys.stderr)
            return None
        return first
    return sys.stdin.readline().rstrip("\r\n")
