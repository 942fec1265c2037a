"""One MQTT v5 connection on paho-mqtt 2.x, behind a thin seam.

What a caller may rely on:

* TCP_NODELAY is set on every socket paho opens (paho has no option for it;
  its ``on_socket_open`` callback does it).  Without it a QoS 1 round trip
  costs ~44 ms instead of ~0.6 ms; the broker's listener needs
  ``set_tcp_nodelay true`` as well (docs/mqtt.md).
* Reconnects with exponential backoff from ``reconnect[0]`` to ``reconnect[1]``
  seconds, each wait drawn at random from its upper half (`reconnect_delay`),
  also when the first connection fails; with several brokers (`Broker.others`)
  each attempt goes to the next one in turn.  Every connection is a clean start
  with a session that ends with it (a shared subscription's messages are never
  kept for a member that is gone).  The
  subscriptions are made again on each connect, and the link only reports
  itself ready once the broker has granted them (SUBACK).
* The last will (retained, QoS 1) is set before the first connect.
* ``request`` publishes with a ResponseTopic and a fresh CorrelationData and
  waits for the matching reply; a reply that comes after its waiter gave up
  is counted (``late_replies``) and dropped.  A lost connection wakes every
  waiter at once with no reply.
* `screen(msg)`, if given, sees every message before it is decoded and may
  take it (return True: the link does nothing more with it).
* Connection trouble is one warning that names its cause (sync/diagnosis.py: the name not resolved, the
  connection refused, the TLS handshake and why, not authorised, the client id taken), once per change,
  and the recovery after it; `problem` holds the current cause for the caller's own messages.  A CA,
  certificate or key file that is not there is a SyncError naming it.
* A connection that has gone silent (every packet lost, nothing closed: a pulled cable, a dead Wi-Fi
  cell, a broker machine that lost power) is not waited out: TCP would only find out by its own timers
  (retransmissions backing off for seconds, the keepalive after 10-20 s).  `heard` is when the last
  message came in; `renew` gives the connection up at once, and the link reconnects at once (a fresh
  connection, to the next broker if there are several); an attempt that gets no answer is given
  up after CONNECT_TIMEOUT, and the next one begins at once (that wait was the backoff).  The caller decides when silence means dead (sync.gateside.session).
* Callbacks never raise into paho: bad payloads are counted
  (``bad_messages``) and dropped.  Handlers run on paho's network thread and
  must be quick.
"""

from __future__ import annotations

import logging
import random
import select
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from paho.mqtt.subscribeoptions import SubscribeOptions

from sync import wire
from sync.counters import Counters, Quiet
from sync.diagnosis import ConnectionLog, connect_failed, dropped, refused
from sync.exc import BadMessage, BrokerURLError, SyncError

log = logging.getLogger(__name__)

QOS = 1
#: requests and their answers: a lost one is a timeout that the outbox repairs, so QoS 1's acknowledgements
#: buy nothing, and paho would re-send a stale claim after a reconnect
REQUEST_QOS = 0
#: paho's own queue of unsent messages: bounded so a long outage cannot eat the memory
MAX_QUEUED = 10_000
#: seconds a connection attempt (TCP connect, and the TLS handshake) may take before it is given up and the
#: next begins (or the longest reconnect wait, if longer: a WAN's `sync.reconnect_max` lengthens both) (paho's default, 5 s, would hold a gate on a broker that went silent: a venue LAN connects in
#: milliseconds, and a fresh attempt after a heal is answered at once while a held one waits out TCP's backoff)
CONNECT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Broker:
    """Where the broker listens: parsed from mqtt://host[:port] or mqtts://host[:port]; several URLs, comma
    separated, are one broker with `others` to fail over to (a Link tries them in turn)."""

    host: str
    port: int = 1883
    tls: bool = False
    others: tuple[Broker, ...] = ()

    @classmethod
    def parse(cls, url: str) -> Broker:
        first, *rest = [cls._parse_one(u.strip()) for u in url.split(",")]
        if any(b.tls != first.tls for b in rest):
            raise BrokerURLError(f"brokers {url!r}: all mqtt:// or all mqtts:// (one TLS set-up serves them all)")
        return cls(first.host, first.port, first.tls, tuple(rest))

    def each(self) -> list[Broker]:
        """This broker and the ones to fail over to, in order, each on its own."""
        return [Broker(self.host, self.port, self.tls), *self.others]

    @classmethod
    def _parse_one(cls, url: str) -> Broker:
        parts = urllib.parse.urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise BrokerURLError(f"broker {url!r} is not mqtt://host[:port] or mqtts://host[:port]")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise BrokerURLError(f"broker {url!r}: the port is not a number from 1 to 65535") from None
        if parts.path not in ("", "/") or parts.query:
            raise BrokerURLError(f"broker {url!r}: no path or query expected")
        return cls(parts.hostname, port, tls)

    def __str__(self) -> str:
        return ",".join(f"{'mqtts' if b.tls else 'mqtt'}://{b.host}:{b.port}" for b in self.each())


def reconnect_delay(failures: int, reconnect: tuple[int, int], rng: random.Random) -> float:
    """Seconds before the next connection attempt after `failures` in a row: doubling from reconnect[0] up to
    reconnect[1], each wait drawn from its upper half, so gates that lost the network together do not all come
    back in the same instant."""
    low, high = reconnect[0], max(reconnect)
    return min(high, low * 2 ** min(max(failures - 1, 0), 16)) * rng.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Credentials:
    """User name and password (no user name: anonymous); for mqtts the CA bundle (empty: the system's)
    and optionally this client's certificate and key (PEM files)."""

    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def load(cls, username: str, password_file: Path | None, ca_file: str = "", cert_file: str = "",
             key_file: str = "") -> Credentials:
        password = ""
        if password_file is not None:
            try:
                password = password_file.read_text().strip()
            except OSError as exc:
                raise SyncError(f"{password_file}: cannot read the MQTT password: {exc.strerror or exc}") from None
        return cls(username, password, ca_file, cert_file, key_file)


@dataclass(frozen=True)
class Inbound:
    """One decoded message that is not a reply to our own request."""

    topic: str
    payload: wire.Json
    response_topic: str | None = None
    correlation: bytes | None = None
    retained: bool = False


def _need_files(broker: Broker, credentials: Credentials) -> None:
    """The TLS files that are set must be there: a SyncError naming the one that is not."""
    for key, path in (("ca_file", credentials.ca_file), ("cert_file", credentials.cert_file),
                      ("key_file", credentials.key_file)):
        if path and not Path(path).is_file():
            raise SyncError(f"{path}: no such file (sync.{key}, for {broker})")


class RequestProperties(Properties):
    """The PUBLISH properties of a request or reply (ResponseTopic, CorrelationData), packed once by us.

    paho only calls `pack()` on the properties it is given to send.  Its own Properties class builds two
    tables per instance and scans them on every assignment and again to pack: ~20 µs a message, which was
    a sixth of the arbiter's CPU per claim.  The bytes are the same (tests/test_sync_wire.py compares).
    """

    _packed: bytes
    _shown: str

    def __init__(self, response_topic: str | None = None, correlation: bytes | None = None) -> None:
        # paho's __init__ is not called on purpose (it is the cost this class exists to avoid), and its
        # __setattr__ takes only property names: hence object.__setattr__
        body = b""
        if response_topic is not None:  # property 8, a UTF-8 string (paho packs by identifier order too)
            topic = response_topic.encode()
            body += b"\x08" + len(topic).to_bytes(2, "big") + topic
        if correlation is not None:  # property 9, binary data
            body += b"\x09" + len(correlation).to_bytes(2, "big") + correlation
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "_packed", VariableByteIntegers.encode(len(body)) + body)
        object.__setattr__(self, "_shown", f"[ResponseTopic: {response_topic!r}, CorrelationData: {correlation!r}]")

    def pack(self) -> bytes:
        return self._packed

    def __str__(self) -> str:  # paho's debug log prints the properties it sends
        return self._shown


class _PahoLog(logging.LoggerAdapter):
    """paho's log, passed on at debug level, keeping its last error: a TLS alert after the handshake (a
    client certificate refused) reaches us only as paho's "failed to receive on socket" line."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger(f"{__name__}.paho"), {})
        self.last_error = ""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level >= logging.ERROR:
            self.last_error = str(msg) % args if args else str(msg)
        if self.isEnabledFor(logging.DEBUG):
            super().log(logging.DEBUG, msg, *args, **kwargs)


class _Waiter:
    __slots__ = ("event", "reply", "tag")

    def __init__(self, tag: str) -> None:
        self.event = threading.Event()
        self.reply: wire.Json | None = None
        self.tag = tag


class Link:
    """An MQTT v5 client: start(), publish(), request(), stop().  Thread-safe."""

    def __init__(
        self,
        broker: Broker,
        client_id: str,
        *,
        subscriptions: Sequence[str],
        on_message: Callable[[Inbound], None],
        on_ready: Callable[[bool], None] | None = None,
        after_packet: Callable[[], None] | None = None,
        screen: Callable[[mqtt.MQTTMessage], bool] | None = None,
        reply_topic: str | None = None,
        will: tuple[str, wire.Json] | None = None,
        keepalive: int = 10,
        reconnect: tuple[int, int] = (1, 16),
        credentials: Credentials | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.broker = broker
        self.reply_topic = reply_topic
        self.counters = counters or Counters()
        self._subscriptions = list(subscriptions) + ([reply_topic] if reply_topic else [])
        self._on_message = on_message
        self._on_ready = on_ready
        self._after_packet = after_packet
        self._screen = screen
        self._quiet = Quiet()
        self._keepalive = keepalive
        self._ready = False
        self._stopping = False
        self._ready_event = threading.Event()
        self._sub_mid: int | None = None
        self._lock = threading.Lock()
        self._waiters: dict[bytes, _Waiter] = {}
        self._story = ConnectionLog(str(broker), log)
        self._paho_log = _PahoLog()
        self._answered = False  # the broker accepted this connection (CONNACK)
        self._heard = 0.0  # time.monotonic() of the last message in (or of the connection)
        self._renewed = False  # the connection is being given up by `renew`: the next attempt at once
        self._explained = False  # this attempt's cause is told already (a refusal precedes its disconnect)
        self._client_id = client_id
        self._username = (credentials or Credentials()).username
        self._brokers = broker.each()
        self._at = 0  # the broker of self._brokers being tried or used
        self._failures = 0  # connection attempts failed (or connections lost) in a row
        self._reconnect = reconnect
        self._rng = random.Random()
        self._client = self._make_client(client_id, will, reconnect, credentials or Credentials(), after_packet)

    def _make_client(self, client_id: str, will: tuple[str, wire.Json] | None, reconnect: tuple[int, int],
                     credentials: Credentials, after_packet: Callable[[], None] | None) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.suppress_exceptions = True  # a bug in a handler must not kill the network thread
        client.on_socket_open = self._socket_opened
        client.enable_logger(self._paho_log)  # type: ignore[arg-type]
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_connect_fail = self._connect_failed
        client.on_subscribe = self._subscribed
        client.on_message = self._message
        if after_packet is not None:
            # paho builds a PUBACK ReasonCode and Properties for every QoS 0 message it writes when this is
            # set: only a link that wants to hear of acknowledgements read pays for it
            client.on_publish = self._published
        self._set_delay(client)
        client.connect_timeout = max(CONNECT_TIMEOUT, float(max(reconnect)))  # a WAN's longer waits: longer tries
        client.max_queued_messages_set(MAX_QUEUED)
        if will is not None:
            client.will_set(will[0], wire.encode(will[1]), qos=QOS, retain=True)
        if credentials.username:
            client.username_pw_set(credentials.username, credentials.password or None)
        if self.broker.tls:
            _need_files(self.broker, credentials)
            try:
                client.tls_set(ca_certs=credentials.ca_file or None, certfile=credentials.cert_file or None,
                               keyfile=credentials.key_file or None)
            except (OSError, ValueError) as exc:
                raise SyncError(f"cannot set up TLS for {self.broker}: {exc}") from None
        return client

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; returns at once (see `ready`)."""
        first = self._brokers[0]
        self._client.connect_async(first.host, first.port, keepalive=self._keepalive, clean_start=True)
        self._client.loop_start()

    def stop(self, final: tuple[str, wire.Json] | None = None, timeout: float = 2.0) -> None:
        """Publish `final` (retained) if connected, then disconnect cleanly (the broker drops the will)."""
        if final is not None and self._ready:
            info = self._client.publish(final[0], wire.encode(final[1]), qos=QOS, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("final status not sent: %s", exc)
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._ready = False
        self._wake_all()

    @property
    def problem(self) -> str:
        """Why the link is not connected, in a line ("" while connected, or before the first try ended)."""
        return self._story.problem

    @property
    def connected_to(self) -> Broker:
        """The broker in use (or being tried)."""
        return self._brokers[self._at]

    @property
    def ready(self) -> bool:
        """Connected and subscribed: a request now can get an answer."""
        return self._ready

    def wait_ready(self, timeout: float) -> bool:
        return self._ready_event.wait(timeout)

    # -- publishing ----------------------------------------------------------------------
    def publish(self, topic: str, payload: wire.Json, *, retain: bool = False, qos: int = QOS,
                correlation: bytes | None = None, response_topic: str | None = None) -> bool:
        """Send one message (QoS 1 unless told); False (and counted as `unsent`) when not connected or refused."""
        if not self._ready:
            self.counters.add("unsent")
            return False
        props = None
        if correlation is not None or response_topic is not None:
            props = RequestProperties(response_topic, correlation)
        info = self._client.publish(topic, wire.encode(payload), qos=qos, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.counters.add("unsent")
            log.debug("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return False
        return True

    def request(self, topic: str, payload: wire.Json, timeout: float,
                resend_after: float | None = None, tag: str = "") -> wire.Json | None:
        """Publish a request and wait up to `timeout` seconds for its reply; None without one.

        With `resend_after` (less than `timeout`), a request still unanswered then is published once more, the
        same bytes with the same correlation (counted as `resent`): to a shared subscription that is another
        chance at a live member, and the first reply of either answers it.  Only for idempotent requests.
        A request with a `tag` can be given up early by `wake(tag)`.
        """
        if self.reply_topic is None:
            raise SyncError("this link has no reply topic")
        correlation = uuid.uuid4().hex.encode()
        waiter = _Waiter(tag)
        with self._lock:
            self._waiters[correlation] = waiter
        deadline = time.monotonic() + timeout
        try:
            if not self.publish(topic, payload, qos=REQUEST_QOS, correlation=correlation,
                                response_topic=self.reply_topic):
                return None
            if resend_after is not None and resend_after < timeout and not waiter.event.wait(resend_after) \
                    and self.publish(topic, payload, qos=REQUEST_QOS, correlation=correlation,
                                     response_topic=self.reply_topic):
                self.counters.add("resent")
            waiter.event.wait(max(0.0, deadline - time.monotonic()))
            return waiter.reply
        finally:
            with self._lock:
                self._waiters.pop(correlation, None)

    # -- paho callbacks (network thread) ----------------------------------------------
    def _socket_opened(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._answered = self._explained = False
        self._paho_log.last_error = ""
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError) as exc:
            self.counters.add("nodelay_failed")
            log.warning("cannot set TCP_NODELAY (claims will be ~40 ms slower): %s", exc)

    def _connected(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self.counters.add("connect_refused")
            self._explained = True
            self._story.failed(refused(str(reason), self._username))
            return
        self.counters.add("connects")
        self._heard = time.monotonic()
        self._answered = True
        self._story.connected()
        self._failures = 0
        self._set_delay(client)
        if self._subscriptions:
            _rc, self._sub_mid = client.subscribe([(t, SubscribeOptions(qos=QOS)) for t in self._subscriptions])
        else:
            self._set_ready(True)


    def _subscribed(self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: list[Any], _props: Any) -> None:
        if mid != self._sub_mid:
            return
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self.counters.add("subscribe_refused")
            log.error("broker %s refused subscriptions (ACL?): %s", self.broker, ", ".join(refused))
        self._set_ready(True)

    def _disconnected(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self._ready and not self._stopping:
            self.counters.add("disconnects")
        if not self._stopping and not self._explained:
            self._story.failed(dropped(str(reason), self._client_id, answered=self._answered,
                                       error=self._paho_log.last_error, tls=self.connected_to.tls))
        self._set_ready(False)
        self._wake_all()
        renewed, self._renewed = self._renewed, False
        if not self._stopping:
            self._try_next(client, at_once=renewed)

    def _connect_failed(self, client: mqtt.Client, _userdata: Any) -> None:
        # paho calls this inside its `except OSError:` around the connect, and passes no exception
        self.counters.add("connect_failed")
        exc = sys.exc_info()[1]
        self._story.failed(connect_failed(exc, self.connected_to.host, tls=self.connected_to.tls))
        self._try_next(client, at_once=isinstance(exc, TimeoutError))

    def _try_next(self, client: mqtt.Client, *, at_once: bool = False) -> None:
        """Before paho's next attempt: the next broker in turn, and the (jittered) wait before it; `at_once`
        after an attempt that went unanswered for CONNECT_TIMEOUT or a connection given up by `renew` (a
        silent network: that silence was the backoff, and a fresh attempt is what gets through first after
        a heal)."""
        self._failures += 1
        if len(self._brokers) > 1:
            self._at = (self._at + 1) % len(self._brokers)
            # (paho's host and port setters refuse while it is reconnecting; connect_async takes them at any
            # time, and paho's reconnect loop then dials them)
            client.connect_async(self.connected_to.host, self.connected_to.port, keepalive=self._keepalive,
                                 clean_start=True)
        if at_once:
            client.reconnect_delay_set(min_delay=0.01, max_delay=0.01)  # type: ignore[arg-type]  # floats work
        else:
            self._set_delay(client)

    def _set_delay(self, client: mqtt.Client) -> None:
        delay = reconnect_delay(self._failures, self._reconnect, self._rng)
        client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]  # floats work

    def _message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._heard = time.monotonic()
        if self._screen is not None and self._screen(msg):  # taken (or dropped) before it is decoded
            if self._after_packet is not None:
                self._after_packet()
            return
        props = msg.properties
        correlation = getattr(props, "CorrelationData", None)
        try:
            payload = wire.decode(msg.payload)
        except BadMessage as exc:
            self._bad(msg.topic, exc)
            return
        if msg.topic == self.reply_topic:
            self._resolve(correlation, payload)
            return
        inbound = Inbound(msg.topic, payload, getattr(props, "ResponseTopic", None), correlation, bool(msg.retain))
        try:
            self._on_message(inbound)
        except (BadMessage, SyncError) as exc:
            self._bad(msg.topic, exc)
        if self._after_packet is not None:
            self._after_packet()

    def _bad(self, topic: str, exc: Exception) -> None:
        self.counters.add("bad_messages")
        if self._quiet("bad_messages"):
            log.warning("dropped a message on %s: %s (counted in bad_messages; logged once every %.0f s)", topic,
                        exc, self._quiet.every)

    def _published(self, _client: mqtt.Client, _userdata: Any, _mid: int, _reason: Any, _props: Any) -> None:
        if self._after_packet is not None:  # a PUBACK was read: the socket may be drained now
            self._after_packet()

    # -- helpers -------------------------------------------------------------------------
    def _set_ready(self, ready: bool) -> None:
        changed = ready != self._ready
        self._ready = ready
        if ready:
            self._ready_event.set()
        else:
            self._ready_event.clear()
        if changed and self._on_ready is not None:
            self._on_ready(ready)

    def _resolve(self, correlation: bytes | None, payload: wire.Json) -> None:
        with self._lock:
            waiter = self._waiters.pop(correlation, None) if correlation else None
        if waiter is None:
            self.counters.add("late_replies")
            return
        waiter.reply = payload
        waiter.event.set()

    def wake(self, tag: str) -> None:
        """Give up the waiting requests of `tag` now (they return None): e.g. the arbiter they asked has gone,
        and its successor should be asked instead of waiting out the timeout."""
        self._wake_all(tag)

    def _wake_all(self, tag: str | None = None) -> None:
        with self._lock:
            waiters = [w for w in self._waiters.values() if tag is None or (tag and w.tag == tag)]
        for waiter in waiters:
            waiter.event.set()

    def heard(self) -> float:
        """time.monotonic() of the last message received, or of the connection if none came since."""
        return self._heard

    def renew(self, why: str) -> bool:
        """Give the current connection up as dead (`why`, for the log) and reconnect; False if not connected."""
        sock = self._client.socket()
        if not self._ready or sock is None:
            return False
        self.counters.add("renewed")
        self._explained = self._renewed = True  # this is the story of the drop that follows
        self._story.failed(f"silent ({why}): the connection is taken for dead and made again")
        try:
            cast(socket.socket, sock).shutdown(socket.SHUT_RDWR)  # paho's next read sees the end of the stream: a lost connection
        except OSError:  # closed meanwhile: paho is reconnecting already
            return False
        return True

    def socket(self) -> Any:
        """The current socket (for tests and diagnostics), or None."""
        return self._client.socket()

    def more_to_read(self) -> bool:
        """Whether bytes are already waiting on the socket (call from the network thread)."""
        sock = self._client.socket()
        if sock is None:
            return False
        pending = getattr(sock, "pending", None)  # TLS keeps decrypted bytes of its own
        if pending is not None and pending():
            return True
        try:
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return False
