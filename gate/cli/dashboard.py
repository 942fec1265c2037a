"""`gate dashboard`: the admins' live page over MQTT (sync/dashboard/, docs/dashboard.md)."""

from __future__ import annotations

import argparse
import json
import threading

from gate.cli.common import HOME_MADE, SubParsers, command, need_broker, port_arg, stop_on_signals
from gate.config import Config
from gate.wiring import build_dashboard


def add(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    p = command(sub, common, "dashboard", cmd_dashboard,
                "serve the admins' live page: gates online/offline, entries per minute, rejections by reason,\n"
                "capacity, double entries, live scans, ticket history, revoke and override; until SIGTERM",
                "gate dashboard --broker mqtt://10.0.0.2:1883 --port 8080 --set dashboard.capacity=2000",
                home=HOME_MADE)
    p.add_argument("--port", type=port_arg, metavar="N", help="port of the page (dashboard.port; 0: any free port)")
    p.add_argument("--host", metavar="ADDR", help="address to listen on (dashboard.host)")


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
        print(f"dashboard ready on {server.url} (broker {service.link.broker}, history {history.path}, admin actions "
              f"{'on' if server.password.enabled else 'off: no dashboard.admin_password_file'})", flush=True)
        stop.wait()
        server.shutdown()
        hub.close()
        service.stop()
        server.server_close()
    finally:
        history.close()
    print(f"dashboard stopped: {json.dumps(service.counters.snapshot())}", flush=True)
    return 0
