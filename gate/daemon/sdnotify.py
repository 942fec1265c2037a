"""The systemd notification protocol (sd_notify), without libsystemd.

What a caller may rely on:

* `Notifier.from_env()` reads ``NOTIFY_SOCKET`` (a path, or ``@name`` for
  the abstract namespace), ``WATCHDOG_USEC`` and ``WATCHDOG_PID``.  Outside
  systemd (no ``NOTIFY_SOCKET``) every method is a cheap no-op, so the same
  code runs under systemd, in a terminal and in the tests.
* Each message is one datagram of ``KEY=value`` lines (``READY=1``,
  ``WATCHDOG=1``, ``STATUS=...``, ``STOPPING=1``).  A send that fails is
  logged and counted (`failures`), never raised, and never blocks the
  caller: systemd then times the service out, which is the right outcome
  for a service that cannot report.
* `Watchdog.feed()` sends ``WATCHDOG=1`` at most once per half watchdog
  interval (systemd's advice), however often it is called.  Call it only
  from the work that must not hang (the scan loop), so a hung loop stops
  the messages and systemd restarts the service.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to the service manager over ``NOTIFY_SOCKET``."""

    def __init__(self, address: str | None, watchdog_usec: int = 0) -> None:
        self.address = address
        #: the service's WatchdogSec in microseconds (0: no watchdog asked for)
        self.watchdog_usec = watchdog_usec
        self.failures = 0
        self.sent = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, pid: int | None = None) -> Notifier:
        address = env.get("NOTIFY_SOCKET") or None
        usec = 0
        raw = env.get("WATCHDOG_USEC", "")
        if raw.isdigit():
            usec = int(raw)
        elif raw:
            log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", raw)
        watchdog_pid = env.get("WATCHDOG_PID", "")
        if watchdog_pid and watchdog_pid != str(pid if pid is not None else os.getpid()):
            usec = 0  # the watchdog is meant for another process (e.g. our parent)
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds systemd waits for a WATCHDOG=1 before it kills the service (None: no watchdog)."""
        return self.watchdog_usec / 1e6 if self.enabled and self.watchdog_usec > 0 else None

    def notify(self, **fields: str) -> bool:
        """Send one message (``notify(READY="1", STATUS="...")``); True if it was sent."""
        if self.address is None:
            return False
        message = "".join(f"{key}={_one_line(value)}\n" for key, value in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # never block the caller (the scan loop) on a manager that does not read: a full queue is a failure
                sock.sendto(message, socket.MSG_DONTWAIT, target)
        except OSError as exc:
            self.failures += 1
            log.warning("cannot notify the service manager at %s: %s", self.address, exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify(READY="1", **({"STATUS": status} if status else {}))

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def stopping(self, status: str = "") -> bool:
        return self.notify(STOPPING="1", **({"STATUS": status} if status else {}))

    def watchdog(self, status: str = "") -> bool:
        return self.notify(WATCHDOG="1", **({"STATUS": status} if status else {}))


def _one_line(value: str) -> str:
    return " ".join(str(value).split())


class Watchdog:
    """Rate-limited WATCHDOG=1, optionally with a STATUS line (e.g. the scan loop's health)."""

    def __init__(self, notifier: Notifier, *, status: Callable[[], str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.status = status
        self.clock = clock
        interval = notifier.watchdog_interval
        #: seconds between two WATCHDOG=1 (half systemd's limit); None: nothing to feed
        self.every = interval / 2 if interval else None
        self._last: float | None = None
        self._lock = threading.Lock()

    def feed(self) -> bool:
        """Proof of progress: send WATCHDOG=1 if half an interval has passed since the last one."""
        if self.every is None:
            return False
        now = self.clock()
        with self._lock:
            if self._last is not None and now - self._last < self.every:
                return False
            self._last = now
        return self.notifier.watchdog(self.status() if self.status is not None else "")
