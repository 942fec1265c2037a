"""Configuration: frozen dataclasses loaded from TOML, validated once at start.

Precedence (lowest first): the defaults below, ``<home>/gate.toml`` (or the
file given with --config), environment variables ``QRGATE_<SECTION>_<KEY>``,
then command-line overrides.  Every error names the file (or variable or
option), the key and what was expected.  docs/configuration.md lists every
key; tests/test_config.py keeps it in step with these classes.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gate.exc import ConfigError

CONFIG_NAME = "gate.toml"


def _opt(default: Any, help: str, **checks: Any) -> Any:
    return field(default=default, metadata={"help": help, **checks})


@dataclass(frozen=True)
class GateSection:
    id: str = _opt("", "this gate's id in the audit log and on MQTT (default: the host name)")
    events: tuple[str, ...] = _opt((), "events this gate admits; empty admits any event it holds a key for")
    clock_skew: float = _opt(120.0, "seconds of clock error tolerated at the edges of a validity window", min=0)
    untrusted_time: Literal["local", "deny"] = _opt(
        "local", "with no trustworthy time (clock not synchronised and no recent arbiter time, gate/clock.py): "
        "local (judge validity windows on the local clock anyway; the status says untrusted) or deny (refuse "
        "tickets that have a validity window)")
    list: str = _opt("", "signed check-in list this gate serves (`gate lists sign`; relative to home; a higher "
                     "version of it from the arbiter's stream is adopted); empty: single use, exactly as without "
                     "lists (docs/checkin-lists.md)")
    direction: Literal["in", "out", "both"] = _opt(
        "in", "with gate.list: in (entries), out (exits: the ticket is recorded outside) or both (each scan "
        "says its way: `gate check --direction`, or in `gate run` gate.exit_button; default in)")
    exit_button: int | None = _opt(
        None, "`gate run`, a gate.direction = \"both\" gate: BCM pin of the exit button (wired to ground): held "
        "while scanning, or pressed just before (gate.exit_window), the scan is an exit; otherwise an entry. "
        "Leave out for none; ignored by an in or out gate", min=0)
    exit_window: float = _opt(10.0, "seconds after a press of the exit button within which the next scan (that one "
                              "only) is an exit; 0: only while it is held", min=0, max=600)


@dataclass(frozen=True)
class StoreSection:
    path: str = _opt("gate.db", "SQLite file of the redeemed set and audit log (relative to home)")
    busy_timeout: float = _opt(10.0, "seconds to wait for another process's write lock", min=0)


@dataclass(frozen=True)
class KeysSection:
    dir: str = _opt("keys", "folder of issuer keys and imported keyrings (relative to home)")


@dataclass(frozen=True)
class CameraSection:
    kind: Literal["picamera2", "opencv", "files", "wedge"] = _opt(
        "picamera2", "frame source: picamera2 (Pi camera), opencv (USB webcam, video file, RTSP URL), "
        "files (an image or a folder replayed), wedge (keyboard-wedge barcode scanner)")
    source: str = _opt("0", "opencv: webcam index, file or URL; files: image or folder; "
                       "wedge: '-' for stdin or an evdev device such as /dev/input/event3")
    camera_num: int = _opt(0, "picamera2: which camera", min=0)
    width: int = _opt(1280, "frame width asked of the camera", min=32)
    height: int = _opt(720, "frame height asked of the camera", min=32)
    fps: float = _opt(0.0, "frames per second asked of the camera (files: replay pace); 0 = the source's own", min=0)
    loops: int = _opt(1, "files: how many times to replay the images; 0 = forever", min=0)
    exposure_mode: Literal["short", "normal"] = _opt(
        "short", "picamera2: auto exposure preferring a short shutter (phone screens are bright) or libcamera's normal")
    exposure_us: int = _opt(0, "picamera2: fixed exposure time in microseconds, e.g. 3000 in a dark venue where the "
                            "screen blooms; 0 = automatic", min=0)
    gain: float = _opt(0.0, "picamera2: analogue gain with a fixed exposure; 0 = automatic", min=0)
    metering: Literal["centre", "spot", "matrix"] = _opt(
        "centre", "picamera2: exposure metering: centre-weighted, spot (the screen in the middle decides) or matrix")
    focus: Literal["continuous", "manual"] = _opt(
        "continuous", "picamera2 with autofocus (Camera Module 3): continuous, or manual at lens_position")
    lens_position: float = _opt(4.0, "picamera2, focus = manual: dioptres, 1 / distance in metres (4.0 = 25 cm)",
                                min=0)


@dataclass(frozen=True)
class DecoderSection:
    kind: Literal["pipeline", "zxing", "zbar", "opencv"] = _opt(
        "pipeline", "QR decoder: pipeline (zxing-cpp with a fallback, the fastest and most robust), zxing, zbar, opencv")
    second: Literal["zbar", "opencv", "none"] = _opt(
        "zbar", "pipeline only: the rescue decoder for codes zxing-cpp located but could not read "
        "(zbar needs the apt package libzbar0)")


@dataclass(frozen=True)
class FeedbackSection:
    kind: Literal["gpio", "console"] = _opt("gpio", "gpio (LEDs, buzzer, relay through gpiozero) or console")
    green: int = _opt(17, "BCM pin of the green LED", min=0)
    red: int = _opt(27, "BCM pin of the red LED", min=0)
    amber: int | None = _opt(22, "BCM pin of the amber (offline/fault) LED; leave out for none", min=0)
    buzzer: int = _opt(23, "BCM pin of the buzzer", min=0)
    relay: int | None = _opt(None, "BCM pin of the turnstile/door-strike relay (pulsed on ADMIT); leave out for none",
                             min=0)
    relay_active_high: bool = _opt(True, "false for relay boards that switch on a low input")


@dataclass(frozen=True)
class ScannerSection:
    holdoff: float = _opt(5.0, "seconds before a code still in view is decided (and signalled) again; a wedge "
                          "scanner's repeat of a line within it is answered with the repeat signal", min=0)
    leave_frames: int = _opt(5, "frames in a row without a code before it counts as having left the view", min=1)
    queue: int = _opt(4, "camera codes waiting for a decision before new ones are dropped (and re-read later)",
                      min=1)
    line_queue: int = _opt(256, "wedge scans waiting for a decision (each line is decided, in order); past it a "
                           "scan is refused with the fault pattern and counted", min=1)
    health_every: float = _opt(60.0, "seconds between health log lines (frames/s, decode ms, decisions)", min=1)
    exit_source: str = _opt("", "`gate run`, a gate.direction = \"both\" gate: a second keyboard-wedge scanner whose "
                            "every scan is an exit, an evdev device such as /dev/input/by-id/...-event-kbd ('-': "
                            "stdin, when the camera does not read it); empty: none. Ignored by an in or out gate")


@dataclass(frozen=True)
class SyncSection:
    """Multi-gate single use over MQTT (sync/, docs/mqtt.md)."""

    broker: str = _opt("", "MQTT v5 broker, mqtt://host:port or mqtts://host:port; several, comma separated: "
                       "tried in turn (failover); empty: decide from the local store alone")
    prefix: str = _opt("qrgate", "first level of every qrgate topic")
    claim_budget: float = _opt(0.3, "seconds a scan waits for the arbiter's answer before the offline policy decides",
                               min=0.01, max=10)
    offline_policy: Literal["admit-if-unseen", "deny"] = _opt(
        "admit-if-unseen", "without an answer in time: admit-if-unseen (admit what the local set has not seen, "
        "provisionally, and reconcile later) or deny")
    connect_wait: float = _opt(3.0, "seconds `gate check` waits at start for the broker and the arbiter", min=0)
    drain_wait: float = _opt(10.0, "seconds `gate check` waits at exit for its outbox to reach the arbiter", min=0)
    reconnect_min: int = _opt(1, "seconds before the first reconnect attempt (doubling up to reconnect_max; each "
                              "wait drawn from its upper half, so gates do not all come back at once)", min=1)
    reconnect_max: int = _opt(1, "longest wait between reconnect attempts, seconds (1: back online within a second "
                              "of a venue network's heal; raise it over a WAN)", min=1)
    keepalive: int = _opt(10, "MQTT keepalive, seconds: a silent broker is noticed within 1.5x this", min=2)
    status_every: float = _opt(10.0, "seconds between retained status updates", min=0.2)
    batch: int = _opt(200, "claims or releases per outbox-drain message", min=1, max=1000)
    username: str = _opt("", "MQTT user name (empty: anonymous)")
    password_file: str = _opt("", "file holding the MQTT password (relative to home)")
    ca_file: str = _opt("", "mqtts: CA bundle that signed the broker's certificate (relative to home; empty: "
                        "the system's)")
    cert_file: str = _opt("", "mqtts: this client's certificate, PEM (relative to home; `gate provision` writes "
                          "tls/client.crt); empty: none")
    key_file: str = _opt("", "mqtts: the private key of cert_file, PEM, 0600 (relative to home)")
    arbiter_db: str = _opt("arbiter.db", "`gate arbiter`: its SQLite file (relative to home), or a postgresql:// URL "
                           "(several instances on one database: docs/scale.md)")
    arbiter_group: str = _opt("", "`gate arbiter`: the MQTT v5 shared-subscription group its instances share the "
                              "requests in ($share/GROUP/...); empty: one instance gets every request")
    arbiter_instance: str = _opt("", "`gate arbiter`: this instance's name, its status topic's last level "
                                 "({prefix}/arbiter/status/NAME); empty: {prefix}/arbiter/status")
    arbiter_gates: str = _opt("", "`gate arbiter`: the file naming each gate's events (relative to home; `gate "
                              "provision` writes it); a claim for an event its gate does not serve is refused. "
                              "Empty: any gate may claim any event the arbiter holds a key for")
    arbiter_lists: str = _opt("lists", "`gate arbiter`: the folder of signed check-in lists (`gate lists sign`; "
                              "relative to home) it judges gates' list transitions by, reread when they change, and puts on its stream "
                              "for the gates; none there: every transition is refused not_this_list "
                              "(docs/checkin-lists.md)")
    ha_discovery: bool = _opt(False, "gates: announce this gate to Home Assistant by MQTT discovery (its status and "
                              "counters as sensors; docs/mqtt.md)")
    ha_prefix: str = _opt("homeassistant", "Home Assistant's MQTT discovery prefix")


@dataclass(frozen=True)
class OwnershipSection:
    """Box office, wallet and holder codes (gate/ownership/, docs/ownership.md)."""

    reservation: float = _opt(600.0, "`gate boxoffice`: seconds an unpaid reservation or a resale hold lasts "
                              "before `gate boxoffice expire` frees it", min=1)
    slot: int = _opt(15, "`gate boxoffice add`: seconds per slot of a holder's rotating code", min=1, max=3600)
    boxoffice_db: str = _opt("boxoffice.db", "`gate boxoffice`: its SQLite file (relative to home)")
    wallet_db: str = _opt("wallet.db", "`gate wallet`: its SQLite file, holding the wallet's seeds (relative to home)")
    page_port: int = _opt(8765, "`gate wallet serve`: port of the wallet page on 127.0.0.1", min=0, max=65535)
    code_skew: int = _opt(1, "gates: slots of clock error tolerated for a holder's rotating code "
                          "(a screenshot stays valid at most this many slots after its own)", min=0, max=8)
    boxoffice_url: str = _opt("", "gates: the box office (`gate boxoffice serve`, http://HOST:PORT) to ask for the "
                              "current ownership of each holder ticket before deciding (the online check; an older "
                              "code is REVOKED superseded); empty: the generation stream alone; needs boxoffice_id")
    boxoffice_id: str = _opt("", "gates, with boxoffice_url: the box office's chain id (32 hex, printed by `gate "
                             "boxoffice init` and `gate boxoffice serve`; the wallet's --boxoffice-id): the online "
                             "check takes only answers signed by it")
    online_timeout: float = _opt(0.5, "gates: seconds to wait for the box office's answer to the online check; "
                                 "without one the gate decides offline, and asks again after 30 s", min=0.05, max=10)


@dataclass(frozen=True)
class DashboardSection:
    """`gate dashboard`: the admins' live page over MQTT (sync/dashboard/, docs/dashboard.md)."""

    host: str = _opt("127.0.0.1", "address the page listens on (a non-loopback address needs cert_file: "
                     "passwords do not cross the network in clear)")
    port: int = _opt(8080, "port of the page", min=0, max=65535)
    capacity: int = _opt(0, "tickets issued, shown against the tickets admitted; 0: not set", min=0)
    accounts_file: str = _opt("dashboard.accounts", "the named accounts (viewer, admin) that may log in, with "
                              "salted scrypt hashes; `gate dashboard user add` writes it (relative to home)")
    cert_file: str = _opt("", "HTTPS: the page's certificate, PEM (`gate provision --dashboard` writes tls/server.crt "
                          "from the venue CA; relative to home); empty: plain HTTP, loopback only")
    key_file: str = _opt("", "HTTPS: the private key of cert_file, PEM, 0600 (relative to home)")
    hosts: tuple[str, ...] = _opt((), "host names and addresses the page answers for (the Host header), besides "
                                  "dashboard.host and the loopback names; any other is refused (DNS rebinding)")
    session_hours: float = _opt(12.0, "hours a login lasts", min=0.01, max=24 * 30)
    history_db: str = _opt("", "its SQLite file of scans, stream items and admin actions (relative to home); "
                           "empty: dashboard.db beside store.path")
    silent_after: float = _opt(30.0, "seconds without a message after which an online gate shows as silent", min=1)


@dataclass(frozen=True)
class Config:
    home: Path = Path(".")
    source: str = "defaults"
    gate: GateSection = field(default_factory=GateSection)
    store: StoreSection = field(default_factory=StoreSection)
    keys: KeysSection = field(default_factory=KeysSection)
    camera: CameraSection = field(default_factory=CameraSection)
    decoder: DecoderSection = field(default_factory=DecoderSection)
    feedback: FeedbackSection = field(default_factory=FeedbackSection)
    scanner: ScannerSection = field(default_factory=ScannerSection)
    sync: SyncSection = field(default_factory=SyncSection)
    ownership: OwnershipSection = field(default_factory=OwnershipSection)
    dashboard: DashboardSection = field(default_factory=DashboardSection)

    @property
    def gate_id(self) -> str:
        return self.gate.id or socket.gethostname()

    def path(self, relative: str) -> Path:
        return self.home / os.path.expanduser(relative)

    @property
    def store_path(self) -> Path:
        return self.path(self.store.path)

    @property
    def keys_dir(self) -> Path:
        return self.path(self.keys.dir)


#: section name -> its dataclass; every section of every package is declared in Config
SECTIONS: dict[str, type] = {name: hint for name, hint in typing.get_type_hints(Config).items()
                             if isinstance(hint, type) and dataclasses.is_dataclass(hint)}


def default_home(env: Mapping[str, str] = os.environ) -> Path:
    if env.get("QRGATE_HOME"):
        return Path(env["QRGATE_HOME"])
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "qrgate"


def load_config(
    home: str | Path | None = None,
    file: str | Path | None = None,
    env: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load and validate the config; raise ConfigError naming file, key and expectation."""
    home_path = Path(home) if home else default_home(env)
    path = Path(file) if file else home_path / CONFIG_NAME
    raw: dict[str, Any] = {}
    if file or path.exists():
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = raw.pop(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        sections[name] = _build(cls, name, table, str(path), env, overrides or {})
    if raw:
        raise ConfigError(f"{path}: unknown section or key {sorted(raw)[0]!r}{did_you_mean(sorted(raw)[0], SECTIONS)}")
    config = Config(home=home_path, source=str(path) if (file or path.exists()) else "defaults")
    _check_boxoffice(sections["ownership"], str(path) if (file or path.exists()) else "config")
    return dataclasses.replace(config, **sections)


def _check_boxoffice(ownership: OwnershipSection, where: str) -> None:
    """The online check trusts one box office: never an unpinned URL (whoever answers there could lock holders out)."""
    if ownership.boxoffice_id and not re.fullmatch(r"[0-9a-f]{32}", ownership.boxoffice_id):
        raise ConfigError(f"{where}: ownership.boxoffice_id must be a box office's chain id (32 hex digits, as "
                          f"`gate boxoffice init` prints it), not {ownership.boxoffice_id!r}")
    if ownership.boxoffice_url and not ownership.boxoffice_id:
        raise ConfigError(f"{where}: ownership.boxoffice_url is set but ownership.boxoffice_id is empty: the online "
                          "check needs the box office's chain id (`gate boxoffice init` and `gate boxoffice serve` "
                          "print it) to tell its signed answers from anyone else's")


def _build(cls: type, section: str, table: dict[str, Any], where: str,
           env: Mapping[str, str], overrides: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(table) - names
    if unknown:
        key = f"{section}.{sorted(unknown)[0]}"
        raise ConfigError(f"{where}: unknown key {key}{did_you_mean(key, [f'{section}.{n}' for n in names])}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key, origin = f"{section}.{f.name}", where
        value: Any = dataclasses.MISSING
        from_text = False
        if f.name in table:
            value = table[f.name]
        env_name = f"QRGATE_{section}_{f.name}".upper()
        if env_name in env:
            value, origin, from_text = env[env_name], f"environment {env_name}", True
        if key in overrides and overrides[key] is not None:
            value, origin, from_text = overrides[key], f"option --{key.split('.')[-1].replace('_', '-')}", True
        if value is dataclasses.MISSING:
            continue
        values[f.name] = coerce(value, hints[f.name], f.metadata, f"{origin}: {key}", from_text)
    return cls(**values)


def coerce(value: Any, hint: Any, meta: Mapping[str, Any], where: str, from_text: bool = False) -> Any:
    """Check (and, for text from env/CLI, parse) one value against its annotation."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None or (from_text and value == ""):
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, not {value!r}")
        return value
    if origin is tuple:
        if from_text and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, not {value!r}")
        return tuple(coerce(v, args[0], {}, where, from_text) for v in value)
    result = _scalar(value, hint, where, from_text)
    if "min" in meta and result < meta["min"]:
        raise ConfigError(f"{where} must be at least {meta['min']}, not {result!r}")
    if "max" in meta and result > meta["max"]:
        raise ConfigError(f"{where} must be at most {meta['max']}, not {result!r}")
    return result


def _scalar(value: Any, hint: Any, where: str, from_text: bool) -> Any:
    if hint is bool:
        if from_text and isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, not {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        if from_text and isinstance(value, str):
            try:
                return hint(value)
            except ValueError:
                pass
        elif isinstance(value, int) or (hint is float and isinstance(value, float)):
            return hint(value)
        raise ConfigError(f"{where} must be {'an integer' if hint is int else 'a number'}, not {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, not {value!r}")
    raise ConfigError(f"{where}: unsupported type {hint!r}")  # a bug in a section class


def did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    """'; did you mean X?' (or 'X or Y') for the known names closest to a mistyped one; '' when none is near
    (docs/configuration.md lists them all)."""
    near = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.75)
    return f"; did you mean {' or '.join(near)}?" if near else " (docs/configuration.md lists every key)"


def describe() -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) of every config key, for docs/configuration.md."""
    rows = []
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
            rows.append((f"{name}.{f.name}", _type_name(hints[f.name]), repr(default), f.metadata.get("help", "")))
    return rows


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
