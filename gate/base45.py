"""Base45 (RFC 9285): binary data in the QR alphanumeric character set.

Why: a QR code in alphanumeric mode stores 5.5 bits per character against 8
for byte mode, so Base45 text gives a smaller (lower version) code than
base64 of the same bytes.  See docs/ticket-format.md for the measurement.
"""

from __future__ import annotations

from gate.exc import Base45Error

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}


def b45encode(data: bytes) -> str:
    """Encode bytes as Base45 text (every 2 bytes -> 3 chars, a last byte -> 2)."""
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        n, c = divmod(n, 45)
        e, d = divmod(n, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode Base45 text; raise Base45Error for any character or triplet that is not valid."""
    if len(text) % 3 == 1:
        raise Base45Error(f"Base45 text of length {len(text)} is truncated")
    try:
        values = [_VALUE[ch] for ch in text]
    except KeyError as exc:
        raise Base45Error(f"character {exc.args[0]!r} is not in the Base45 alphabet") from None
    out = bytearray()
    for i in range(0, len(values) - 2, 3):
        n = values[i] + values[i + 1] * 45 + values[i + 2] * 2025
        if n > 0xFFFF:
            raise Base45Error(f"Base45 triplet at {i} is out of range")
        out += n.to_bytes(2, "big")
    if len(values) % 3 == 2:
        n = values[-2] + values[-1] * 45
        if n > 0xFF:
            raise Base45Error("final Base45 pair is out of range")
        out.append(n)
    return bytes(out)
