"""Back-step chains: one-way hash chains whose values are revealed from the anchor backwards.

The owner draws a 16-byte secret seed ``x_0`` and a public 16-byte salt, and
hashes forward N times (1 <= N <= 65535)::

    x_p = step(p, x_{p-1})  for p = 1..N
    step(p, x) = SHA-256(b"QGSTEP1\\0" || salt || u16be(p) || x)[:16]

The anchor ``A = x_N`` is published; the k-th back-step value is
``v_k = x_{N-k}`` (so ``v_0 = A``).  Knowing ``v_j`` anyone checks ``v_k``
(k > j) by hashing it forward ``k - j`` steps until it meets ``v_j``; only the
seed's owner can produce a value not yet revealed, and a revealed ``v_k``
gives away only ``v_j`` for j < k (values already used).

Why 16 bytes of SHA-256 is enough: a forger needs a *preimage* of a given
value (2^128 work), not a collision (2^64), and the salt (one per chain) and
the position p (one per step) in every hash make each step its own function,
so a pre-computed table or an attack on many chains at once gains nothing.
The input (8 + 16 + 2 + 16 = 42 bytes) fits one SHA-256 compression.

What a caller may rely on: `reaches` never raises for well-typed input and
compares in constant time.  The owner's side (`Ladder`: any v_k from checkpoints) is
gate.ownership.ladder; a gate needs only `reaches`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

TAG = b"QGSTEP1\x00"
SIZE = 16
MAX_N = 65535
CODE_SALT_TAG = b"qrgate/code-salt/v1\x00"


@functools.cache
def _positions() -> tuple[bytes, ...]:
    # Precomputed u16 position bytes: the loop below then does one concat and one hash per step.
    return tuple(p.to_bytes(2, "big") for p in range(MAX_N + 1))


def forward(x: bytes, salt: bytes, start: int, steps: int) -> bytes:
    """Apply steps start+1 .. start+steps to `x` (the value at position `start`)."""
    if steps < 0 or start < 0 or start + steps > MAX_N:
        raise ValueError(f"positions {start}+{steps} are outside 0..{MAX_N}")
    prefix = TAG + salt
    sha256 = hashlib.sha256
    for pos in _positions()[start + 1 : start + steps + 1]:
        x = sha256(prefix + pos + x).digest()[:SIZE]
    return x


def anchor_of(seed: bytes, salt: bytes, n: int) -> bytes:
    """The anchor A = x_N of the chain of `seed`."""
    return forward(seed, salt, 0, n)


def reaches(value: bytes, k: int, known: bytes, j: int, salt: bytes, n: int) -> bool:
    """True when `value` is v_k of the chain whose v_j is `known` (0 <= j < k <= n).

    False (never an exception) for any index out of range or value of the wrong size.
    """
    if not (0 <= j < k <= n <= MAX_N) or len(value) != SIZE or len(known) != SIZE or len(salt) != SIZE:
        return False
    return hmac.compare_digest(forward(value, salt, n - k, k - j), known)


def code_salt(event: str, ticket_id: str) -> bytes:
    """The salt of a ticket's rotating-code chain: derived from what the signed ticket holds."""
    digest = hashlib.sha256(CODE_SALT_TAG + event.encode() + b"\x00" + ticket_id.encode()).digest()
    return digest[:SIZE]


def new_seed() -> bytes:
    return secrets.token_bytes(SIZE)
