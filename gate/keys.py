"""Issuer keys, gate keyrings, signing and verifying.

Two schemes:

* HMAC-SHA256, tag truncated to 128 bits.  The issuer holds a master secret
  per key id; the key that signs and verifies tickets of one event is
  ``HKDF-SHA256(master, salt=b"qrgate/v1/event-key", info=event)``, so a gate
  (which holds only derived keys) that is stolen exposes only the events it
  serves (`gate provision` gives a gate the keys of its events alone).
* Ed25519 (the default): gates hold only public keys, so a stolen gate can
  mint nothing.  Choose HMAC only knowing what it is: shorter codes, but a
  gate holding an event's key can mint tickets for that event.

Key files are JSON, written 0600 in a 0700 folder.  An issuer key file holds
the secret; an exported keyring holds only what a gate needs to verify.
"""

from __future__ import annotations

import functools
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gate.exc import KeyFileError, NoIssuerKey
from gate.files import write_file
from gate.ticket import (
    SCHEME_ED25519,
    SCHEME_HMAC,
    SCHEME_IDS,
    SCHEME_NAMES,
    SignedTicket,
    Ticket,
    encode_text,
    signing_input,
)

HKDF_SALT = b"qrgate/v1/event-key"
KEYRING_FORMAT = "qrgate-keyring/1"
ISSUER_FORMAT = "qrgate-issuer-key/1"


def derive_event_key(master: bytes, event: str) -> bytes:
    """The per-event HMAC key: HKDF-SHA256(master, salt, info=event), 32 bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=event.encode()).derive(master)


def hmac_tag(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, sha256).digest()[:16]


@functools.lru_cache(maxsize=64)
def _ed25519_public(raw: bytes) -> Ed25519PublicKey:
    # Parsing the point costs about as much as a verify: do it once per key.
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class IssuerKey:
    """Key material that can mint tickets for one event."""

    kid: str
    scheme: str  # "hmac" | "ed25519"
    event: str
    secret: bytes  # HMAC master secret, or Ed25519 private key (raw 32 bytes)
    created: float
    retired: bool = False
    #: tickets under this key are admitted only with their holder code (gate/holder.py): a plain `QG:`
    #: copy of a ticket sold to a holder's wallet is refused, so the rotating code cannot be skipped
    holder_only: bool = False

    @classmethod
    def new(cls, event: str, scheme: str = "ed25519", *, holder_only: bool = False) -> IssuerKey:
        """A fresh key; Ed25519 by default, so the gates verifying it hold no key that can mint."""
        if scheme not in SCHEME_IDS:
            raise ValueError(f"unknown scheme {scheme!r}: expected hmac or ed25519")
        return cls(secrets.token_hex(4), scheme, event, secrets.token_bytes(32), time.time(),
                   holder_only=holder_only)

    def verify_key(self) -> VerifyKey:
        """What a gate needs: the derived event key, or the public key."""
        if self.scheme == "hmac":
            material = derive_event_key(self.secret, self.event)
        else:
            material = Ed25519PrivateKey.from_private_bytes(self.secret).public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        return VerifyKey(self.kid, self.scheme, self.event, material, self.retired, self.holder_only)

    def sign(self, ticket: Ticket) -> str:
        """Mint: the QR text of `ticket` signed with this key (kid and scheme are set here)."""
        ticket = ticket.replace(kid=self.kid, scheme=SCHEME_IDS[self.scheme])
        body = ticket.body()
        message = signing_input(body)
        if self.scheme == "hmac":
            tag = hmac_tag(derive_event_key(self.secret, self.event), message)
        else:
            tag = Ed25519PrivateKey.from_private_bytes(self.secret).sign(message)
        return encode_text(body, tag)

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["secret"] = self.secret.hex()
        return {"format": ISSUER_FORMAT, **d}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> IssuerKey:
        return cls(
            kid=str(d["kid"]), scheme=str(d["scheme"]), event=str(d["event"]),
            secret=bytes.fromhex(str(d["secret"])), created=float(d["created"]),  # type: ignore[arg-type]
            retired=bool(d.get("retired", False)), holder_only=bool(d.get("holder_only", False)),
        )


@dataclass(frozen=True)
class VerifyKey:
    """What a gate holds for one key id: enough to verify, never to mint (Ed25519)."""

    kid: str
    scheme: str
    event: str
    material: bytes  # derived HMAC key or Ed25519 public key
    retired: bool = False
    holder_only: bool = False  # see IssuerKey.holder_only

    def verify(self, signed: SignedTicket) -> bool:
        """True when the tag is right; the HMAC compare is constant-time."""
        if SCHEME_NAMES.get(signed.ticket.scheme) != self.scheme:
            return False
        if signed.ticket.scheme == SCHEME_HMAC:
            return hmac.compare_digest(hmac_tag(self.material, signed.signed), signed.tag)
        if signed.ticket.scheme == SCHEME_ED25519:
            try:
                _ed25519_public(self.material).verify(signed.tag, signed.signed)
            except InvalidSignature:
                return False
            return True
        return False

    def to_json(self) -> dict[str, object]:
        d: dict[str, object] = {"kid": self.kid, "scheme": self.scheme, "event": self.event,
                                "key": self.material.hex(), "retired": self.retired}
        if self.holder_only:  # only when set: keyrings without it stay as they were
            d["holder_only"] = True
        return d

    @classmethod
    def from_json(cls, d: dict[str, object]) -> VerifyKey:
        return cls(str(d["kid"]), str(d["scheme"]), str(d["event"]),
                   bytes.fromhex(str(d["key"])), bool(d.get("retired", False)), bool(d.get("holder_only", False)))


class Keyring:
    """Verification keys by key id (several may be valid at once)."""

    def __init__(self, keys: Iterable[VerifyKey] = ()) -> None:
        self._keys: dict[str, VerifyKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: VerifyKey) -> None:
        self._keys[key.kid] = key

    def get(self, kid: str) -> VerifyKey | None:
        return self._keys.get(kid)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)


class KeyStore:
    """The key files under one folder (``<home>/keys``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    # issuer keys ---------------------------------------------------------
    def issuer_keys(self) -> list[IssuerKey]:
        return [IssuerKey.from_json(d) for d in self._read_all("issuer-*.json")]

    def add_issuer_key(self, key: IssuerKey) -> Path:
        return self._write(f"issuer-{key.kid}.json", key.to_json())

    def signing_key(self, event: str, kid: str | None = None) -> IssuerKey:
        """The newest active issuer key for `event` (or the one named `kid`)."""
        keys = [k for k in self.issuer_keys() if k.event == event and not k.retired]
        if kid is not None:
            keys = [k for k in keys if k.kid == kid]
        if not keys:
            which = f"key {kid} " if kid else ""
            raise NoIssuerKey(f"no active issuer {which}for event {event!r}: run `gate keys new --event {event}`")
        return max(keys, key=lambda k: k.created)

    def retire(self, kid: str) -> bool:
        """Mark key id `kid` retired in every file that holds it; False if unknown."""
        found = False
        for key in self.issuer_keys():
            if key.kid == kid:
                self.add_issuer_key(replace(key, retired=True))
                found = True
        for path in sorted(self.folder.glob("*.keyring.json")):
            ring = self._read(path)
            keys = list(ring.get("keys", []))  # type: ignore[call-overload]
            if any(k.get("kid") == kid for k in keys):
                for k in keys:
                    if k.get("kid") == kid:
                        k["retired"] = True
                self._write(path.name, {**ring, "keys": keys})
                found = True
        return found

    # keyrings --------------------------------------------------------------
    def keyring(self) -> Keyring:
        """Every verification key here: imported keyrings plus those of local issuer keys."""
        ring = Keyring()
        for d in self._read_all("*.keyring.json"):
            for k in d.get("keys", []):  # type: ignore[attr-defined]
                ring.add(VerifyKey.from_json(k))
        for issuer in self.issuer_keys():
            ring.add(issuer.verify_key())
        return ring

    def export(self, event: str, out: Path) -> list[VerifyKey]:
        keys = [k.verify_key() for k in self.issuer_keys() if k.event == event]
        if not keys:
            raise NoIssuerKey(f"no issuer key for event {event!r}: run `gate keys new --event {event}`")
        write_keyring(out, keys)
        return keys

    def import_keyring(self, path: Path) -> list[VerifyKey]:
        d = self._read(Path(path))
        if d.get("format") != KEYRING_FORMAT:
            raise KeyFileError(f"{path}: not a qrgate keyring (format {d.get('format')!r})")
        keys = [VerifyKey.from_json(k) for k in d["keys"]]  # type: ignore[attr-defined]
        self._write(f"{Path(path).name.removesuffix('.json').removesuffix('.keyring')}.keyring.json", d)
        return keys

    # files ----------------------------------------------------------------
    def _read_all(self, pattern: str) -> list[dict[str, object]]:
        if not self.folder.is_dir():
            return []
        return [self._read(p) for p in sorted(self.folder.glob(pattern))]

    def _read(self, path: Path) -> dict[str, object]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"{path}: cannot read key file: {exc}") from None
        if not isinstance(data, dict):
            raise KeyFileError(f"{path}: key file is not a JSON object")
        return data

    def _write(self, name: str, data: dict[str, object]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return write_secret_json(self.folder / name, data)


def write_keyring(path: Path, keys: Iterable[VerifyKey]) -> Path:
    return write_secret_json(Path(path), {"format": KEYRING_FORMAT, "keys": [k.to_json() for k in keys]})


def write_secret_json(path: Path, data: dict[str, object]) -> Path:
    """Write JSON atomically with mode 0600 (created with it, never widened), refusing a symbolic link at the
    path or at its temporary name (gate/files.py): a planted link cannot redirect a key file."""
    try:
        write_file(path, (json.dumps(data, indent=2)).encode(), 0o600)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot write key file: {exc.strerror or exc}") from None
    return path
