"""sd_notify against a fake NOTIFY_SOCKET: the protocol itself, and `gate run` and its scan loop under it."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT, gate_env, mint

from gate.daemon.scanloop import ScanLoop
from gate.daemon.sdnotify import Notifier, Watchdog
from gate.keys import IssuerKey, KeyStore
from gate.store import Store
from hardware import Camera, Frame, RecordingFeedback, open_decoder


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: a datagram socket that records each message as a dict."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.messages: list[dict[str, str]] = []

    def receive(self, until: Callable[[list[dict[str, str]]], bool], timeout: float = 30.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while not until(self.messages):
            if time.monotonic() > deadline:
                raise AssertionError(f"fake systemd: timed out; got {self.messages}")
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        return self.messages

    def drain(self) -> list[dict[str, str]]:
        """Whatever has arrived so far."""
        self.sock.settimeout(0.05)
        try:
            while True:
                data = self.sock.recv(4096)
                self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        except TimeoutError:
            return self.messages


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    folder = tempfile.mkdtemp(prefix="qg-", dir="/tmp")  # AF_UNIX paths must stay under 108 bytes
    fake = FakeSystemd(os.path.join(folder, "notify"))
    yield fake
    fake.sock.close()
    os.unlink(fake.address)
    os.rmdir(folder)


def count(messages: list[dict[str, str]], key: str) -> int:
    return sum(1 for m in messages if key in m)


# -- the protocol -------------------------------------------------------------------------------

def test_each_state_is_one_datagram_of_key_value_lines(systemd: FakeSystemd) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": systemd.address})
    assert notifier.ready("store checked") and notifier.watchdog() and notifier.status("health: 1 frames/s")
    assert notifier.stopping("bye\nnow")  # a status is one line: newlines cannot split it into fake keys
    assert systemd.receive(lambda m: len(m) == 4) == [
        {"READY": "1", "STATUS": "store checked"}, {"WATCHDOG": "1"}, {"STATUS": "health: 1 frames/s"},
        {"STOPPING": "1", "STATUS": "bye now"}]


def test_an_abstract_socket_address_works() -> None:
    fake = FakeSystemd(f"@qrgate-test-{secrets.token_hex(6)}")
    try:
        assert Notifier.from_env({"NOTIFY_SOCKET": fake.address}).ready()
        assert fake.receive(lambda m: len(m) == 1) == [{"READY": "1"}]
    finally:
        fake.sock.close()


def test_outside_systemd_every_call_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert not notifier.ready() and not notifier.watchdog()
    assert not Watchdog(notifier).feed()


def test_watchdog_settings_come_from_the_environment(systemd: FakeSystemd) -> None:
    env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "30000000"}
    assert Notifier.from_env(env).watchdog_interval == 30.0
    assert Notifier.from_env({**env, "WATCHDOG_PID": "1"}, pid=4242).watchdog_interval is None  # meant for another
    assert Notifier.from_env({**env, "WATCHDOG_PID": "4242"}, pid=4242).watchdog_interval == 30.0
    assert Notifier.from_env({**env, "WATCHDOG_USEC": "soon"}).watchdog_interval is None


def test_the_watchdog_is_fed_at_most_every_half_interval(systemd: FakeSystemd) -> None:
    now = [100.0]
    notifier = Notifier.from_env({"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "10000000"})
    watchdog = Watchdog(notifier, status=lambda: "health: ok", clock=lambda: now[0])
    sent = []
    for _ in range(40):  # 40 frames at 8 frames/s: 5 s, one half-interval
        sent.append(watchdog.feed())
        now[0] += 0.125
    sent.append(watchdog.feed())
    assert sent.count(True) == 2 and sent[0] and sent[-1]
    assert systemd.receive(lambda m: len(m) == 2) == [{"WATCHDOG": "1", "STATUS": "health: ok"}] * 2


def test_a_socket_that_is_gone_is_counted_not_raised(tmp_path: Path) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not notifier.ready()
    assert notifier.failures == 1


# -- the scan loop stops feeding when it stalls -------------------------------------------------

class StallingCamera(Camera):
    """Hands out one text frame per `step.release()`, `frames` of them, then hangs in the read (a wedged camera)
    until `release` is set."""

    def __init__(self, frames: int) -> None:
        self.count = frames
        self.step = threading.Semaphore(0)
        self.stalled = threading.Event()
        self.release = threading.Event()

    def frames(self) -> Iterator[Frame]:
        for i in range(self.count):
            if not self.step.acquire(timeout=30):
                return
            yield Frame(None, float(i), ())
        self.stalled.set()
        self.release.wait(30)


def test_a_stalled_scan_loop_stops_the_watchdog_messages(systemd: FakeSystemd, store: Store) -> None:
    now = [0.0]

    def clock() -> float:  # every frame moves time on by a whole half-interval: each frame may feed
        now[0] += 1.0
        return now[0]
    notifier = Notifier.from_env({"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "2000000"})
    watchdog = Watchdog(notifier, clock=clock)
    camera = StallingCamera(frames=5)
    loop = ScanLoop(lambda: camera, open_decoder("pipeline"), lambda text: pytest.fail(text), RecordingFeedback(),
                    on_alive=watchdog.feed)
    runner = threading.Thread(target=loop.run)
    runner.start()
    try:
        for n in range(1, 6):  # while frames come, each one feeds the watchdog
            camera.step.release()
            assert systemd.receive(lambda m, n=n: len(m) >= n) == [{"WATCHDOG": "1"}] * n
        assert camera.stalled.wait(10)
        time.sleep(0.5)  # long enough for a feed that should not happen to arrive
        assert len(systemd.drain()) == 5, "a hung capture loop must stop feeding the watchdog"
        assert notifier.failures == 0
    finally:
        loop.stop()
        camera.release.set()
        runner.join(10)


# -- `gate run` under a fake systemd -------------------------------------------------------------

def gate_home(home: Path, frames: Path) -> Path:
    from gate.cli.demo import write_frames

    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    write_frames(frames, [mint(key)])
    (home / "gate.toml").write_text(
        f'[gate]\nid = "gate-notify"\n[camera]\nkind = "files"\nsource = "{frames}"\nfps = 30\nloops = 0\n'
        '[feedback]\nkind = "console"\n[scanner]\nholdoff = 3600\n')
    return home


def start_gate(home: Path, systemd: FakeSystemd) -> subprocess.Popen[str]:
    env = gate_env(home, NOTIFY_SOCKET=systemd.address, WATCHDOG_USEC="400000")
    return subprocess.Popen([sys.executable, "-m", "gate.cli", "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def test_gate_run_is_ready_after_the_store_check_then_feeds_the_watchdog(
        home: Path, tmp_path: Path, systemd: FakeSystemd) -> None:
    proc = start_gate(gate_home(home, tmp_path / "frames"), systemd)
    try:
        first = systemd.receive(lambda m: len(m) >= 1)[0]
        assert first["READY"] == "1" and "store" in first["STATUS"]
        with sqlite3.connect(home / "gate.db") as db:  # open, checked and migrated before READY
            assert db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1
        messages = systemd.receive(lambda m: count(m, "WATCHDOG") >= 3)
        assert count(messages, "READY") == 1
        assert all(m["STATUS"].startswith("health:") for m in messages if "WATCHDOG" in m)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert count(systemd.drain(), "STOPPING") == 1
    finally:
        proc.kill()
        proc.communicate()


def test_gate_run_on_a_corrupt_store_never_says_ready(home: Path, tmp_path: Path, systemd: FakeSystemd) -> None:
    from test_store import corrupt_one_leaf

    gate_home(home, tmp_path / "frames")
    corrupt_one_leaf(home / "gate.db")  # only the integrity check at start-up can see it
    proc = start_gate(home, systemd)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "gate.db" in err and "integrity check failed" in err and "Traceback" not in err
    assert count(systemd.drain(), "READY") == 0


def test_an_idle_wedge_scanner_keeps_the_watchdog_fed(home: Path, systemd: FakeSystemd) -> None:
    """Nobody scanning is not a hang: a wedge scanner blocks in its read, and the process feeds the watchdog."""
    (home / "gate.toml").write_text('[camera]\nkind = "wedge"\nsource = "-"\n[feedback]\nkind = "console"\n')
    env = gate_env(home, NOTIFY_SOCKET=systemd.address, WATCHDOG_USEC="400000")
    proc = subprocess.Popen([sys.executable, "-m", "gate.cli", "run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        messages = systemd.receive(lambda m: count(m, "WATCHDOG") >= 3)  # with no line typed at all
        assert "READY" in messages[0]
        _out, err = proc.communicate(input="", timeout=30)  # the scanner's stream ends: a clean stop
        assert proc.returncode == 0, err
    finally:
        proc.kill()
