"""`gate provision`: one venue folder holding the CA, the broker's files and a bundle per gate, arbiter
and dashboard (docs/operations.md has the layout and the install steps).

What a caller may rely on:

* Re-running is safe: a credential (MQTT password, TLS key and certificate) is created once and kept;
  only ``rotate=True`` replaces it.  The password file never holds a user twice; the ACL is rendered
  afresh from the bundles present, so it never holds a block twice either.  Files whose content would
  not change are not rewritten.
* Secrets (CA key, TLS keys, MQTT passwords, the password file) are written 0600 in 0700 folders.
* A gate's bundle holds verification keys only (exported keyrings), never an issuer secret, and only
  those of the events it serves: a gate is always provisioned for named events (docs/security.md).
* The arbiter's bundle holds every event's verification keys and gates.toml, the events of each gate.
* A bundle's gate.toml keeps every key the venue's IT person added; provisioning sets only the keys it
  owns (identity, broker, credentials) and, the first time, where the store lives.  It is checked with
  the same loader the gate uses, so a bundle that was written also loads.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.config import describe, load_config
from gate.deploy.mqttauth import (
    PasswordFile,
    check_password,
    hash_password,
    new_password,
    node_id,
    render_acl,
    render_broker_conf,
)
from gate.deploy.pki import (
    LOCAL_NAMES,
    Authority,
    cert_pem,
    common_name,
    revoked_serials,
    serial_number,
    server_names,
    write_private,
    write_public,
)
from gate.exc import ConfigError, GateError
from gate.keys import KEYRING_FORMAT, KeyStore
from sync.dashboard.accounts import Accounts

ROLES = ("gate", "arbiter", "dashboard")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,252}")
PREFIX = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
#: where each bundle is installed on its machine: (config home, state directory); systemd/*.service agree
INSTALL = {"gate": ("/etc/qrgate", "/var/lib/qrgate"),
           "arbiter": ("/etc/qrgate-arbiter", "/var/lib/qrgate-arbiter"),
           "dashboard": ("/etc/qrgate-dashboard", "/var/lib/qrgate-dashboard")}
BROKER_DIR = "/etc/mosquitto/qrgate"
SETTINGS = "venue.toml"
ADMIN_PASSWORD = "admin.password"
CRL = "crl.pem"
ACCOUNTS = "dashboard.accounts"
FIRST_ACCOUNT = "admin"
#: keys an older provisioning wrote that this version's config no longer has: dropped from a bundle it refreshes
OBSOLETE = ("dashboard.admin_password_file",)


class ProvisionError(GateError, ValueError):
    """A venue folder or a request that provisioning cannot act on (the message names the file or option)."""


@dataclass(frozen=True)
class Settings:
    """venue.toml: what every bundle of the venue shares."""

    broker_url: str
    hosts: tuple[str, ...] = ()
    prefix: str = "qrgate"

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.broker_url).port or 8883


@dataclass
class Report:
    """What a run did: (action, path) for each file created, updated or replaced; notes for the operator."""

    changes: list[tuple[str, Path]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def wrote(self, path: Path, changed: bool, existed: bool) -> None:
        if changed:
            self.changes.append(("updated" if existed else "created", path))


class Venue:
    """The venue folder (`--venue`, default HOME/venue) and the issuer keys to export from (HOME/keys)."""

    def __init__(self, folder: Path, issuer_keys: Path) -> None:
        self.folder = Path(folder)
        self.issuer_keys = Path(issuer_keys)
        self.ca_key, self.ca_cert = self.folder / "ca" / "ca.key", self.folder / "ca" / "ca.crt"
        self.broker = self.folder / "broker"

    # -- the venue and its broker ----------------------------------------------------------------
    def settings(self) -> Settings:
        path = self.folder / SETTINGS
        if not path.exists():
            raise ProvisionError(f"{path}: no venue here yet: start with "
                                 "`gate provision --mosquitto --broker-url mqtts://HOST:8883`")
        try:
            raw = tomllib.loads(path.read_text())
            return Settings(str(raw["broker_url"]), tuple(raw.get("hosts", ())), str(raw.get("prefix", "qrgate")))
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
            raise ProvisionError(f"{path}: not a venue file: {exc}") from None

    def setup_broker(self, broker_url: str | None = None, hosts: tuple[str, ...] = (), prefix: str | None = None,
                     rotate: bool = False) -> Report:
        """Create or update venue.toml, the CA, the broker's certificate, config, password file and ACL."""
        report = Report()
        settings = self._settings_for(broker_url, hosts, prefix, report)
        ca = self._authority(report)
        self._put(report, self.broker / "ca.crt", cert_pem(ca.cert), private=False)
        names = sorted({*LOCAL_NAMES, _host(settings.broker_url), *settings.hosts})
        cert, key = self.broker / "server.crt", self.broker / "server.key"
        if rotate or not key.exists() or not ca.signed(cert) or not set(names) <= server_names(cert):
            new_key, new_cert = ca.issue(_host(settings.broker_url), server_names=names)
            self._put(report, key, new_key)
            self._put(report, cert, new_cert, private=False)
        if not (self.broker / CRL).exists():
            self._put(report, self.broker / CRL, ca.crl([]), private=False)
        conf = render_broker_conf(BROKER_DIR, str(settings.port))
        self._put(report, self.broker / "qrgate.conf", conf.encode(), private=False)
        self._put(report, self.broker / "passwd", PasswordFile.read(self.broker / "passwd").text().encode())
        self._render_acl(report, settings)
        return report

    def _settings_for(self, broker_url: str | None, hosts: tuple[str, ...], prefix: str | None,
                      report: Report) -> Settings:
        path = self.folder / SETTINGS
        old = self.settings() if path.exists() else None
        url = broker_url or (old.broker_url if old else None)
        if url is None:
            raise ProvisionError(f"{path}: a new venue needs --broker-url mqtts://HOST:8883 (the name gates use)")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "mqtts" or not parts.hostname:
            raise ProvisionError(f"option --broker-url: {url!r} must be mqtts://HOST[:PORT] (the broker takes TLS only)")
        for host in hosts:
            if not HOST.fullmatch(host):
                raise ProvisionError(f"option --broker-host: {host!r} is not a host name or an IP address")
        if prefix is not None and not PREFIX.fullmatch(prefix):
            raise ProvisionError(f"option --prefix: {prefix!r} must be topic levels of letters, digits, '.', '_', "
                                 "'-' joined by '/'")
        settings = Settings(url, tuple(sorted({*(old.hosts if old else ()), *hosts})),
                            prefix or (old.prefix if old else "qrgate"))
        text = (f"# the venue: written by `gate provision --mosquitto`\nbroker_url = {json.dumps(settings.broker_url)}\n"
                f"hosts = {json.dumps(list(settings.hosts))}\nprefix = {json.dumps(settings.prefix)}\n")
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._put(report, path, text.encode())
        return settings

    def _authority(self, report: Report) -> Authority:
        if self.ca_key.exists() and self.ca_cert.exists():
            try:
                return Authority.load(self.ca_key, self.ca_cert)
            except (OSError, ValueError) as exc:
                raise ProvisionError(f"{self.ca_key}: cannot load the venue's CA: {exc}") from None
        if self.ca_key.exists() or self.ca_cert.exists():
            raise ProvisionError(f"{self.ca_key.parent}: half a CA (key or certificate missing): restore it "
                                 "from the backup; a new CA would need every gate provisioned again")
        ca = Authority.new(f"qrgate venue CA ({self.folder.resolve().name})")
        try:
            ca.save(self.ca_key, self.ca_cert)
        except OSError as exc:
            raise ProvisionError(f"{self.ca_key}: cannot write: {exc.strerror or exc}") from None
        report.changes += [("created", self.ca_key), ("created", self.ca_cert)]
        return ca

    # -- principals ---------------------------------------------------------------------------------
    def bundle(self, role: str, name: str) -> Path:
        return self.folder / "gates" / name if role == "gate" else self.folder / role

    def principals(self) -> list[tuple[str, str]]:
        """(role, user) of every complete bundle: the arbiter, the dashboard, then the gates by id."""
        found = [(role, role) for role in ("arbiter", "dashboard") if (self.folder / role / "gate.toml").exists()]
        gates = self.folder / "gates"
        if gates.is_dir():
            found += [("gate", p.name) for p in sorted(gates.iterdir()) if (p / "gate.toml").exists()]
        return found

    def provision(self, role: str, name: str | None = None, events: tuple[str, ...] = (),
                  rotate: bool = False, listen: str | None = None) -> Report:
        """Create or refresh one bundle and its broker credential; return what changed.  `listen`: the
        dashboard's address (dashboard.host, kept from the bundle when None; first time 127.0.0.1)."""
        name = _check_name(role, name)
        settings = self.settings()
        bundle = self.bundle(role, name)
        self._check_events(events)
        self._check_node(role, name)
        if role == "gate":
            events = self._gate_events(bundle, events)
        report = self.setup_broker()
        bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._password(report, bundle, name, rotate)
        self._tls(report, bundle, name, rotate)
        if role == "gate":
            self._keyring(report, bundle, events)
        extra: dict[str, Any] = {}
        if role == "dashboard":
            extra = self._dashboard(report, bundle, settings, rotate, listen)
        self._config(report, role, name, bundle, settings, events, extra)
        self._render_acl(report, settings)
        self._arbiter_trust(report)
        return report

    def _gate_events(self, bundle: Path, events: tuple[str, ...]) -> tuple[str, ...]:
        """The events a gate serves: --event, else those of its bundle from an earlier run.  A gate always
        names them: its keyring holds only their keys, and the arbiter refuses its claims for any other."""
        events = events or tuple(_read_toml(bundle / "gate.toml").get("gate", {}).get("events", ()))
        if not events:
            raise ProvisionError("option --event: a gate serves named events (repeat --event for several): "
                                 "its bundle gets only their keys, so a stolen gate exposes only those")
        return events

    def retire(self, name: str) -> Report:
        """Retire a gate: its certificate revoked (broker/crl.pem), its password line removed, its ACL block
        gone, its bundle moved to retired/ (kept for the record; it holds no credential that still works)."""
        name = _check_name("gate", name)
        settings = self.settings()
        bundle = self.bundle("gate", name)
        if not (bundle / "gate.toml").exists():
            gates = ", ".join(user for role, user in self.principals() if role == "gate") or "none"
            raise ProvisionError(f"{bundle}: no such gate to retire (the gates: {gates})")
        report = self.setup_broker()
        ca = self._authority(report)
        cert = bundle / "tls" / "client.crt"
        if ca.signed(cert):
            self._revoke(report, ca, [serial_number(cert)])
        passwd = PasswordFile.read(self.broker / "passwd")
        if passwd.remove(name):
            self._put(report, self.broker / "passwd", passwd.text().encode())
        target = self.folder / "retired" / f"{name}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
        target.parent.mkdir(exist_ok=True, mode=0o700)
        bundle.rename(target)
        report.changes.append(("retired", target))
        self._render_acl(report, settings)
        self._arbiter_trust(report)  # its claims are refused from now on (unknown_gate)
        report.notes.append(f"{name}: retired; install the broker's files and reload mosquitto (it rereads the "
                            "revocation list, password file and ACL); `systemctl restart mosquitto` also drops "
                            "the gate's open connection (the other gates reconnect by themselves)")
        return report

    def _revoke(self, report: Report, ca: Authority, serials: list[int]) -> None:
        revoked = revoked_serials(self.broker / CRL)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if set(serials) <= set(revoked):
            return
        revoked.update({serial: now for serial in serials if serial not in revoked})
        self._put(report, self.broker / CRL, ca.crl(revoked.items()), private=False)

    def _check_node(self, role: str, name: str) -> None:
        """Two gates may not share a Home Assistant node id (the ACL lets each write its node's configs)."""
        clash = [user for r, user in self.principals() if r == "gate" and user != name and role == "gate"
                 and node_id(user) == node_id(name)]
        if clash:
            raise ProvisionError(f"option --gate {name}: its Home Assistant node id {node_id(name)} is gate "
                                 f"{clash[0]}'s too: choose another id")

    def _check_events(self, events: tuple[str, ...]) -> None:
        known = {k.event for k in KeyStore(self.issuer_keys).issuer_keys()}
        for event in events:
            if event not in known:
                raise ProvisionError(f"option --event {event}: no issuer key for it in {self.issuer_keys}: "
                                     f"run `gate keys new --event {event}` first")

    def _password(self, report: Report, bundle: Path, user: str, rotate: bool) -> None:
        path, passwd = bundle / "mqtt.password", PasswordFile.read(self.broker / "passwd")
        password = None if rotate or not path.exists() else path.read_text().strip()
        if password is None:
            if not rotate and passwd.get(user) is not None:
                report.notes.append(f"{user}: its password was not in {path}: issued a new one (the old is void)")
            password = new_password()
            self._put(report, path, f"{password}\n".encode())
        hashed = passwd.get(user)
        if hashed is None or not check_password(password, hashed):
            passwd.set(user, hash_password(password))
            self._put(report, self.broker / "passwd", passwd.text().encode())

    def _tls(self, report: Report, bundle: Path, user: str, rotate: bool) -> None:
        ca = self._authority(report)
        tls = bundle / "tls"
        tls.mkdir(exist_ok=True, mode=0o700)
        self._put(report, tls / "ca.crt", cert_pem(ca.cert), private=False)
        cert, key = tls / "client.crt", tls / "client.key"
        if rotate or not key.exists() or not ca.signed(cert) or common_name(cert) != user:
            if ca.signed(cert):  # the old certificate names this user to the broker: it must stop working
                self._revoke(report, ca, [serial_number(cert)])
            new_key, new_cert = ca.issue(user)
            self._put(report, key, new_key)
            self._put(report, cert, new_cert, private=False)

    def _keyring(self, report: Report, bundle: Path, events: tuple[str, ...]) -> None:
        """Write keys/venue.keyring.json: the verification keys of `events` (empty: of every event)."""
        issuers = KeyStore(self.issuer_keys).issuer_keys()
        keys = [k.verify_key().to_json() for k in issuers if not events or k.event in events]
        if not keys:
            report.notes.append(f"no issuer keys in {self.issuer_keys}: {bundle.name} can verify no ticket yet "
                                "(`gate keys new`, then provision it again)")
        data = json.dumps({"format": KEYRING_FORMAT, "keys": keys}, indent=2).encode()
        (bundle / "keys").mkdir(exist_ok=True, mode=0o700)
        self._put(report, bundle / "keys" / "venue.keyring.json", data)

    def _arbiter_trust(self, report: Report) -> None:
        """The arbiter's keyring (every event: it verifies each claim's code) and gates.toml (the events of
        each gate bundle: it refuses a gate's claims for others), refreshed whenever a bundle changes; the
        running arbiter rereads both when they change (sync/arbiter/trust.py)."""
        arbiter = self.bundle("arbiter", "arbiter")
        if not (arbiter / "gate.toml").exists():
            return
        self._keyring(report, arbiter, ())
        lines = ["# the events each gate serves: written by `gate provision` from the gate bundles\n"]
        for role, gate in self.principals():
            if role == "gate":
                served = _read_toml(self.bundle(role, gate) / "gate.toml").get("gate", {}).get("events", [])
                lines.append(f"\n[gates.{json.dumps(gate)}]\nevents = {_value(list(served), gate)}\n")
        self._put(report, arbiter / "gates.toml", "".join(lines).encode())

    def _config(self, report: Report, role: str, name: str, bundle: Path, settings: Settings,
                events: tuple[str, ...], extra: dict[str, Any]) -> None:
        home, state = INSTALL[role]
        url = settings.broker_url if role == "gate" else f"mqtts://localhost:{settings.port}"
        owned: dict[str, dict[str, Any]] = {
            "gate": {"id": name, **({"events": list(events)} if events else {})},
            "sync": {"broker": url, "prefix": settings.prefix, "username": name, "password_file": "mqtt.password",
                     "ca_file": "tls/ca.crt", "cert_file": "tls/client.crt", "key_file": "tls/client.key",
                     **({"arbiter_db": f"{state}/arbiter.db", "arbiter_gates": "gates.toml"}
                        if role == "arbiter" else {})},
        }
        path = bundle / "gate.toml"
        data = _read_toml(path)
        known = {key for key, *_ in describe()}
        for key, value in _first_time(role, state).items():  # only if absent, and only keys this version knows
            section, _, name_ = key.partition(".")
            if key in known:
                data.setdefault(section, {}).setdefault(name_, value)
        for key, value in extra.items():
            owned.setdefault(key.partition(".")[0], {})[key.partition(".")[2]] = value
        for key in OBSOLETE:
            data.get(key.partition(".")[0], {}).pop(key.partition(".")[2], None)
        for section, values in owned.items():
            data.setdefault(section, {}).update(values)
        header = (f"# {role} {name}: written by `gate provision`; install this folder as {home}.\n"
                  "# Keys you add are kept when it runs again; the ones it owns (gate.id, sync.*) are reset.\n")
        self._put(report, path, (header + _to_toml(data)).encode())
        try:
            load_config(bundle, env={})
        except ConfigError as exc:
            raise ProvisionError(f"{path}: the bundle does not load: {exc}") from None

    def _dashboard(self, report: Report, bundle: Path, settings: Settings, rotate: bool,
                   listen: str | None) -> dict[str, Any]:
        """The dashboard's HTTPS certificate from the venue CA, its first account, and the keys it owns."""
        if listen is not None and not HOST.fullmatch(listen):
            raise ProvisionError(f"option --listen: {listen!r} is not an address")
        host = listen or str(_read_toml(bundle / "gate.toml").get("dashboard", {}).get("host", "127.0.0.1"))
        names = sorted({*LOCAL_NAMES, _host(settings.broker_url), *settings.hosts,
                        *([host] if host not in ("0.0.0.0", "::") else [])})
        ca = self._authority(report)
        cert, key = bundle / "tls" / "server.crt", bundle / "tls" / "server.key"
        if rotate or not key.exists() or not ca.signed(cert) or not set(names) <= server_names(cert):
            new_key, new_cert = ca.issue("dashboard", server_names=names)
            self._put(report, key, new_key)
            self._put(report, cert, new_cert, private=False)
        self._first_account(report, bundle, rotate)
        return {"dashboard.host": host, "dashboard.hosts": names, "dashboard.cert_file": "tls/server.crt",
                "dashboard.key_file": "tls/server.key", "dashboard.accounts_file": ACCOUNTS}

    def _first_account(self, report: Report, bundle: Path, rotate: bool) -> None:
        """With no account yet: an admin called `admin`, its password in admin.password for the first login."""
        accounts = Accounts(bundle / ACCOUNTS)
        existing = accounts.all()
        if existing and not (rotate and FIRST_ACCOUNT in existing):
            return
        password = new_password()
        self._put(report, bundle / ADMIN_PASSWORD, f"{password}\n".encode())
        accounts.add(FIRST_ACCOUNT, "admin", password)
        report.changes.append(("updated" if existing else "created", accounts.path))
        report.notes.append(f"dashboard: log in as {FIRST_ACCOUNT!r} with the password in {bundle / ADMIN_PASSWORD}, "
                            "add a named account per person (`gate dashboard user add NAME --role admin|viewer "
                            f"--home {INSTALL['dashboard'][0]}`) and remove {FIRST_ACCOUNT!r}")

    def _render_acl(self, report: Report, settings: Settings) -> None:
        self._put(report, self.broker / "acl", render_acl(self.principals(), settings.prefix).encode())

    @staticmethod
    def _put(report: Report, path: Path, data: bytes, private: bool = True) -> None:
        existed = path.exists()
        try:
            changed = write_private(path, data) if private else write_public(path, data)
        except OSError as exc:
            raise ProvisionError(f"{path}: cannot write: {exc.strerror or exc}") from None
        report.wrote(path, changed, existed)


def _first_time(role: str, state: str) -> dict[str, Any]:
    """Keys a new bundle starts with (the operator may change them): where the store lives."""
    return {"store.path": f"{state}/gate.db"}


def _check_name(role: str, name: str | None) -> str:
    if role not in ROLES:
        raise ProvisionError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if role != "gate":
        return role
    if not name or not NAME.fullmatch(name) or name in ROLES:
        raise ProvisionError(f"option --gate: {name!r} must be 1-64 letters, digits, '.', '_' or '-' (starting "
                             "with a letter or digit) and not 'arbiter' or 'dashboard': it is an MQTT user name "
                             "and topic level")
    return name


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProvisionError(f"{path}: cannot read it to update it: {exc}") from None


def _to_toml(data: dict[str, Any]) -> str:
    out = []
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ProvisionError(f"gate.toml: {section} must be a table")
        out.append(f"\n[{section}]\n" + "".join(f"{key} = {_value(value, f'{section}.{key}')}\n"
                                                 for key, value in table.items()))
    return "".join(out)


def _value(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string or number is a TOML one
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v, key) for v in value) + "]"
    raise ProvisionError(f"gate.toml: {key} = {value!r} is not a value provisioning can keep")
