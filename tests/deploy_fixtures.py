"""A provisioned venue and a real mosquitto started from the config `gate provision` generated.

The broker runs the generated snippet (systemd/mosquitto/qrgate.conf.template) from a conf.d folder under
a main file shaped like Debian's stock /etc/mosquitto/mosquitto.conf, so duplicate settings between the
two would fail here as they would on a real server.  The only test-only line is `user`: run as root,
mosquitto would switch to the mosquitto user, which cannot enter pytest's private tmp folders (on a
server the README's install step makes the files readable by that group instead).
"""

from __future__ import annotations

import getpass
import queue
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sync_fixtures import MOSQUITTO, free_port, port_open, wait_until

from gate.deploy.mqttauth import render_broker_conf
from gate.deploy.provision import Venue
from gate.keys import IssuerKey, KeyStore

GATES = ("gate-north-1", "gate-south-1")


class VenueBroker:
    """mosquitto with the venue's generated config on a free port."""

    def __init__(self, venue: Venue, folder: Path, port: int) -> None:
        self.venue, self.folder, self.port = venue, folder, port
        (folder / "conf.d").mkdir(parents=True)
        (folder / "conf.d" / "qrgate.conf").write_text(render_broker_conf(str(venue.broker), f"{port} 127.0.0.1"))
        self.main = folder / "mosquitto.conf"
        self.main.write_text(f"user {getpass.getuser()}\npid_file {folder}/mosquitto.pid\npersistence true\n"
                             f"persistence_location {folder}/\nlog_dest file {folder}/mosquitto.log\n"
                             f"include_dir {folder}/conf.d\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VenueBroker:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.main)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_until(lambda: port_open(self.port) or self.proc.poll() is not None, 10, "mosquitto to listen")  # type: ignore[union-attr]
        if self.proc.poll() is not None:
            raise AssertionError(f"mosquitto refused the generated config: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text() if path.exists() else ""


@dataclass
class Site:
    venue: Venue
    broker: VenueBroker
    key: IssuerKey
    home: Path

    def bundle(self, user: str) -> Path:
        return self.venue.bundle("gate" if user.startswith("gate") else user, user)

    def password(self, user: str) -> str:
        return (self.bundle(user) / "mqtt.password").read_text().strip()


@pytest.fixture
def provisioned(tmp_path: Path) -> Iterator[Site]:
    """A venue with an arbiter, a dashboard and two gates, provisioned for a broker on a free local port."""
    home = tmp_path / "issuer"
    key = IssuerKey.new("show7", "ed25519")
    KeyStore(home / "keys").add_issuer_key(key)
    venue = Venue(home / "venue", home / "keys")
    port = free_port()
    venue.setup_broker(f"mqtts://localhost:{port}")
    venue.provision("arbiter")
    venue.provision("dashboard")
    for gate in GATES:
        venue.provision("gate", gate, ("show7",))
    broker = VenueBroker(venue, tmp_path / "mosquitto", port).start()
    yield Site(venue, broker, key, home)
    broker.stop()


@dataclass
class Client:
    """A paho MQTT v5 client of the test itself, connected as one provisioned user."""

    client: mqtt.Client
    refused: str = ""
    messages: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)

    def publish(self, topic: str, payload: bytes = b"x") -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(15)

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(15), f"no SUBACK for {topic}"

    def received(self, until_topic: str, timeout: float = 10.0) -> list[str]:
        """Topics received up to and including the first message on `until_topic`."""
        topics: list[str] = []
        while not topics or topics[-1] != until_topic:
            topics.append(self.messages.get(timeout=timeout)[0])
        return topics

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(site: Site, user: str | None, password: str | None = None, *, cert_of: str | None = None,
            name: str = "") -> Client:
    """Connect over TLS as `user` (None: anonymous) with `cert_of`'s client certificate (default: the user's)."""
    bundle = site.bundle(cert_of or user or "gate-north-1")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name or f"test-{user}", protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(bundle / "tls" / "ca.crt"), certfile=str(bundle / "tls" / "client.crt"),
              keyfile=str(bundle / "tls" / "client.key"))
    if user is not None:
        c.username_pw_set(user, password if password is not None else site.password(user))
    out = Client(c)
    answered = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        out.refused = str(reason) if reason.is_failure else ""
        answered.set()

    c.on_connect = on_connect
    c.on_message = lambda _c, _u, msg: out.messages.put((msg.topic, msg.payload))
    try:
        c.connect("localhost", site.broker.port)
    except (ssl.SSLError, OSError) as exc:
        out.refused = f"TLS: {exc}"
        return out
    c.loop_start()
    if not answered.wait(15):
        out.refused = out.refused or "no CONNACK"
    return out
