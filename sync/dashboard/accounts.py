"""The dashboard's named accounts: a text file of ``name:role:hash`` lines (``dashboard.accounts_file``).

What a caller may rely on:

* Roles are ``viewer`` (every page and read endpoint, the live stream) and ``admin`` (also revoke and
  override).  Names are 1-64 letters, digits, ``.``, ``_``, ``-`` (they appear in the audit).
* A hash is ``scrypt$N$r$p$salt$key`` (base64): hashlib.scrypt from the standard library (OpenSSL's),
  N=2^14, r=8, p=1 (16 MiB, ~0.1 s here), a 16-byte random salt per password, a 32-byte key, compared
  in constant time.  scrypt rather than argon2-cffi: it is memory-hard too, needs no new dependency on a
  Raspberry Pi image, and argon2-cffi is not installable here (no wheel in the package mirror).
* `check` spends the same scrypt work for an unknown name as for a known one, so a reply's timing does
  not say which names exist.
* `Accounts` re-reads the file when it changes (size, mtime, inode): an account removed with
  `gate dashboard user remove` loses its sessions at its next request, with no restart.
* `add`/`remove` rewrite the file atomically, never through a symlink, keeping its owner, group and
  mode (at most 0640: the service's group may read it; new files 0600) (gate/files.py).  They are
  its only writers (the `gate dashboard user` command and provisioning call them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from gate.files import write_file
from sync.exc import SyncError

ROLES = ("viewer", "admin")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
N, R, P, KEY_BYTES, SALT_BYTES = 2 ** 14, 8, 1, 32, 16
MIN_PASSWORD = 10


class AccountError(SyncError, ValueError):
    """A bad accounts file, name, role or password (the message names which)."""


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    hash: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def line(self) -> str:
        return f"{self.name}:{self.role}:{self.hash}\n"


def hash_password(password: str, *, salt: bytes | None = None, n: int = N) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=R, p=P, dklen=KEY_BYTES, maxmem=256 * R * n)
    return f"scrypt${n}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, hashed: str) -> bool:
    """True if `hashed` is the scrypt hash of `password`; False for any malformed hash."""
    parts = hashed.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        return False
    n, r, p = (int(x) for x in parts[1:4])
    if not (2 <= n <= 2 ** 20 and r <= 32 and p <= 4):
        return False
    try:
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
        given = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(key), maxmem=256 * r * n)
    except ValueError:
        return False
    return hmac.compare_digest(given, key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


#: what an unknown name is checked against, so that it costs the same as a known one
_DUMMY = hash_password(secrets.token_urlsafe(16))


class Accounts:
    """The accounts file; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._accounts: dict[str, Account] = {}

    # -- reading -------------------------------------------------------------------------------------
    def all(self) -> dict[str, Account]:
        with self._lock:
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._accounts, self._stamp = self._parse(), stamp
            return dict(self._accounts)

    def get(self, name: str) -> Account | None:
        return self.all().get(name)

    def check(self, name: str, password: str) -> Account | None:
        """The account if `password` is its password; None otherwise (same work either way)."""
        account = self.get(name)
        ok = verify_password(password, account.hash if account else _DUMMY)
        return account if ok and account is not None else None

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AccountError(f"{self.path}: cannot read the accounts file: {exc.strerror or exc}") from None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _parse(self) -> dict[str, Account]:
        try:
            text = self.path.read_text() if self.path.exists() else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise AccountError(f"{self.path}: cannot read the accounts file: {exc}") from None
        out: dict[str, Account] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            name, _, rest = line.partition(":")
            role, _, hashed = rest.partition(":")
            if not NAME.fullmatch(name) or role not in ROLES or not hashed.startswith("scrypt$"):
                raise AccountError(f"{self.path}, line {number}: expected NAME:ROLE:scrypt$... with ROLE one of "
                                   f"{', '.join(ROLES)} (edit it with `gate dashboard user`)")
            out[name] = Account(name, role, hashed)
        return out

    # -- writing ---------------------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str) -> bool:
        """Create or replace `name`; True if it existed (its password and role are replaced)."""
        if not NAME.fullmatch(name):
            raise AccountError(f"account name {name!r}: 1-64 letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
        accounts = self.all()
        existed = name in accounts
        accounts[name] = Account(name, role, hash_password(password))
        self._write(accounts)
        return existed

    def remove(self, name: str) -> bool:
        """Remove `name`; False if there was no such account."""
        accounts = self.all()
        if accounts.pop(name, None) is None:
            return False
        self._write(accounts)
        return True

    def _write(self, accounts: dict[str, Account]) -> None:
        text = "# qrgate dashboard accounts: NAME:ROLE:HASH; edit with `gate dashboard user`\n"
        text += "".join(a.line() for a in sorted(accounts.values(), key=lambda a: a.name))
        try:
            mode = (self.path.stat().st_mode & 0o640) | 0o600 if self.path.exists() else 0o600
            write_file(self.path, text.encode(), mode)
        except OSError as exc:
            raise AccountError(f"{self.path}: cannot write the accounts file: {exc.strerror or exc}") from None
