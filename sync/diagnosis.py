"""What a failed or lost MQTT connection means, in one line an operator can act on.

What a caller may rely on: every function returns one short sentence that names the cause (the name
not resolved, the connection refused, the TLS handshake failed and why, not authorised, the client id
taken) and, where there is one, the setting to look at.  Pure: no paho, no sockets opened; the link
(sync/link.py) calls it from its callbacks and logs the answer once per change.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable

#: what OpenSSL says (its reason names, lower-cased) -> what it means here
_TLS_CAUSES = (
    ("wrong_version_number", "the port does not speak TLS (a plain MQTT port? then use mqtt://)"),
    ("http_request", "the port does not speak TLS (a plain MQTT port? then use mqtt://)"),
    ("certificate_required", "the broker requires a client certificate (sync.cert_file and sync.key_file)"),
    ("handshake_failure", "the broker ended the handshake: no client certificate, or one it does not accept "
                          "(sync.cert_file and sync.key_file)"),
    ("unknown_ca", "the broker does not accept this client's certificate (not signed by the venue's CA?)"),
    ("bad_certificate", "the broker does not accept this client's certificate (sync.cert_file)"),
    ("certificate_expired", "a certificate has expired (the broker's or this client's)"),
    ("unsupported_protocol", "no TLS version both sides accept"),
)


def tls_cause(text: str) -> str:
    """The meaning of an OpenSSL error text (from an exception or paho's log)."""
    flat = text.lower().replace(" ", "_")
    for marker, cause in _TLS_CAUSES:
        if marker in flat:
            return f"TLS handshake failed: {cause}"
    return f"TLS failed: {text}"


def connect_failed(exc: BaseException | None, host: str, *, tls: bool) -> str:
    """Why opening the connection to the broker on `host` failed (`exc`: what the socket or TLS layer raised);
    the caller's line names the broker's URL already."""
    if tls and isinstance(exc, ConnectionResetError | ssl.SSLEOFError):
        return "it hung up on the TLS handshake: a plain MQTT port? then use mqtt://"
    if isinstance(exc, socket.gaierror):
        return f"the broker's name {host!r} does not resolve ({exc.strerror}): check sync.broker and the DNS"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: no broker listens there (is mosquitto running? the port?)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS handshake failed: the broker's certificate is not trusted ({exc.verify_message}): "
                "check sync.ca_file, and that sync.broker names the host its certificate was made for")
    if isinstance(exc, ssl.SSLError):
        return tls_cause(str(exc))
    if isinstance(exc, TimeoutError):
        return "no answer (timed out): the wrong address, or a firewall"
    if isinstance(exc, OSError):
        return f"cannot reach it: {exc.strerror or exc}"
    return f"cannot connect: {exc}"


def refused(reason: str, username: str) -> str:
    """Why the broker answered CONNECT with a failure (`reason`: paho's reason code as text)."""
    if reason.lower() in ("not authorized", "bad user name or password"):
        if not username:
            return "the broker refused an anonymous client: set sync.username and sync.password_file"
        return (f"the broker refused user {username!r} ({reason}): a wrong password or an unknown user "
                "(sync.username, sync.password_file)")
    if reason.lower() == "client identifier not valid":
        return "the broker refused this client id (gate.id)"
    return f"the broker refused the connection: {reason}"


def dropped(reason: str, client_id: str, *, answered: bool, error: str, tls: bool) -> str:
    """Why a connection ended: `answered` once the broker had accepted it (CONNACK); `error` is the last
    socket error paho logged on it ("" for none)."""
    if reason.lower() == "session taken over":
        return (f"another client connected with this client id {client_id!r} and the broker dropped this one: "
                "two processes with the same gate.id?")
    if tls and ("ssl" in error.lower() or "tls" in error.lower()):
        return tls_cause(error)
    detail = f" ({error})" if error else ""
    if not answered and not tls:
        return f"the broker closed the connection before answering it{detail}: a TLS port? then use mqtts://"
    if not answered:
        return f"the broker closed the connection before answering it{detail}"
    return f"lost the connection ({error or reason})"


#: seconds before the same cause is logged again (a broker that stays down is not a line a second)
REPEAT_EVERY = 60.0


class ConnectionLog:
    """One link's connection story at the default log level: each new cause once (again after
    `REPEAT_EVERY` s), and the recovery after a cause was told.  `problem` is the current cause ("" while
    connected), for a caller's own message ("no answer from the arbiter: ...")."""

    def __init__(self, broker: str, log: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self.broker, self._log, self._clock = broker, log, clock
        self.problem = ""
        self._said, self._said_at = "", 0.0
        self._down_since: float | None = None
        self._told = False  # a cause was logged since the last recovery

    def failed(self, cause: str) -> None:
        now = self._clock()
        self.problem = cause
        if self._down_since is None:
            self._down_since = now
        if cause != self._said or now - self._said_at >= REPEAT_EVERY:
            self._log.warning("broker %s: %s; retrying", self.broker, cause)
            self._said, self._said_at, self._told = cause, now, True

    def connected(self) -> None:
        if self._told and self._down_since is not None:
            self._log.warning("broker %s: connected again after %.0f s", self.broker,
                              self._clock() - self._down_since)
        self.problem, self._down_since, self._told = "", None, False
