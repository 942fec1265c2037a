"""Wiring: every part built from a Config, in one place (the CLI and the daemon call these; nothing else does).

Each function reads the config sections it needs and imports the packages of
that part only when called, so `gate mint` never loads paho or OpenCV and a
gate never loads the ownership services.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.clock import TimeTrust
from gate.config import Config
from gate.decide import Claimer, Decider, DecisionListener, OwnershipLookup
from gate.exc import CannotListen, ConfigError
from gate.keys import Keyring, KeyStore
from gate.store import Store
from gate.verify import Verifier

if TYPE_CHECKING:  # each of these pulls in what its part needs (paho, OpenCV, ...): only its users pay for it
    import ssl

    from gate.checkin import CheckinGate
    from gate.daemon.scanloop import ScanLoop
    from gate.daemon.ways import ButtonWay
    from gate.ownership.agentserver import AgentServer
    from gate.ownership.boxoffice import BoxOffice
    from gate.ownership.officeserver import BoxOfficeServer
    from gate.ownership.payment import FakePaymentAgent, PaymentProvider
    from gate.ownership.wallet import Wallet
    from gate.rules import CheckinList
    from gate.servedlist import ServedList
    from hardware import Camera, Decoder, Feedback
    from sync.admin import AdminClient
    from sync.arbiter.service import Arbiter
    from sync.arbiter.store import ArbiterStore
    from sync.gateside.session import GateSync
    from sync.link import Broker, Credentials
    from sync.topics import Topics

log = logging.getLogger(__name__)


# -- the decision core -------------------------------------------------------------------------
def open_store(config: Config) -> Store:
    return Store.open(config.store_path, busy_timeout=config.store.busy_timeout)


def time_trust(config: Config) -> TimeTrust:
    return TimeTrust(config.gate.untrusted_time, skew=config.gate.clock_skew)


def build_verifier(config: Config, trust: TimeTrust | None = None) -> Verifier:
    keyring = KeyStore(config.keys_dir).keyring()
    return Verifier(keyring, config.gate.events, skew=config.gate.clock_skew, code_skew=config.ownership.code_skew,
                    time_trust=trust or time_trust(config))


def build_decider(config: Config, store: Store | None = None, claimer: Claimer | None = None,
                  on_decision: DecisionListener | None = None, trust: TimeTrust | None = None,
                  served: ServedList | None = None) -> Decider:
    """The decision core; with `served` (start_gate_sync's), its list follows the versions the stream brings."""
    verifier = build_verifier(config, trust)
    store = store or open_store(config)
    checkin = build_checkin(config, verifier.keyring, store)
    if checkin is not None and served is not None:
        served.serve(checkin)
    return Decider(verifier, store, config.gate_id, clock=time.time, claimer=claimer, on_decision=on_decision,
                   checkin=checkin, ownership=online_ownership(config))


def online_ownership(config: Config) -> OwnershipLookup | None:
    """The online check at the box office of `ownership.boxoffice_url` (gate.ownership.gatecheck); None without one."""
    if not config.ownership.boxoffice_url:
        return None
    from gate.ownership.gatecheck import OnlineOwnership

    return OnlineOwnership(config.ownership.boxoffice_url, boxoffice=config.ownership.boxoffice_id,
                           timeout=config.ownership.online_timeout)


def build_checkin(config: Config, keyring: Keyring, store: Store | None = None) -> CheckinGate | None:
    """The check-in list of `gate.list`, verified against the keyring (RulesError if it is not trusted); with
    `store`, a higher version of it adopted from the stream instead (gate/servedlist.py)."""
    if not config.gate.list:
        return None
    from gate.checkin import CheckinGate

    return CheckinGate(served_version(config, keyring, store), config.gate.direction)


def served_version(config: Config, keyring: Keyring, store: Store | None) -> CheckinList:
    """`gate.list`'s list at the highest version this gate holds: its file, or the one `store` adopted."""
    from gate.ledger import Ledger
    from gate.rules import load
    from gate.servedlist import choose

    lst = load(config.path(config.gate.list), keyring)
    if store is None:
        return lst
    return choose(lst, Ledger(store).adopted_list(lst.name), keyring,
                  f"{config.store_path}: list {lst.name} adopted from the stream")


def served_list(config: Config, store: Store) -> ServedList | None:
    """What judges the `list` items of the stream for this gate (None: it serves no list)."""
    if not config.gate.list:
        return None
    from gate.servedlist import ServedList

    keyring = KeyStore(config.keys_dir).keyring()
    return ServedList(served_version(config, keyring, store), keyring)


def sync_parts(config: Config) -> tuple[Broker, Topics, Credentials]:
    """The broker, topic scheme and credentials of `config.sync` (SyncError if unusable)."""
    from sync.link import Broker, Credentials
    from sync.topics import Topics

    s = config.sync

    def home_path(name: str) -> str:
        return str(config.path(name)) if name else ""
    password = config.path(s.password_file) if s.password_file else None
    credentials = Credentials.load(s.username, password, home_path(s.ca_file), home_path(s.cert_file),
                                   home_path(s.key_file))
    return Broker.parse(s.broker), Topics(s.prefix), credentials


def start_gate_sync(config: Config, store: Store, trust: TimeTrust | None = None) -> GateSync:
    """This gate's link to the arbiter, started (it connects in the background)."""
    from gate.ledger import Ledger
    from sync.gateside.session import GateSync

    broker, topics, credentials = sync_parts(config)
    s = config.sync
    if s.username and s.username != config.gate_id:
        # the venue's ACL (systemd/mosquitto/acl.template) lets a gate's user write only its own topics
        log.warning("gate.id is %r but it connects as MQTT user %r: the broker lets that user claim only as %r, "
                    "so every claim would go unanswered (another gate's bundle, or a mistyped --gate-id?)",
                    config.gate_id, s.username, s.username)
    served = served_list(config, store)  # before the stream is followed: no list item passes unjudged
    gate_sync = GateSync(Ledger(store, lists=served), config.gate_id, broker, topics, budget=s.claim_budget, batch=s.batch,
                         status_every=s.status_every, keepalive=s.keepalive,
                         reconnect=(s.reconnect_min, s.reconnect_max), credentials=credentials,
                         client_suffix=f"-{os.getpid()}", time_trust=trust or time_trust(config))
    if served is not None:
        served.count = gate_sync.counters.add
    # list transitions sent from this store (gate/passledger.py) drain with the claims, whether or not a list is
    # served now: the outbox outlives a change of gate.list
    from gate.passledger import PassLedger
    from sync.gateside.passclaimer import PassDrain

    passes = PassLedger(store)
    gate_sync.drains.append(PassDrain(passes, gate_sync))
    gate_sync.backlogs.append(passes.outbox_counts)
    gate_sync.start()
    return gate_sync


@contextmanager
def gate_session(config: Config, *, after_answer: Any = None) -> Iterator[Decider]:
    """The decision core for one run of `gate check` or the scan daemon.

    Without `sync.broker` it decides from the local store alone, exactly as
    `build_decider`.  With one, each scan is claimed at the arbiter (sync/,
    docs/mqtt.md): it waits up to `sync.connect_wait` at start for the
    arbiter (then decides offline until it answers) and up to
    `sync.drain_wait` at exit for the outbox to drain.
    """
    store = open_store(config)
    try:
        if not config.sync.broker:
            yield build_decider(config, store)
            return
        from sync.gateside.claimer import GateClaimer
        from sync.gateside.feed import GateFeed

        trust = time_trust(config)
        gate_sync = start_gate_sync(config, store, trust)
        # each decision on {prefix}/scan/{gate} for dashboards; Home Assistant discovery on every connect
        feed = GateFeed(gate_sync.link, gate_sync.topics, config.gate_id,
                        ha_prefix=config.sync.ha_prefix if config.sync.ha_discovery else None)
        gate_sync.on_connect.append(feed.connected)
        if gate_sync.link.ready:
            feed.connected()
        try:
            if not gate_sync.wait_ready(config.sync.connect_wait):
                log.warning("no answer from the arbiter via %s within %.1f s (%s): deciding offline (%s) until it "
                            "answers", gate_sync.link.broker, config.sync.connect_wait, gate_sync.unready(),
                            config.sync.offline_policy)
            claimer = GateClaimer(gate_sync.ledger, gate_sync, config.sync.offline_policy, after_answer=after_answer)
            decider = build_decider(config, store, claimer, on_decision=feed.decided, trust=trust,
                                    served=gate_sync.ledger.lists)
            if decider.checkin is not None:  # the arbiter decides each list transition (sync/gateside/passclaimer.py)
                from gate.passledger import PassLedger
                from sync.gateside.passclaimer import PassClaimer

                decider.checkin.claimer = PassClaimer(PassLedger(store), gate_sync, config.sync.offline_policy)
            yield decider
        finally:
            if not gate_sync.close(config.sync.drain_wait):
                left = sum(gate_sync.ledger.outbox_counts().values())
                log.warning("%s%d scan%s not yet confirmed by the arbiter stay%s in the outbox: `gate sync` delivers "
                            "them", "stopping now; " if gate_sync.hurried else "", left, "" if left == 1 else "s",
                            "s" if left == 1 else "")
    finally:
        store.close()


# -- the gate daemon's parts -----------------------------------------------------------------------
def camera_factory(config: Config, kind: str | None = None, source: str | None = None) -> Any:
    """A no-argument callable opening the configured camera (the loop reopens it after a fault)."""
    cam = config.camera
    kind = kind or cam.kind
    source = source if source is not None else cam.source
    options: dict[str, Any]
    if kind == "picamera2":
        from hardware.cameras.picam import ScreenSettings

        settings = ScreenSettings(cam.exposure_mode, cam.exposure_us, cam.gain, cam.metering, cam.focus,
                                  cam.lens_position)
        options = {"camera_num": cam.camera_num, "size": (cam.width, cam.height), "fps": cam.fps or None,
                   "settings": settings}
    elif kind == "opencv":
        options = {"source": source, "width": cam.width, "height": cam.height, "fps": cam.fps or None}
    elif kind == "files":
        if not Path(source).exists():  # a typo in the config, not a camera that may come back: refuse to start
            raise ConfigError(f"camera.source: {source!r} does not exist (camera.kind = files wants an image or a folder)")
        options = {"path": source, "fps": cam.fps or None, "loops": cam.loops or None}
    else:
        options = {"stream": sys.stdin} if source in ("-", "0", "") else {"device": source}

    def open_it() -> Camera:
        from hardware import open_camera
        return open_camera(kind, **options)
    return open_it


def build_feedback(config: Config, kind: str | None = None) -> Feedback:
    from hardware import Pins, open_feedback

    fb = config.feedback
    kind = kind or fb.kind
    if kind == "gpio":
        pins = Pins(green=fb.green, red=fb.red, amber=fb.amber, buzzer=fb.buzzer, relay=fb.relay,
                    relay_active_high=fb.relay_active_high)
        return open_feedback("gpio", pins=pins)
    return open_feedback(kind)


def build_ways(config: Config, *, pin_factory: Any = None) -> ButtonWay | None:
    """The exit button of a gate serving a list both ways (gate.exit_button), or None; close it when done.

    None for a gate without one, which says so once (a `both` gate: every scan is an entry), and for an in
    or out gate, which ignores a configured button (its pin is not opened) and says so once."""
    g = config.gate
    if g.exit_button is None:
        if _serves_both(config) and not config.scanner.exit_source:
            log.warning("gate %s serves list %s both ways without an exit button or exit scanner (gate.exit_button, "
                        "scanner.exit_source): every scan is an entry (docs/checkin-lists.md)", config.gate_id, g.list)
        return None
    if not _serves_both(config):
        _ignored(config, f"gate.exit_button = {g.exit_button}")
        return None
    from gate.daemon.ways import ButtonWay
    from hardware import open_button

    button = open_button("gpio", pin=g.exit_button, pin_factory=pin_factory)
    log.info("exit button on pin %d: held while scanning, or pressed up to %.0f s before, the scan is an exit",
             g.exit_button, g.exit_window)
    return ButtonWay(button, g.exit_window)


def exit_scanner(config: Config, camera_kind: str | None = None, camera_source: str | None = None) -> Any:
    """A no-argument callable opening the exit scanner of a gate serving a list both ways (scanner.exit_source),
    or None: none set, or an in or out gate (which ignores it and says so once).  ConfigError for '-' when the
    camera reads stdin too."""
    where = config.scanner.exit_source
    if not where:
        return None
    if not _serves_both(config):
        _ignored(config, f"scanner.exit_source = {where!r}")
        return None
    camera_kind = camera_kind or config.camera.kind
    camera_source = camera_source if camera_source is not None else config.camera.source
    if where == "-" and camera_kind == "wedge" and camera_source in ("-", "0", ""):
        raise ConfigError("scanner.exit_source = '-' but the camera (a wedge on stdin) reads stdin already: give the "
                          "exit scanner's evdev device (/dev/input/by-id/...-event-kbd)")
    log.info("exit scanner %s: every scan it reads is an exit", where)
    return camera_factory(config, "wedge", where)


def _serves_both(config: Config) -> bool:
    return bool(config.gate.list) and config.gate.direction == "both"


def _ignored(config: Config, setting: str) -> None:
    g = config.gate
    log.warning("%s is ignored: only a gate serving a list both ways (gate.list, gate.direction = \"both\") asks "
                "it the way; this one %s", setting, f"serves list {g.list} going {g.direction}" if g.list
                else "serves no list")


def build_decoder(config: Config, kind: str | None = None) -> Decoder:
    from hardware import open_decoder

    kind = kind or config.decoder.kind
    if kind == "pipeline":
        return open_decoder(kind, second=config.decoder.second)
    return open_decoder(kind)


def build_loop(config: Config, open_cam: Any, decoder: Decoder, feedback: Feedback, decider: Decider | None = None,
               **hooks: Any) -> ScanLoop:
    from gate.daemon.scanloop import Debouncer, ScanLoop

    sc = config.scanner
    decider = decider or build_decider(config)
    return ScanLoop(open_cam, decoder, decider.decide, feedback,
                    debouncer=Debouncer(sc.holdoff, sc.leave_frames), queue_size=sc.queue, line_queue=sc.line_queue,
                    health_every=sc.health_every, **hooks)




# -- the arbiter, the dashboard and admin requests -------------------------------------------------------
def arbiter_store_at(config: Config, where: str = "") -> str | Path:
    """Where the arbiter's store is: `where` or `sync.arbiter_db`, a postgresql:// URL or a file under home."""
    from sync.arbiter.stores import is_url

    where = where or config.sync.arbiter_db
    return where if is_url(where) else config.path(where)


def open_arbiter(config: Config, where: str = "") -> tuple[Arbiter, ArbiterStore]:
    """The arbiter on its store (`where`, default `sync.arbiter_db`); close the store when done."""
    from sync.arbiter.service import Arbiter
    from sync.arbiter.stores import open_store
    from sync.arbiter.trust import ClaimCheck

    broker, topics, credentials = sync_parts(config)
    s = config.sync
    check = ClaimCheck.load(config.keys_dir, config.path(s.arbiter_gates) if s.arbiter_gates else None,
                            config.path(s.arbiter_lists) if s.arbiter_lists else None, skew=config.gate.clock_skew)
    store = open_store(arbiter_store_at(config, where))
    arbiter = Arbiter(store, broker, topics, check, keepalive=s.keepalive, reconnect=(s.reconnect_min, s.reconnect_max),
                      credentials=credentials, status_every=s.status_every, group=s.arbiter_group,
                      instance=s.arbiter_instance)
    return arbiter, store


@contextmanager
def admin_client(config: Config, purpose: str) -> Iterator[AdminClient]:
    """Admin requests as `gate.id` over a short-lived link (it waits up to `sync.connect_wait` to connect)."""
    from sync.admin import AdminClient

    broker, topics, credentials = sync_parts(config)
    with AdminClient.connected(broker, topics, config.gate_id, credentials=credentials,
                               wait=config.sync.connect_wait, purpose=purpose) as client:
        yield client


def history_path(config: Config) -> Path:
    d = config.dashboard
    return config.path(d.history_db) if d.history_db else config.store_path.parent / "dashboard.db"


def build_dashboard(config: Config, host: str, port: int) -> Any:
    """(service, server, hub, history) of the admins' page; the caller starts and stops them."""
    from sync.dashboard.auth import Sessions
    from sync.dashboard.history import History
    from sync.dashboard.hub import Hub
    from sync.dashboard.model import Model
    from sync.dashboard.server import DashboardServer
    from sync.dashboard.service import DashboardService

    broker, topics, credentials = sync_parts(config)
    d, s = config.dashboard, config.sync
    accounts = dashboard_accounts(config)
    if not accounts.all():
        raise ConfigError(f"{accounts.path}: no dashboard accounts (dashboard.accounts_file): add one with "
                          "`gate dashboard user add NAME --role admin`")
    tls = dashboard_tls(config, host)
    history = History.open(history_path(config))
    model = Model(d.capacity, d.silent_after)
    hub = Hub()
    service = DashboardService(history, model, broker, topics, config.gate_id, push=hub.publish,
                               credentials=credentials, keepalive=s.keepalive,
                               reconnect=(s.reconnect_min, s.reconnect_max), client_suffix=f"-{os.getpid()}")
    service.load()
    try:
        server = DashboardServer((host, port), service, model, hub, Sessions(accounts, d.session_hours * 3600),
                                 tls=tls, hosts=d.hosts)
    except CannotListen:  # the message names the address, the port and why (the port in use, ...)
        history.close()
        raise
    return service, server, hub, history


def dashboard_accounts(config: Config) -> Any:
    """The dashboard's accounts file (dashboard.accounts_file)."""
    from sync.dashboard.accounts import Accounts

    return Accounts(config.path(config.dashboard.accounts_file))


def dashboard_tls(config: Config, host: str) -> ssl.SSLContext | None:
    """The page's TLS context from dashboard.cert_file/key_file; None (plain HTTP) only on a loopback address."""
    import ssl


    d = config.dashboard
    if not d.cert_file:
        if not _loopback(host):
            raise ConfigError(f"dashboard.host = {host!r} is not a loopback address and dashboard.cert_file is "
                              "empty: passwords would cross the network in clear (`gate provision --dashboard` "
                              "writes tls/server.crt; or listen on 127.0.0.1)")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.path(d.cert_file), config.path(d.key_file) if d.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"dashboard.cert_file/key_file: cannot load {config.path(d.cert_file)}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    return context


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the ownership services (docs/ownership.md) ---------------------------------------------------------------
def open_boxoffice(config: Config) -> BoxOffice:
    """The box office on `ownership.boxoffice_db`, minting with the newest issuer key of each event."""
    from gate.ownership.boxoffice import BoxOffice

    keys = KeyStore(config.keys_dir)
    return BoxOffice.open(str(_existing(config, config.ownership.boxoffice_db, "box office", "gate boxoffice init")),
                          lambda ticket: keys.signing_key(ticket.event).sign(ticket),
                          reservation=config.ownership.reservation)


def create_boxoffice(config: Config, name: str) -> str:
    """Make the box office's chain (its identity block) in `ownership.boxoffice_db`; its chain id."""
    from gate.ownership.party import Party
    from gate.ownership.store import BOXOFFICE_MIGRATIONS, open_db

    with open_db(config.path(config.ownership.boxoffice_db), BOXOFFICE_MIGRATIONS) as db:
        return Party.create(db, name, "boxoffice").chain


def create_wallet(config: Config, name: str) -> str:
    """Make this wallet's chain in `ownership.wallet_db`; its chain id."""
    from gate.ownership.wallet import Wallet

    return Wallet.create(str(config.path(config.ownership.wallet_db)), name).chain


def open_wallet(config: Config) -> Wallet:
    from gate.ownership.wallet import Wallet

    return Wallet.open(str(_existing(config, config.ownership.wallet_db, "wallet", "gate wallet new --name NAME")))


def _existing(config: Config, name: str, what: str, maker: str) -> Path:
    """The path of a party's database that must be there already (not a stray empty one in the wrong home)."""
    path = config.path(name)
    if not path.exists():
        raise ConfigError(f"{path}: no {what} in {config.home}: `{maker}` makes one; or is it another --home?")
    return path


def open_fake_agent(home: Path, *, create: bool = False) -> FakePaymentAgent:
    """The FAKE payment agent kept in `home` (it moves no money: demo and tests only)."""
    from gate.ownership.payment import FakePaymentAgent

    return FakePaymentAgent.open(str(home / "fake-agent.db"), create=create)


def boxoffice_server(config: Config, *, host: str, port: int, tick: float) -> BoxOfficeServer:
    """`gate boxoffice serve`: the box office's HTTP service with its expiry timer (not started)."""
    from gate.ownership.officeserver import BoxOfficeServer

    return BoxOfficeServer(open_boxoffice(config), host=host, port=port, tick=tick,
                           publish=generation_publisher(config) if config.sync.broker else None)


def generation_publisher(config: Config) -> Callable[[list[tuple[str, str, int, float]]], list[bool]]:
    """Raised generations to the arbiter as `gate.id` (like `gate supersede --broker`); False where unconfirmed."""
    from sync.exc import SyncError

    def publish(items: list[tuple[str, str, int, float]]) -> list[bool]:
        try:
            with admin_client(config, "generation") as admin:
                return [admin.supersede(event, ticket, generation, at).answered for event, ticket, generation, at in items]
        except (SyncError, ConfigError, OSError) as exc:  # the broker is away: the timer tries again
            log.warning("box office: generations not sent to %s: %s", config.sync.broker, exc)
            return [False] * len(items)
    return publish


def fake_agent_server(home: Path, boxoffice_url: str, *, host: str, port: int) -> AgentServer:
    """`gate fake-agent serve`: the FAKE agent's HTTP service, working for the box office at `boxoffice_url`."""
    return agent_server(open_fake_agent(home), boxoffice_url, host=host, port=port)


def agent_server(provider: PaymentProvider, boxoffice_url: str, *, host: str, port: int) -> AgentServer:
    """Any payment provider's HTTP service (gate.ownership.agentserver), working for the box office at
    `boxoffice_url`: the place a real provider's adapter slots in.

    It fetches the box office's signed catalog once to learn (and check) the box office's identity.
    """
    from gate.ownership.agentserver import AgentServer
    from gate.ownership.client import BoxOfficeClient

    office = BoxOfficeClient(boxoffice_url)
    chain = provider.trust_boxoffice(office.catalog().boxoffice)
    return AgentServer(provider, office, chain, host=host, port=port)  # CannotListen names the address and why
