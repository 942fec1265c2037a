"""Blocks, identities and messages: the wire format between box office, wallets and agents.

A block is a JSON object (format version 1)::

    {"v": 1, "chain": <32 hex>, "index": k, "value": <32 hex v_k>, "prev": <64 hex or "">,
     "txn": <32 hex or "">, "app": "qrgate.ticket", "kind": "purchase_request",
     "to": <32 hex or "">, "at": <unix seconds>, "nonce": <24 hex or "">, "body": <base64>}

* ``value`` is the chain's back-step value v_k (gate.backstep); block 0
  is the identity block and carries the anchor.
* ``prev`` is the hash of the previous block of the same chain: the owner can
  check its whole chain; a receiver who sees only some blocks cannot.
* ``body`` is the payload sealed with ChaCha20-Poly1305 under the application
  key of sender and recipient (gate.ownership.seal), with the canonical header
  (every field but ``body``, JSON with sorted keys) as associated data.  The
  identity block's body is its identity in clear (it is public).
* The block hash is ``SHA-256("qrgate/block/v1\\0" || header || body)``.

An identity is ``{"name", "role", "anchor", "salt", "n", "dh"}`` (a box office adds
``"sign"``: the Ed25519 key its catalog is signed with) and its chain
id is the first 16 bytes of ``SHA-256("qrgate/identity/v1\\0" || canonical
JSON)``: the id commits to the anchor and the key-agreement key, so an
identity cannot be altered without changing its id.

A message is ``{"format": "qrgate-blocks/1", "blocks": [...]}``: the blocks of
one transaction that the sender shares, plus the identity blocks a receiver
may need.  Decoding raises MalformedBlock for anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from gate.backstep import MAX_N, SIZE
from gate.ownership.exc import ForgedIdentity, MalformedBlock

VERSION = 1
MESSAGE_FORMAT = "qrgate-blocks/1"
ROLES = ("wallet", "boxoffice", "agent")
MAX_BODY = 16384
MAX_BLOCKS = 64
IDENTITY_APP, IDENTITY_KIND = "qrgate.identity", "identity"

Json = dict[str, Any]


def canonical(obj: Json) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _hex(d: Json, key: str, size: int, *, empty: bool = False) -> str:
    value = d.get(key)
    if isinstance(value, str) and (value == "" and empty):
        return value
    try:
        ok = isinstance(value, str) and len(bytes.fromhex(value)) == size and value == value.lower()
    except ValueError:
        ok = False
    if not ok:
        raise MalformedBlock(f"{key!r} must be {size * 2} lowercase hex digits, not {value!r}")
    return str(value)


def _int(d: Json, key: str, lo: int, hi: int) -> int:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise MalformedBlock(f"{key!r} must be an integer in {lo}..{hi}, not {value!r}")
    return value


def _text(d: Json, key: str, *, empty: bool = False, limit: int = 64) -> str:
    value = d.get(key)
    if not isinstance(value, str) or len(value) > limit or (not value and not empty):
        raise MalformedBlock(f"{key!r} must be a string of at most {limit} characters, not {value!r}")
    return value


@dataclass(frozen=True)
class Identity:
    """The public face of a chain (payload of block 0)."""

    name: str
    role: str
    anchor: bytes
    salt: bytes
    n: int
    dh: bytes  # X25519 public key
    sign: bytes = b""  # Ed25519 public key of a box office's signed catalog (absent in older identities)

    @property
    def chain(self) -> str:
        return hashlib.sha256(b"qrgate/identity/v1\x00" + canonical(self.to_json())).digest()[:SIZE].hex()

    def to_json(self) -> Json:
        d: Json = {"name": self.name, "role": self.role, "anchor": self.anchor.hex(), "salt": self.salt.hex(),
                   "n": self.n, "dh": self.dh.hex()}
        return {**d, "sign": self.sign.hex()} if self.sign else d

    @classmethod
    def from_json(cls, d: object) -> Identity:
        if not isinstance(d, dict):
            raise ForgedIdentity("an identity must be a JSON object")
        try:
            role = _text(d, "role")
            if role not in ROLES:
                raise MalformedBlock(f"unknown role {role!r}")
            return cls(_text(d, "name"), role, bytes.fromhex(_hex(d, "anchor", SIZE)),
                       bytes.fromhex(_hex(d, "salt", SIZE)), _int(d, "n", 1, MAX_N), bytes.fromhex(_hex(d, "dh", 32)),
                       bytes.fromhex(_hex(d, "sign", 32)) if "sign" in d else b"")
        except MalformedBlock as exc:
            raise ForgedIdentity(f"identity is not well-formed: {exc}") from None


@dataclass(frozen=True)
class Block:
    """One block of one party's chain; `body` is sealed (or, for block 0, the identity in clear)."""

    chain: str
    index: int
    value: str
    prev: str
    txn: str
    app: str
    kind: str
    to: str
    at: int
    nonce: str
    body: bytes

    def header(self) -> bytes:
        """The canonical header: what the seal authenticates and the hash covers besides the body."""
        d = self.to_json()
        del d["body"]
        return canonical(d)

    @property
    def hash(self) -> str:
        return hashlib.sha256(b"qrgate/block/v1\x00" + self.header() + self.body).hexdigest()

    @property
    def value_bytes(self) -> bytes:
        return bytes.fromhex(self.value)

    def to_json(self) -> Json:
        d = asdict(self)
        d["body"] = base64.b64encode(self.body).decode()
        return {"v": VERSION, **d}

    @classmethod
    def from_json(cls, d: object) -> Block:
        if not isinstance(d, dict) or d.get("v") != VERSION:
            raise MalformedBlock("a block must be a JSON object with \"v\": 1")
        try:
            body = base64.b64decode(_text(d, "body", empty=True, limit=MAX_BODY * 2), validate=True)
        except (binascii.Error, ValueError):
            raise MalformedBlock("'body' is not base64") from None
        index = _int(d, "index", 0, MAX_N)
        first = index == 0
        block = cls(chain=_hex(d, "chain", SIZE), index=index, value=_hex(d, "value", SIZE),
                    prev=_hex(d, "prev", 32, empty=first), txn=_hex(d, "txn", SIZE, empty=first),
                    app=_text(d, "app"), kind=_text(d, "kind"), to=_hex(d, "to", SIZE, empty=first),
                    at=_int(d, "at", 0, 2**40), nonce=_hex(d, "nonce", 12, empty=first), body=body)
        if set(d) != {"v", *block.__dataclass_fields__}:
            raise MalformedBlock(f"unexpected block fields {sorted(set(d) - {'v', *block.__dataclass_fields__})}")
        return block

    # identity blocks ----------------------------------------------------------------
    @classmethod
    def of_identity(cls, identity: Identity, at: int) -> Block:
        return cls(chain=identity.chain, index=0, value=identity.anchor.hex(), prev="", txn="", app=IDENTITY_APP,
                   kind=IDENTITY_KIND, to="", at=at, nonce="", body=canonical(identity.to_json()))

    @property
    def is_identity(self) -> bool:
        return self.index == 0 and self.kind == IDENTITY_KIND

    def identity(self) -> Identity:
        """The identity this block 0 publishes; ForgedIdentity unless it is self-consistent."""
        if not self.is_identity:
            raise MalformedBlock(f"block {self.index} of kind {self.kind!r} is not an identity block")
        try:
            identity = Identity.from_json(json.loads(self.body))
        except ValueError as exc:
            raise ForgedIdentity(f"identity body is not JSON: {exc}") from None
        if identity.chain != self.chain or identity.anchor.hex() != self.value:
            raise ForgedIdentity(f"identity block claims chain {self.chain} but its content is chain {identity.chain}")
        return identity


@dataclass(frozen=True)
class Message:
    """The blocks one party hands another (a file, an HTTP body)."""

    blocks: tuple[Block, ...]

    def to_json(self) -> Json:
        return {"format": MESSAGE_FORMAT, "blocks": [b.to_json() for b in self.blocks]}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def loads(cls, text: str | bytes) -> Message:
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedBlock(f"not a JSON message: {exc}") from None
        if not isinstance(d, dict) or d.get("format") != MESSAGE_FORMAT or not isinstance(d.get("blocks"), list):
            raise MalformedBlock(f"not a {MESSAGE_FORMAT} message")
        if len(d["blocks"]) > MAX_BLOCKS:
            raise MalformedBlock(f"more than {MAX_BLOCKS} blocks in one message")
        return cls(tuple(Block.from_json(b) for b in d["blocks"]))

    def __add__(self, other: Message) -> Message:
        seen = {b.hash for b in self.blocks}
        return Message(self.blocks + tuple(b for b in other.blocks if b.hash not in seen))

    def identities(self) -> list[Block]:
        return [b for b in self.blocks if b.is_identity]

    def to(self, chain: str, kind: str | None = None) -> list[Block]:
        """Blocks addressed to `chain` (of `kind`), in index order per sender."""
        found = [b for b in self.blocks if b.to == chain and (kind is None or b.kind == kind)]
        return sorted(found, key=lambda b: (b.chain, b.index))
