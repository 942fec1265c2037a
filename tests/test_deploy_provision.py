"""`gate provision`: bundles, credentials, the password file and the ACL; re-running is safe."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gate.config import load_config
from gate.deploy.mqttauth import PasswordFile, check_password, hash_password
from gate.deploy.pki import Authority, common_name, server_names
from gate.deploy.provision import ProvisionError, Venue
from gate.keys import IssuerKey, KeyStore
from sync.arbiter.trust import GateEvents
from sync.dashboard.accounts import Accounts

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def issuer(home: Path) -> IssuerKey:
    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    return key


@pytest.fixture
def venue(home: Path, issuer: IssuerKey) -> Venue:
    v = Venue(home / "venue", home / "keys")
    v.setup_broker("mqtts://gates.venue.lan:8883", ("10.0.0.2",))
    return v


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode))
            for p in sorted(folder.rglob("*")) if p.is_file()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_gate_bundle_holds_its_config_credential_tls_files_and_verification_keys(
        venue: Venue, issuer: IssuerKey) -> None:
    venue.provision("gate", "gate-north-1", ("show7",))
    bundle = venue.bundle("gate", "gate-north-1")
    config = load_config(bundle, env={})
    assert (config.gate_id, config.gate.events) == ("gate-north-1", ("show7",))
    assert (config.sync.broker, config.sync.username) == ("mqtts://gates.venue.lan:8883", "gate-north-1")
    assert config.store_path == Path("/var/lib/qrgate/gate.db")
    for name in ("password_file", "ca_file", "cert_file", "key_file"):
        assert config.path(getattr(config.sync, name)).is_file(), name
    password = config.path(config.sync.password_file).read_text().strip()
    assert len(password) >= 40
    assert check_password(password, PasswordFile.read(venue.broker / "passwd").get("gate-north-1") or "")
    ca = Authority.load(venue.ca_key, venue.ca_cert)
    assert ca.signed(bundle / "tls" / "client.crt") and common_name(bundle / "tls" / "client.crt") == "gate-north-1"
    ring = (bundle / "keys" / "venue.keyring.json").read_text()
    assert issuer.secret.hex() not in ring and "secret" not in json.loads(ring)["keys"][0]
    assert [k.kid for k in KeyStore(bundle / "keys").keyring()] == [issuer.kid]
    assert KeyStore(bundle / "keys").issuer_keys() == []  # verification only: it can mint nothing
    for secret in (venue.ca_key, venue.broker / "server.key", venue.broker / "passwd", bundle / "mqtt.password",
                   bundle / "tls" / "client.key", bundle / "keys" / "venue.keyring.json"):
        assert mode(secret) == 0o600, secret
    for folder in (venue.folder, venue.folder / "ca", bundle, bundle / "tls", bundle / "keys"):
        assert mode(folder) == 0o700, folder


def test_arbiter_and_dashboard_bundles_use_the_local_broker(venue: Venue) -> None:
    venue.provision("arbiter")
    venue.provision("dashboard")
    arbiter = load_config(venue.bundle("arbiter", "arbiter"), env={})
    assert arbiter.sync.broker == "mqtts://localhost:8883" and arbiter.sync.username == "arbiter"
    assert arbiter.path(arbiter.sync.arbiter_db) == Path("/var/lib/qrgate-arbiter/arbiter.db")
    dashboard = load_config(venue.bundle("dashboard", "dashboard"), env={})
    d = dashboard.dashboard
    assert dashboard.sync.username == "dashboard" and d.host == "127.0.0.1"  # not every interface by default
    admin = dashboard.path("admin.password")
    assert mode(admin) == 0o600 and len(admin.read_text().strip()) >= 40
    accounts = Accounts(dashboard.path(d.accounts_file))
    assert mode(accounts.path) == 0o600 and accounts.check("admin", admin.read_text().strip()) is not None
    assert Authority.load(venue.ca_key, venue.ca_cert).signed(dashboard.path(d.cert_file)) and mode(dashboard.path(d.key_file)) == 0o600
    assert {"localhost", "127.0.0.1"} <= server_names(dashboard.path(d.cert_file)) and "localhost" in d.hosts
    assert not (venue.bundle("dashboard", "dashboard") / "keys").exists()  # no ticket keys where none are needed
    ring = KeyStore(venue.bundle("arbiter", "arbiter") / "keys")  # it verifies the code each claim carries
    assert [k.event for k in ring.keyring()] == ["show7"] and ring.issuer_keys() == []


def test_a_gate_serves_named_events_and_the_arbiter_learns_them(venue: Venue, issuer: IssuerKey,
                                                                 home: Path) -> None:
    """No gate bundle holds every event's keys by default: a stolen gate exposes only the events it serves,
    and the arbiter refuses its claims for any other (sync/arbiter/trust.py reads gates.toml)."""
    before = snapshot(venue.folder)
    with pytest.raises(ProvisionError, match=r"option --event: a gate serves named events"):
        venue.provision("gate", "g1")
    assert snapshot(venue.folder) == before
    other = IssuerKey.new("show8", "ed25519")
    KeyStore(home / "keys").add_issuer_key(other)
    venue.provision("arbiter")
    venue.provision("gate", "g1", ("show7",))
    venue.provision("gate", "g8", ("show8",))
    venue.provision("gate", "g1")  # again, with no --event: it keeps the events it serves
    assert load_config(venue.bundle("gate", "g1"), env={}).gate.events == ("show7",)
    assert [k.event for k in KeyStore(venue.bundle("gate", "g8") / "keys").keyring()] == ["show8"]
    arbiter = load_config(venue.bundle("arbiter", "arbiter"), env={})
    gates = GateEvents.load(arbiter.path(arbiter.sync.arbiter_gates))
    assert gates.gates == {"g1": {"show7"}, "g8": {"show8"}}
    assert sorted(k.event for k in KeyStore(arbiter.keys_dir).keyring()) == ["show7", "show8"]


def test_running_again_changes_nothing(venue: Venue) -> None:
    for role, name in (("arbiter", None), ("dashboard", None), ("gate", "g1"), ("gate", "g2")):
        venue.provision(role, name, ("show7",) if role == "gate" else ())
    before = snapshot(venue.folder)
    reports = [venue.setup_broker(), venue.provision("arbiter"), venue.provision("gate", "g1"),
               venue.setup_broker("mqtts://gates.venue.lan:8883", ("10.0.0.2",))]
    assert [r.changes for r in reports] == [[], [], [], []]
    assert snapshot(venue.folder) == before
    passwd = PasswordFile.read(venue.broker / "passwd").users()
    assert sorted(passwd) == ["arbiter", "dashboard", "g1", "g2"]
    acl = (venue.broker / "acl").read_text()
    assert [line for line in acl.splitlines() if line.startswith("user ")] == [
        "user arbiter", "user dashboard", "user g1", "user g2"]


def test_rotate_replaces_one_credential_and_nothing_else(venue: Venue) -> None:
    venue.provision("gate", "g1", ("show7",))
    venue.provision("gate", "g2", ("show7",))
    before = snapshot(venue.folder)
    changed = {str(p.relative_to(venue.folder)) for _, p in venue.provision("gate", "g1", rotate=True).changes}
    assert changed == {"gates/g1/mqtt.password", "gates/g1/tls/client.key", "gates/g1/tls/client.crt",
                       "broker/passwd", "broker/crl.pem"}  # the old certificate is revoked
    after = snapshot(venue.folder)
    assert {k for k in after if after[k][0] != before[k][0]} == changed
    assert PasswordFile.read(venue.broker / "passwd").users() == ["g1", "g2"]
    assert check_password((venue.bundle("gate", "g1") / "mqtt.password").read_text().strip(),
                          PasswordFile.read(venue.broker / "passwd").get("g1") or "")


def test_keys_the_operator_added_survive_and_owned_keys_are_reset(venue: Venue) -> None:
    venue.provision("gate", "g1", ("show7",))
    toml = venue.bundle("gate", "g1") / "gate.toml"
    toml.write_text(toml.read_text().replace('username = "g1"', 'username = "g2"') + "\n[feedback]\nrelay = 24\n")
    changes = venue.provision("gate", "g1").changes
    assert changes == [("updated", toml)]
    config = load_config(toml.parent, env={})
    assert (config.sync.username, config.feedback.relay) == ("g1", 24)


def test_a_lost_bundle_password_is_replaced_and_said_so(venue: Venue) -> None:
    venue.provision("gate", "g1", ("show7",))
    old = PasswordFile.read(venue.broker / "passwd").get("g1")
    (venue.bundle("gate", "g1") / "mqtt.password").unlink()
    report = venue.provision("gate", "g1")
    assert any("issued a new one" in note for note in report.notes)
    assert PasswordFile.read(venue.broker / "passwd").get("g1") != old


def test_adding_a_broker_name_reissues_only_the_server_certificate(venue: Venue) -> None:
    assert {"gates.venue.lan", "10.0.0.2", "localhost", "127.0.0.1"} <= server_names(venue.broker / "server.crt")
    ca = venue.ca_cert.read_bytes()
    changed = [p.name for _, p in venue.setup_broker(hosts=("gates2.venue.lan",)).changes]
    assert changed == ["venue.toml", "server.key", "server.crt"]
    assert "gates2.venue.lan" in server_names(venue.broker / "server.crt") and venue.ca_cert.read_bytes() == ca


@pytest.mark.parametrize(("role", "name", "events", "message"), [
    ("gate", "arbiter", (), r"option --gate: 'arbiter'"),
    ("gate", "north/1", (), r"option --gate: 'north/1'"),
    ("gate", "", (), r"option --gate"),
    ("gate", "g1", ("show8",), r"option --event show8: no issuer key"),
])
def test_bad_requests_are_refused_before_anything_is_written(venue: Venue, role: str, name: str,
                                                             events: tuple[str, ...], message: str) -> None:
    before = snapshot(venue.folder)
    with pytest.raises(ProvisionError, match=message):
        venue.provision(role, name, events)
    assert snapshot(venue.folder) == before


def test_a_venue_must_be_set_up_first_and_over_tls(home: Path) -> None:
    venue = Venue(home / "venue", home / "keys")
    with pytest.raises(ProvisionError, match=r"venue\.toml: no venue here yet"):
        venue.provision("gate", "g1")
    with pytest.raises(ProvisionError, match=r"--broker-url: 'mqtt://x:1883' must be mqtts://"):
        venue.setup_broker("mqtt://x:1883")
    with pytest.raises(ProvisionError, match=r"--broker-host: 'a b'"):
        venue.setup_broker("mqtts://x:8883", ("a b",))
    with pytest.raises(ProvisionError, match=r"--prefix: 'venue/#'"):
        venue.setup_broker("mqtts://x:8883", prefix="venue/#")
    assert not venue.folder.exists()


def test_our_password_hashes_and_mosquitto_passwd_agree(tmp_path: Path) -> None:
    """The format is mosquitto's own: a line written by mosquitto_passwd checks out here (the broker tests
    show the broker accepting ours)."""
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "alice", "s3cret"], check=True, timeout=30)
    theirs = PasswordFile.read(passwd).get("alice") or ""
    assert theirs.startswith("$7$101$") and check_password("s3cret", theirs) and not check_password("other", theirs)
    ours = hash_password("s3cret")
    assert ours.split("$")[:3] == theirs.split("$")[:3] and len(ours) == len(theirs)


def test_gate_provision_on_the_command_line(home: Path, issuer: IssuerKey, gate_cli: Cli) -> None:
    first = gate_cli("provision", "--gate", "g1")
    assert first.returncode == 2 and "gate provision --mosquitto" in first.stderr
    setup = gate_cli("provision", "--mosquitto", "--broker-url", "mqtts://gates.venue.lan:8883")
    assert setup.returncode == 0 and "created" in setup.stdout and "/etc/mosquitto/conf.d" in setup.stdout
    made = gate_cli("provision", "--gate", "g1", "--event", "show7")
    assert made.returncode == 0 and "gates/g1/tls/client.key" in made.stdout and "reload mosquitto" in made.stdout
    again = gate_cli("provision", "--gate", "g1")
    assert again.returncode == 0 and "nothing to change" in again.stdout
    bad = gate_cli("provision", "--gate", "g2", "--event", "show9")
    assert bad.returncode == 2 and "--event show9" in bad.stderr and "Traceback" not in bad.stderr


def test_the_acl_names_each_gates_home_assistant_node_as_the_dashboard_does(venue: Venue) -> None:
    from sync.gateside.discovery import node_id

    venue.provision("gate", "gate.north-1", ("show7",))
    acl = (venue.broker / "acl").read_text()
    assert f"topic write homeassistant/sensor/{node_id('gate.north-1')}/+/config" in acl


def test_gates_with_different_ids_get_different_home_assistant_nodes(venue: Venue) -> None:
    from sync.gateside.discovery import node_id

    assert node_id("gate_1") == "qrgate_gate_1" and node_id("gate-1") == "qrgate_gate-1"  # clean ids as before
    assert node_id("gate.1") != node_id("gate_1")  # they collided: gate.1 could write gate_1's sensor configs
    venue.provision("gate", "gate.1", ("show7",))
    venue.provision("gate", "gate_1", ("show7",))
    blocks = (venue.broker / "acl").read_text().split("\nuser ")
    homes = {block.split("\n")[0]: [line for line in block.splitlines() if "homeassistant" in line] for block in blocks}
    assert homes["gate.1"] != homes["gate_1"]
    lookalike = node_id("gate.1").removeprefix("qrgate_")  # a gate named after gate.1's node
    with pytest.raises(ProvisionError, match="node id"):
        venue.provision("gate", lookalike)
