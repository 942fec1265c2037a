"""Connection problems told apart: each cause is one line at the default log level that names it, on the real
`gate` processes, against the venue's real broker (TLS, passwords, ACL) or no broker at all."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.register_assert_rewrite("deploy_fixtures")
pytest_plugins = ["deploy_fixtures"]

from conftest import ROOT, gate_env  # noqa: E402
from deploy_fixtures import Site  # noqa: E402
from sync_fixtures import Mosquitto, free_port, wait_until  # noqa: E402

from sync.diagnosis import ConnectionLog, dropped, refused  # noqa: E402

QUICK = {"QRGATE_SYNC_CONNECT_WAIT": "2", "QRGATE_SYNC_DRAIN_WAIT": "0", "QRGATE_SYNC_RECONNECT_MAX": "1"}


def check_stderr(site: Site, tmp_path: Path, *args: str) -> str:
    """`gate check` of one garbage text from gate-north-1's bundle: what it says on stderr."""
    env = gate_env(site.bundle("gate-north-1"), QRGATE_STORE_PATH=str(tmp_path / "gate.db"), **QUICK)
    result = subprocess.run([sys.executable, "-m", "gate.cli", "check", *args, "QG:garbage"], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_each_connection_problem_names_its_cause(provisioned: Site, tmp_path: Path) -> None:
    port = provisioned.broker.port
    closed = free_port()
    plain = Mosquitto(tmp_path / "plain").start()  # a broker without TLS
    cases = {
        "the broker's name 'no-such-host.invalid' does not resolve": ["--broker", f"mqtts://no-such-host.invalid:{port}"],
        f"broker mqtts://localhost:{closed}: connection refused: no broker listens there":
            ["--broker", f"mqtts://localhost:{closed}"],
        "a TLS port? then use mqtts://": ["--broker", f"mqtt://localhost:{port}"],
        "it hung up on the TLS handshake: a plain MQTT port? then use mqtt://": ["--broker", f"mqtts://{plain.url[7:]}"],
        "the broker requires a client certificate": ["--set", "sync.cert_file=", "--set", "sync.key_file="],
        # (no wrong-password case: the venue's broker takes the client certificate as the user, docs/security.md,
        # so a password is not checked; the refusal's words are checked below, and the binding in test_deploy_broker)
        "gate.id is 'gate-south-1' but it connects as MQTT user 'gate-north-1'": ["--gate-id", "gate-south-1"],
        "the broker is connected, but the arbiter has not answered (is `gate arbiter` running?)": [],
        "nope.crt: no such file (sync.ca_file": ["--set", "sync.ca_file=nope.crt"],
    }
    try:
        for cause, args in cases.items():
            said = check_stderr(provisioned, tmp_path, *args)
            assert cause in said, (args, said)
    finally:
        plain.stop()


class Running:
    """A `gate ...` process whose stdout and stderr lines are kept (in arrival order, either stream)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gate.cli", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.lines: list[str] = []
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=lambda s=stream: [self.lines.append(line) for line in s], daemon=True).start()

    def said(self, what: str, within: float) -> str:
        """The first line saying `what`, waiting up to `within` s for it."""
        return wait_until(lambda: next((line for line in list(self.lines) if what in line), None), within, repr(what))

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def test_the_arbiter_says_at_once_that_the_broker_is_down_and_when_it_is_back(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")  # its port is free: nothing listens yet
    arbiter = Running(["arbiter"], gate_env(tmp_path / "arbiter", QRGATE_SYNC_BROKER=broker.url,
                                            QRGATE_SYNC_RECONNECT_MAX="1"))
    try:
        arbiter.said(f"broker {broker.url}: connection refused: no broker listens there", 5)
        broker.start()
        arbiter.said("arbiter ready on", 15)
        arbiter.said("connected again after", 5)
        broker.stop()
        arbiter.said("lost the connection", 5)
    finally:
        arbiter.kill()
        broker.stop()


@pytest.mark.parametrize("args", [["dashboard", "--port", "0", "--host", "127.0.0.1"], ["sync"]])
def test_the_dashboard_and_gate_sync_say_at_once_that_the_broker_is_down(args: list[str], tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    (tmp_path / "home").mkdir()
    if args[0] == "dashboard":  # it starts only with an account to log in with
        subprocess.run([sys.executable, "-m", "gate.cli", "dashboard", "user", "add", "admin", "--role", "admin"],
                       input="a long enough password\n", text=True, env=gate_env(tmp_path / "home"), cwd=ROOT,
                       check=True, capture_output=True, timeout=60)
    proc = Running(args, gate_env(tmp_path / "home", QRGATE_SYNC_BROKER=url))
    try:
        proc.said(f"broker {url}: connection refused: no broker listens there", 5)
    finally:
        proc.kill()


def test_the_story_of_a_link_once_per_cause_and_its_recovery(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    story = ConnectionLog("mqtt://b:1883", __import__("logging").getLogger("test.story"), clock=lambda: now[0])
    with caplog.at_level("WARNING"):
        for _ in range(30):  # a broker that stays down: one line, not one a retry
            now[0] += 1
            story.failed("connection refused")
        assert story.problem == "connection refused"
        story.connected()
        assert story.problem == ""
    assert [r.getMessage() for r in caplog.records] == [
        "broker mqtt://b:1883: connection refused; retrying",
        "broker mqtt://b:1883: connected again after 29 s"]


def test_the_words_for_what_the_broker_said() -> None:
    assert "two processes with the same gate.id" in dropped("Session taken over", "gate-1-77", answered=True,
                                                            error="", tls=True)
    assert "an anonymous client" in refused("Not authorized", "")
    assert "unknown user" in refused("Bad user name or password", "gate-1")
