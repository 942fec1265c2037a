"""The broker's side of the credentials: mosquitto's password file, its ACL and its config, rendered from
the templates in systemd/mosquitto/ (`gate provision`, docs/operations.md).

What a caller may rely on:

* `hash_password` writes mosquitto 2's own format, ``$7$<iterations>$<salt>$<hash>``: PBKDF2-HMAC-SHA512
  over a 12-byte random salt, both base64, 101 iterations (mosquitto_passwd's default).  It is done
  here rather than with ``mosquitto_passwd -b`` so that no password is ever on a command line (where
  ``ps`` shows it) and the provisioning host needs no broker installed.  The passwords are 256-bit
  random strings, so the iteration count is not what protects them.
* `PasswordFile` keeps every line it did not write, never holds a user twice, and rewrites the file
  only when a line changed.
* `render_acl` gives each user exactly its role's block of systemd/mosquitto/acl.template, in a
  stable order, so re-rendering the same principals gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable
from pathlib import Path

from sync.gateside.discovery import node_id

TEMPLATES = Path(__file__).resolve().parents[2] / "systemd" / "mosquitto"
ITERATIONS = 101
SALT_BYTES = 12


def new_password() -> str:
    return secrets.token_urlsafe(32)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """True if `hashed` (a $7$ entry) is the hash of `password`."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, digest = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2])), digest)


class PasswordFile:
    """mosquitto's ``user:hash`` lines, read once, changed in memory, written back by `text()`."""

    def __init__(self, text: str = "") -> None:
        self.lines = [line for line in text.splitlines() if line.strip()]

    @classmethod
    def read(cls, path: Path) -> PasswordFile:
        return cls(path.read_text() if path.exists() else "")

    def get(self, user: str) -> str | None:
        for line in self.lines:
            name, sep, hashed = line.partition(":")
            if sep and name == user:
                return hashed
        return None

    def set(self, user: str, hashed: str) -> None:
        """Give `user` this hash, in place of its line (and of any duplicate of it), else at the end."""
        entry, out, done = f"{user}:{hashed}", [], False
        for line in self.lines:
            if line.partition(":")[0] != user:
                out.append(line)
            elif not done:
                out.append(entry)
                done = True
        self.lines = out if done else [*out, entry]

    def remove(self, user: str) -> bool:
        """Drop every line of `user`; False if it had none."""
        kept = [line for line in self.lines if line.partition(":")[0] != user]
        removed, self.lines = len(kept) != len(self.lines), kept
        return removed

    def users(self) -> list[str]:
        return [line.partition(":")[0] for line in self.lines]

    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


def _blocks() -> tuple[str, dict[str, str]]:
    """The ACL template's header and its block per role."""
    text = read_template("acl.template")
    head, *rest = text.split("\n# role ")
    blocks = {}
    for chunk in rest:
        role = chunk.split(":", 1)[0].strip()
        blocks[role] = "# role " + chunk.strip() + "\n"
    return head.rstrip() + "\n", blocks


def roles() -> list[str]:
    return list(_blocks()[1])


def render_acl(principals: Iterable[tuple[str, str]], prefix: str) -> str:
    """The ACL file for (role, user) pairs, each user given its role's block."""
    head, blocks = _blocks()
    parts = [head]
    for role, user in principals:
        parts.append("\n" + string.Template(blocks[role]).substitute(user=user, prefix=prefix, node=node_id(user)))
    return "".join(parts)


def render_broker_conf(folder: str, listener: str) -> str:
    """The mosquitto config snippet, its files in `folder`, listening as `listener` ("8883" or "8883 10.0.0.2")."""
    return string.Template(read_template("qrgate.conf.template")).substitute(dir=folder, listener=listener)


def read_template(name: str) -> str:
    path = TEMPLATES / name
    try:
        return path.read_text()
    except OSError as exc:
        raise FileNotFoundError(f"{path}: cannot read the template ({exc.strerror}); `gate provision` runs "
                                "from a qrgate checkout (pip install -e .)") from None
