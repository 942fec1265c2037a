"""Broker security with a real mosquitto started from the generated config: TLS with the venue's CA, no
anonymous clients, a password per user, and an ACL that pins each gate to its own topics.

A denied publish may still be acknowledged (mosquitto drops it silently), so every check is made at a
subscriber: forbidden messages are published first and an allowed one last on the same connection;
MQTT keeps one publisher's messages in order, so when the allowed one arrives the forbidden ones would
already have.
"""

from __future__ import annotations

import threading
import time

import pytest

pytest.register_assert_rewrite("deploy_fixtures")
pytest_plugins = ["deploy_fixtures"]

from deploy_fixtures import GATES, Site, connect  # noqa: E402
from sync_fixtures import wait_until  # noqa: E402

from gate.deploy.mqttauth import render_broker_conf  # noqa: E402
from gate.deploy.provision import BROKER_DIR  # noqa: E402

P = "qrgate"
BAD_PASSWORD = "Not authorized"  # the CONNACK reason mosquitto gives a failed password (0x87, as paho names it)


def test_the_generated_broker_config(provisioned: Site) -> None:
    conf = (provisioned.venue.broker / "qrgate.conf").read_text()
    assert conf == render_broker_conf(BROKER_DIR, str(provisioned.broker.port))
    lines = set(conf.splitlines())
    assert {"allow_anonymous false", "set_tcp_nodelay true", "persistence true", "require_certificate true",
            f"password_file {BROKER_DIR}/passwd", f"acl_file {BROKER_DIR}/acl"} <= lines
    assert "Opening ipv4 listen socket" in provisioned.broker.log()


def test_every_provisioned_user_connects_over_tls(provisioned: Site) -> None:
    for user in ("arbiter", "dashboard", *GATES):
        client = connect(provisioned, user)
        assert client.refused == "", f"{user}: {client.refused}"
        client.close()


def test_anonymous_clients_are_refused(provisioned: Site) -> None:
    client = connect(provisioned, None, cert_of="gate-north-1")
    assert client.refused and client.refused != "no CONNACK", client.refused
    wait_until(lambda: "not authorised" in provisioned.broker.log(), 10, "the broker's log line")


def test_a_wrong_password_is_refused(provisioned: Site) -> None:
    """Refused by the broker's password check, in its CONNACK: not a TLS failure or a silence, which would
    also pass with a broker that never gets to the password (and the right password still connects)."""
    wrong = [connect(provisioned, "gate-north-1", "not-the-password"),
             connect(provisioned, "gate-north-1", provisioned.password("gate-south-1")),  # another gate's password
             connect(provisioned, "arbiter", "")]
    assert [c.refused for c in wrong] == [BAD_PASSWORD] * 3
    right = connect(provisioned, "gate-north-1")
    assert right.refused == ""
    right.close()


def test_a_client_without_the_venues_certificate_is_refused(provisioned: Site) -> None:
    import ssl

    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="no-cert", protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(provisioned.bundle("gate-north-1") / "tls" / "ca.crt"))
    c.username_pw_set("gate-north-1", provisioned.password("gate-north-1"))
    connected = threading.Event()
    c.on_connect = lambda *_a: connected.set()
    refused = False
    try:
        c.connect("localhost", provisioned.broker.port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # TLS 1.3: the broker's refusal arrives with the first read
            if c.loop(0.1) != mqtt.MQTT_ERR_SUCCESS:
                refused = True
                break
    except (ssl.SSLError, OSError):
        refused = True
    assert refused and not connected.is_set()
    wait_until(lambda: "peer did not return a certificate" in provisioned.broker.log(), 10, "the broker's log line")


def test_a_gate_cannot_write_the_arbiters_topics_or_another_gates(provisioned: Site) -> None:
    watcher = connect(provisioned, "dashboard")
    watcher.subscribe(f"{P}/#")
    watcher.subscribe("homeassistant/#")
    north = connect(provisioned, "gate-north-1")
    forbidden = [f"{P}/stream", f"{P}/reply/gate-south-1", f"{P}/conflict/show7", f"{P}/arbiter/status",
                 f"{P}/claim/gate-south-1", f"{P}/release/gate-south-1", f"{P}/status/gate-south-1",
                 f"{P}/scan/gate-south-1", "homeassistant/sensor/qrgate_gate-south-1/state/config",
                 f"{P}/revoke/gate-north-1", f"{P}/revoke/dashboard", f"{P}/override/gate-north-1"]
    for topic in forbidden:
        north.publish(topic, b'{"forged": true}')
    own = [f"{P}/claim/gate-north-1", f"{P}/scan/gate-north-1",
           "homeassistant/sensor/qrgate_gate-north-1/state/config", f"{P}/status/gate-north-1"]
    for topic in own:
        north.publish(topic)
    assert watcher.received(until_topic=own[-1]) == own
    north.close()
    watcher.close()


def test_a_gate_reads_its_own_replies_only(provisioned: Site) -> None:
    south = connect(provisioned, "gate-south-1")
    south.subscribe(f"{P}/reply/+")  # asks for every gate's replies
    arbiter = connect(provisioned, "arbiter")
    arbiter.publish(f"{P}/reply/gate-north-1")
    arbiter.publish(f"{P}/reply/gate-south-1")
    assert south.received(until_topic=f"{P}/reply/gate-south-1") == [f"{P}/reply/gate-south-1"]
    south.close()
    arbiter.close()


def test_only_the_arbiter_publishes_redemptions_and_only_the_dashboard_revokes_or_overrides(provisioned: Site) -> None:
    gate = connect(provisioned, "gate-south-1")
    gate.subscribe(f"{P}/stream")
    dashboard = connect(provisioned, "dashboard")
    dashboard.publish(f"{P}/stream", b'{"forged": true}')
    arbiter = connect(provisioned, "arbiter")
    arbiter.subscribe(f"{P}/revoke/+")
    arbiter.publish(f"{P}/stream")
    assert gate.received(until_topic=f"{P}/stream") == [f"{P}/stream"]
    assert gate.messages.empty()  # the dashboard's copy never came, before or after
    gate.publish(f"{P}/revoke/gate-south-1")
    dashboard.publish(f"{P}/revoke/dashboard")
    assert arbiter.received(until_topic=f"{P}/revoke/dashboard") == [f"{P}/revoke/dashboard"]
    arbiter.subscribe(f"{P}/override/+")
    gate.publish(f"{P}/override/gate-south-1")
    dashboard.publish(f"{P}/override/dashboard")
    assert arbiter.received(until_topic=f"{P}/override/dashboard") == [f"{P}/override/dashboard"]
    for client in (gate, dashboard, arbiter):
        client.close()
