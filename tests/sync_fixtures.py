"""Real parts for the sync tests: mosquitto on a free port, arbiter and gate processes, a TCP proxy, a watcher.

Nothing is mocked: every test starts the broker it needs (from a config file in
tmp_path), the real `gate arbiter` and `gate check` commands, and reads their
SQLite files afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from conftest import ROOT, gate_env

if str(ROOT) not in sys.path:  # bench/ is a package of the checkout: its proxy is the tests' too
    sys.path.append(str(ROOT))
from bench._proxy import CutProxy as TcpProxy  # noqa: F401  (127.0.0.1:port -> the broker; cut, heal)
from gate.keys import IssuerKey, KeyStore
from gate.migrations import MIGRATIONS
from gate.ticket import Ticket
from sync import wire

MOSQUITTO = "/usr/sbin/mosquitto"
#: fast enough for tests, and proof that every timing is a config key
FAST = {"QRGATE_SYNC_RECONNECT_MAX": "1", "QRGATE_SYNC_STATUS_EVERY": "0.5", "QRGATE_SYNC_DRAIN_WAIT": "20",
        "QRGATE_SYNC_CONNECT_WAIT": "10", "QRGATE_SYNC_KEEPALIVE": "5"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """A mosquitto process on a free port with a generated config; `stop` and `start` again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                             f"set_tcp_nodelay true\nmax_queued_messages 100000\nmax_packet_size 1064960\n"
                             f"log_dest file {folder}/mosquitto.log\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.port), 10, "mosquitto to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def running_broker(folder: Path) -> Iterator[Mosquitto]:
    """A started Mosquitto in `folder`, stopped afterwards (the body of a `broker` fixture)."""
    b = Mosquitto(folder / "broker").start()
    yield b
    b.stop()


class Proc:
    """A `gate ...` process with line-by-line stdout (read by a thread) and stdin kept open."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.proc = subprocess.Popen([sys.executable, "-m", "gate.cli", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, timeout: float = 20.0) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"gate {' '.join(self.args)}: no output in {timeout} s") from None

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 60.0) -> int:
        """Close stdin, wait for the exit; the exit code (stderr kept in `stderr`)."""
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        self.proc.wait(timeout)
        self.stderr = self.proc.stderr.read()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class GateProc(Proc):
    """A running `gate check --json`: `check(ticket)` sends one line and returns its decision."""

    def check(self, ticket: str, timeout: float = 20.0) -> dict[str, Any]:
        self.send(ticket)
        return dict(json.loads(self.line(timeout)))

    def outputs(self) -> list[dict[str, Any]]:
        rows = []
        while not self.lines.empty():
            rows.append(json.loads(self.lines.get()))
        return rows


def feed_all(gates: list[GateProc], orders: list[list[str]], timeout: float = 120) -> list[list[dict[str, Any]]]:
    """Send each gate its tickets, close their input, wait for them to exit cleanly; their decisions."""
    for gate, order in zip(gates, orders, strict=True):
        for ticket in order:
            gate.send(ticket)
    for gate in gates:
        assert gate.finish(timeout) in (0, 1), gate.stderr
        assert "Traceback" not in gate.stderr
    return [gate.outputs() for gate in gates]


class Site:
    """One venue for a test: a shared issuer key, an arbiter home, gate homes, all on one broker."""

    def __init__(self, root: Path, broker: Mosquitto) -> None:
        self.root = root
        self.broker = broker
        self.keys = root / "keys"
        self.key = IssuerKey.new("show7", "hmac")
        KeyStore(self.keys).add_issuer_key(self.key)
        self.arbiter_home = root / "arbiter"
        self.procs: list[Proc] = []

    def mint(self, n: int, prefix: str = "t") -> list[str]:
        return [self.key.sign(Ticket(event="show7", ticket_id=f"{prefix}{i}", seat=f"R{i % 40}")) for i in range(n)]

    def event_key(self, event: str) -> IssuerKey:
        """The issuer key of `event` (made on first use: before the arbiter starts, which loads its keyring once)."""
        if event == self.key.event:
            return self.key
        store = KeyStore(self.keys)
        for key in store.issuer_keys():
            if key.event == event:
                return key
        key = IssuerKey.new(event, "hmac")
        store.add_issuer_key(key)
        return key

    def claim(self, scan: str, ticket: str, gate: str, at: float | None = None, *, event: str = "show7",
              gen: int = 0, admitted: bool = False) -> wire.Claim:
        """A claim as a gate shown a genuine ticket sends it (the arbiter verifies the code it carries)."""
        text = self.event_key(event).sign(Ticket(event=event, ticket_id=ticket, generation=gen))
        return wire.Claim(scan, event, ticket, gate, time.time() if at is None else at, gen, admitted, text)

    def env(self, home: Path, broker_url: str | None = None, **extra: str) -> dict[str, str]:
        return gate_env(home, **{"QRGATE_KEYS_DIR": str(self.keys), "QRGATE_SYNC_BROKER": broker_url or self.broker.url,
                                 **FAST, **extra})

    def home(self, gate_id: str) -> Path:
        return self.root / gate_id

    def start_arbiter(self, *args: str, broker_url: str | None = None, **extra: str) -> Proc:
        """`gate arbiter ARGS` (e.g. --store postgresql://... --instance a --group arbiters), once it is ready."""
        proc = Proc(["arbiter", *args], self.env(self.arbiter_home, broker_url, **extra))
        self.procs.append(proc)
        line = proc.line(20)
        assert line.startswith("arbiter ready"), line
        return proc

    def start_gate(self, gate_id: str, *args: str, broker_url: str | None = None, **extra: str) -> GateProc:
        proc = GateProc(["check", "--json", "--gate-id", gate_id, *args], self.env(self.home(gate_id), broker_url,
                                                                                  **extra))
        self.procs.append(proc)
        return proc

    def gate_cli(self, gate_id: str, *args: str, broker_url: str | None = None,
                 **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gate.cli", "--gate-id", gate_id, *args], capture_output=True,
                              text=True, env=self.env(self.home(gate_id), broker_url, **extra), cwd=ROOT, timeout=120)

    def arbiter_db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.arbiter_home / 'arbiter.db'}?mode=ro", uri=True)

    def gate_db(self, gate_id: str, timeout: float = 30.0) -> sqlite3.Connection:
        """The gate's store, read-only, once the gate has made it (a gate started a moment ago on a loaded
        machine may not have opened it yet: its file, then its last migration)."""
        path = self.home(gate_id) / "gate.db"
        latest = MIGRATIONS[-1][0]

        def made() -> bool:
            if not path.exists():
                return False
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                try:
                    return db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == latest
                except sqlite3.OperationalError:  # no bookkeeping table yet
                    return False

        wait_until(made, timeout, f"{gate_id} to make its store")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()


def running_site(root: Path, broker: Mosquitto) -> Iterator[Site]:
    """A Site on `broker`, its processes killed afterwards (the body of a `site` fixture)."""
    s = Site(root, broker)
    yield s
    s.close()


def rows(db: sqlite3.Connection, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with db:
        return db.execute(sql, args).fetchall()


class Watcher:
    """A plain paho client that records every message under a filter (retained ones too)."""

    def __init__(self, broker: Mosquitto, topic: str = "qrgate/#") -> None:
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.raw: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watcher-{os.getpid()}-{id(self)}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.raw.append((msg.topic, bytes(msg.payload)))
            try:
                self.messages.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))
            except ValueError:
                self.messages.append((msg.topic, {}, bool(msg.retain)))

    def on(self, topic: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for t, m, _ in self.messages if t == topic]

    def last(self, topic: str) -> dict[str, Any] | None:
        found = self.on(topic)
        return found[-1] if found else None

    def wait_online(self, *gate_ids: str) -> None:
        """Until each gate's retained status says online."""
        for gate_id in gate_ids:
            wait_until(lambda g=gate_id: (self.last(f"qrgate/status/{g}") or {}).get("state") == "online",
                       20, f"{gate_id} online")

    def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        self.client.publish(topic, payload, qos=1, **kwargs).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def crash_after_answer(ticket: str) -> None:
    """Decide one ticket the way `gate check` does, but SIGKILL this process between the arbiter's
    answer and the local commit (run as `python tests/sync_fixtures.py TICKET` with the gate's env)."""
    import signal

    from gate.config import load_config
    from gate.wiring import gate_session

    def die(_scan: object, answer: object) -> None:
        if answer is not None:
            os.kill(os.getpid(), signal.SIGKILL)
    with gate_session(load_config()) as decider:
        decider.claimer.after_answer = die  # type: ignore[union-attr]
        print(json.dumps(decider.decide(ticket).to_dict()), flush=True)


if __name__ == "__main__":
    crash_after_answer(sys.argv[1])
