"""`gate dashboard`: the admins' live page over MQTT (sync/dashboard/, docs/dashboard.md)."""

from __future__ import annotations

import argparse
import json
import os
import threading
from pathlib import Path

from gate.app import sync_parts
from gate.cli_sync import _need_broker, _stop_on_signals
from gate.config import Config
from gate.exc import ConfigError


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {text!r}")
    return int(text)


def add_dashboard(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    from gate.cli import _command

    p = _command(sub, common, "dashboard", cmd_dashboard,
                 "serve the admins' live page: gates online/offline, entries per minute, rejections by reason,\n"
                 "capacity, double entries, live scans, ticket history, revoke and override; until SIGTERM",
                 "gate dashboard --broker mqtt://10.0.0.2:1883 --port 8080 --set dashboard.capacity=2000")
    p.add_argument("--port", type=_port, metavar="N", help="port of the page (dashboard.port; 0: any free port)")
    p.add_argument("--host", metavar="ADDR", help="address to listen on (dashboard.host)")


def history_path(config: Config) -> Path:
    d = config.dashboard
    return config.path(d.history_db) if d.history_db else config.store_path.parent / "dashboard.db"


def cmd_dashboard(args: argparse.Namespace, config: Config) -> int:
    from sync.dashboard import AdminPassword, DashboardServer, DashboardService, History, Hub, Model

    _need_broker(config)
    broker, topics, credentials = sync_parts(config)
    d, s = config.dashboard, config.sync
    password = AdminPassword.load(config.path(d.admin_password_file) if d.admin_password_file else None)
    history = History.open(history_path(config))
    try:
        model = Model(d.capacity, d.silent_after)
        hub = Hub()
        service = DashboardService(history, model, broker, topics, config.gate_id, push=hub.publish,
                                   credentials=credentials, keepalive=s.keepalive,
                                   reconnect=(s.reconnect_min, s.reconnect_max), client_suffix=f"-{os.getpid()}")
        service.load()
        host = args.host if args.host is not None else d.host
        port = args.port if args.port is not None else d.port
        try:
            server = DashboardServer((host, port), service, model, hub, password)
        except OSError as exc:
            raise ConfigError(f"dashboard.host/port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        stop = _stop_on_signals()
        service.start()
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        print(f"dashboard ready on {server.url} (broker {broker}, history {history.path}, admin actions "
              f"{'on' if password.enabled else 'off: no dashboard.admin_password_file'})", flush=True)
        stop.wait()
        server.shutdown()
        hub.close()
        service.stop()
        server.server_close()
    finally:
        history.close()
    print(f"dashboard stopped: {json.dumps(service.counters.snapshot())}", flush=True)
    return 0
