"""Who is asking: login throttling, sessions and their CSRF tokens (the dashboard's web server uses these).

What a caller may rely on:

* `Throttle.take(name)` reserves one password check before it is made, under one lock, for the account
  name AND for the whole server: parallel guesses cannot all slip in before the first failure is counted
  (the old per-request-thread sleep let 25 through in 1.2 s).  Per name: a burst of PER_NAME, then one
  every PER_NAME_EVERY s.  Globally: a burst of GLOBAL, then one every GLOBAL_EVERY s.  A check that
  succeeds gives its reservations back (`succeeded`).  Names never seen cost no memory beyond MAX_NAMES.
* `Sessions` hands out 256-bit random tokens (kept only as their SHA-256) with a CSRF token each.  A
  session ends at logout, after `lifetime` s, or as soon as its account is removed or its password or
  role changes (checked at every request).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sync.dashboard.accounts import Account, Accounts

PER_NAME, PER_NAME_EVERY = 5, 60.0
GLOBAL, GLOBAL_EVERY = 20, 2.0
MAX_NAMES = 10_000
MAX_SESSIONS = 1_000


class Bucket:
    """A token bucket: `size` at once, refilled one per `every` s."""

    __slots__ = ("at", "every", "size", "tokens")

    def __init__(self, size: int, every: float, now: float) -> None:
        self.size, self.every, self.tokens, self.at = size, every, float(size), now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.size, self.tokens + (now - self.at) / self.every)
        self.at = now

    def take(self, now: float) -> float:
        """0.0 and one token taken, or the seconds until one is there (nothing taken)."""
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) * self.every

    def give(self, now: float) -> None:
        self._refill(now)
        self.tokens = min(self.size, self.tokens + 1)

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.size


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *, per_name: tuple[int, float] = (PER_NAME,
                 PER_NAME_EVERY), overall: tuple[int, float] = (GLOBAL, GLOBAL_EVERY)) -> None:
        self.clock = clock
        self._per_name = per_name
        self._lock = threading.Lock()
        self._names: dict[str, Bucket] = {}
        self._global = Bucket(*overall, clock())

    def take(self, name: str) -> float:
        """0.0: check the password now; else refuse, and the seconds to wait before trying again."""
        with self._lock:
            now = self.clock()
            bucket = self._names.get(name)
            if bucket is None:
                self._forget_full(now)
                bucket = self._names[name] = Bucket(*self._per_name, now)
            wait = bucket.take(now)
            if wait:
                return wait
            wait = self._global.take(now)
            if wait:
                bucket.give(now)
            return wait

    def succeeded(self, name: str) -> None:
        with self._lock:
            now = self.clock()
            self._global.give(now)
            self._names.pop(name, None)

    def _forget_full(self, now: float) -> None:
        if len(self._names) >= MAX_NAMES:
            self._names = {n: b for n, b in self._names.items() if not b.full(now)}
            while len(self._names) >= MAX_NAMES:  # all of them mid-attack: drop the oldest
                self._names.pop(next(iter(self._names)))


@dataclass(frozen=True)
class Session:
    account: str
    role: str
    csrf: str
    expires: float
    hash: str  # the account's password hash when it logged in: a new password ends the session

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, accounts: Accounts, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self.accounts = accounts
        self.lifetime = lifetime
        self.clock = clock
        self._lock = threading.Lock()
        self._by_digest: dict[str, Session] = {}

    def open(self, account: Account) -> tuple[str, Session]:
        """A new session for `account`: (the cookie's token, the session)."""
        token = secrets.token_urlsafe(32)
        session = Session(account.name, account.role, secrets.token_urlsafe(32), self.clock() + self.lifetime,
                          account.hash)
        with self._lock:
            self._drop_expired()
            if len(self._by_digest) >= MAX_SESSIONS:
                oldest = min(self._by_digest, key=lambda d: self._by_digest[d].expires)
                del self._by_digest[oldest]
            self._by_digest[_digest(token)] = session
        return token, session

    def find(self, token: str | None) -> Session | None:
        if not token:
            return None
        digest = _digest(token)
        with self._lock:
            session = self._by_digest.get(digest)
        if session is None:
            return None
        account = self.accounts.get(session.account)
        if session.expires <= self.clock() or account is None or account.hash != session.hash \
                or account.role != session.role:
            self.close(token)
            return None
        return session

    def close(self, token: str) -> None:
        with self._lock:
            self._by_digest.pop(_digest(token), None)

    def _drop_expired(self) -> None:
        now = self.clock()
        for digest in [d for d, s in self._by_digest.items() if s.expires <= now]:
            del self._by_digest[digest]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
