"""Payload encryption per application: X25519 between two identities, HKDF per application, ChaCha20-Poly1305.

The key that seals a payload of application ``app`` between chains a and b is::

    HKDF-SHA256(ikm = X25519(own private, other's public),
                salt = b"qrgate/app-key/v1", info = app || 0 || min(a, b) || 0 || max(a, b), L = 32)

so each pair of parties has one key per application, and a third party (the
box office, for the price in a resale between two wallets) holds none of
them.  The nonce is 12 random bytes; the block header is the associated
data, so a sealed body cannot be moved under another header.
"""

from __future__ import annotations

import json
import secrets

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gate.ownership.exc import BadSeal

SALT = b"qrgate/app-key/v1"
NONCE_SIZE = 12


def new_dh_private() -> bytes:
    return X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def dh_public(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def app_key(private: bytes, public: bytes, app: str, chain_a: str, chain_b: str) -> bytes:
    """The key of application `app` between the owner of `private` and the owner of `public`."""
    shared = X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(public))
    low, high = sorted((chain_a, chain_b))
    info = f"{app}\x00{low}\x00{high}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=info).derive(shared)


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_SIZE)


def seal(key: bytes, nonce: bytes, header: bytes, payload: dict[str, object]) -> bytes:
    return ChaCha20Poly1305(key).encrypt(nonce, json.dumps(payload, sort_keys=True).encode(), header)


def unseal(key: bytes, nonce: bytes, header: bytes, body: bytes) -> dict[str, object]:
    """The payload; BadSeal if it was not sealed with this key under this header (or is not a JSON object)."""
    try:
        clear = ChaCha20Poly1305(key).decrypt(nonce, body, header)
    except InvalidTag:
        raise BadSeal("the payload does not open with this application's key") from None
    try:
        payload = json.loads(clear)
    except ValueError:
        raise BadSeal("the payload is not JSON") from None
    if not isinstance(payload, dict):
        raise BadSeal("the payload is not a JSON object")
    return payload


def _signing_key(dh_private: bytes) -> Ed25519PrivateKey:
    """A box office's Ed25519 catalog key, derived from its X25519 secret (nothing more to store or lose)."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"qrgate/catalog-key/v1", info=b"").derive(dh_private)
    return Ed25519PrivateKey.from_private_bytes(seed)


def sign_public(dh_private: bytes) -> bytes:
    return _signing_key(dh_private).public_key().public_bytes(serialization.Encoding.Raw,
                                                              serialization.PublicFormat.Raw)


def sign(dh_private: bytes, data: bytes) -> bytes:
    return _signing_key(dh_private).sign(data)


def signed_by(public: bytes, data: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
