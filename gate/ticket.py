"""Ticket format v1: what a ticket is, and how it is written into QR text.

A ticket is a signed promise: the issuer's signature over the fields proves it
with no database lookup.  The QR text is::

    "QG:" + Base45(body + tag)

The body (integers big-endian; "uvarint" is unsigned LEB128, canonical, at
most 6 bytes, value < 2**40)::

    offset  size  field
    0       1     version            0x01
    1       1     flags              bits 0-1 scheme: 1 HMAC-SHA256 (tag 16
                                     bytes, 128 bits), 2 Ed25519 (tag 64 bytes)
                                     bit 2 valid-from present, bit 3 valid-until
                                     present, bit 4 generation present, bit 5
                                     extensions present; bits 6-7 must be 0
    2       4     key id             issuer key id (so keys can rotate)
    6       1+n   event              u8 length, UTF-8, 1..64 bytes
            1+n   ticket id          u8 length, UTF-8, 1..64 bytes
            1+n   seat               u8 length, UTF-8, 0..64 bytes
            var   valid from         if flagged: uvarint unix seconds (> 0)
            var   valid until        if flagged: uvarint unix seconds (> 0)
            var   generation         if flagged: uvarint ownership generation (> 0)
            1+..  extensions         if flagged: count u8 (> 0), then per
                                     extension: type u8, length u8, value; a type
                                     with the high bit (0x80) set is critical: a
                                     reader that does not know it must reject
                                     the ticket
    end     16|64 tag

Absent optional fields mean: no lower bound, no upper bound, generation 0,
no extensions.  A writer never sets a flag for a zero or empty field and a
reader rejects one that does, so every ticket has exactly one encoding.

The tag signs ``b"QRGATE1" + body``.  HMAC keys are derived per event (see
gate.keys), so the key id names the issuer master key and the event picks the
derived key.  Test vectors: docs/ticket-format.md and tests/test_ticket_format.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gate.base45 import b45decode, b45encode
from gate.exc import TicketFormatError

PREFIX = "QG:"
#: The QR error-correction level every ticket and holder code is drawn at (segno's name, never boosted).
#: bench/ecc.py chose it: at the fixed size an app draws its code, Q and H need a higher version whose
#: smaller modules lose more to blur and distance than their extra correction wins back from a finger
#: (docs/ticket-format.md, "Error-correction level").  Every level reads at the gate.
QR_ERROR = "m"
VERSION = 1
SCHEME_HMAC = 1
SCHEME_ED25519 = 2
TAG_SIZE = {SCHEME_HMAC: 16, SCHEME_ED25519: 64}
SCHEME_NAMES = {SCHEME_HMAC: "hmac", SCHEME_ED25519: "ed25519"}
SCHEME_IDS = {v: k for k, v in SCHEME_NAMES.items()}
SIGNING_CONTEXT = b"QRGATE1"
MAX_FIELD = 64
MAX_TIME = 2**40 - 1
#: more text than this is never a ticket (a version-40 QR holds 4296 chars)
MAX_TEXT = 1024
#: critical extensions this reader understands: 0x82 holder code (gate/holder.py, docs/ownership.md)
KNOWN_EXTENSIONS: frozenset[int] = frozenset({0x82})
_SCHEME_MASK = 0x03
_FLAG = (0x04, 0x08, 0x10)  # valid_from, valid_until, generation
_FLAG_EXTENSIONS = 0x20
_FLAG_RESERVED = 0xC0


@dataclass(frozen=True)
class Ticket:
    """The signed fields of one ticket (everything but the tag)."""

    event: str
    ticket_id: str
    seat: str = ""
    kid: str = "00000000"  # 4 bytes as 8 lowercase hex digits
    scheme: int = SCHEME_HMAC
    valid_from: int = 0
    valid_until: int = 0
    generation: int = 0
    extensions: tuple[tuple[int, bytes], ...] = ()
    version: int = VERSION

    def body(self) -> bytes:
        """The signed bytes; raises TicketFormatError for fields out of range."""
        _check_fields(self)
        optional = (self.valid_from, self.valid_until, self.generation)
        flags = self.scheme | sum(_FLAG[i] for i, n in enumerate(optional) if n)
        flags |= _FLAG_EXTENSIONS if self.extensions else 0
        out = bytearray((self.version, flags))
        out += bytes.fromhex(self.kid)
        for text in (self.event, self.ticket_id, self.seat):
            raw = text.encode()
            out.append(len(raw))
            out += raw
        for n in optional:
            if n:
                out += _uvarint(n)
        if self.extensions:
            out.append(len(self.extensions))
            for kind, value in self.extensions:
                out += bytes((kind, len(value))) + value
        return bytes(out)

    def replace(self, **changes: object) -> Ticket:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def key(self) -> tuple[str, str]:
        """The identity used by the redeemed set: (event, ticket id)."""
        return (self.event, self.ticket_id)


@dataclass(frozen=True)
class SignedTicket:
    """A parsed ticket with its tag and the exact bytes the tag covers."""

    ticket: Ticket
    tag: bytes
    signed: bytes

    def text(self) -> str:
        return encode_text(self.signed[len(SIGNING_CONTEXT) :], self.tag)


def signing_input(body: bytes) -> bytes:
    return SIGNING_CONTEXT + body


def encode_text(body: bytes, tag: bytes) -> str:
    return PREFIX + b45encode(body + tag)


def parse(text: str) -> SignedTicket:
    """Parse QR text into a SignedTicket, checking structure but not the tag.

    Raises TicketFormatError (a ValueError) for anything that is not a
    well-formed v1 ticket; never any other exception for any str input.
    """
    if not isinstance(text, str):
        raise TicketFormatError("ticket text must be a str")
    if len(text) > MAX_TEXT:
        raise TicketFormatError(f"text of {len(text)} characters is too long to be a ticket")
    if not text.startswith(PREFIX):
        raise TicketFormatError("not a qrgate ticket (no 'QG:' prefix)")
    raw = b45decode(text[len(PREFIX) :])
    if len(raw) < 2:
        raise TicketFormatError("ticket is truncated")
    if raw[0] != VERSION:
        raise TicketFormatError(f"unsupported ticket version {raw[0]}")
    scheme = raw[1] & _SCHEME_MASK
    if raw[1] & _FLAG_RESERVED:
        raise TicketFormatError(f"reserved flag bits set (0x{raw[1]:02x})")
    if scheme not in TAG_SIZE:
        raise TicketFormatError(f"unknown signature scheme {scheme}")
    size = TAG_SIZE[scheme]
    if len(raw) < 6 + size:
        raise TicketFormatError("ticket is truncated")
    body, tag = raw[:-size], raw[-size:]
    return SignedTicket(_parse_body(body), tag, signing_input(body))


def _parse_body(body: bytes) -> Ticket:
    reader = _Reader(body)
    version, flags = reader.take(1)[0], reader.take(1)[0]
    kid = reader.take(4).hex()
    event = reader.text(1)
    ticket_id = reader.text(1)
    seat = reader.text(0)
    valid_from, valid_until, generation = (reader.uvarint() if flags & bit else 0 for bit in _FLAG)
    extensions = []
    count = reader.take(1)[0] if flags & _FLAG_EXTENSIONS else 0
    if flags & _FLAG_EXTENSIONS and not count:
        raise TicketFormatError("extensions flagged but none present")
    for _ in range(count):
        kind, length = reader.take(2)
        if kind & 0x80 and kind not in KNOWN_EXTENSIONS:
            raise TicketFormatError(f"unknown critical extension 0x{kind:02x}")
        extensions.append((kind, reader.take(length)))
    if reader.pos != len(body):
        raise TicketFormatError("trailing bytes after the ticket fields")
    ticket = Ticket(
        event=event, ticket_id=ticket_id, seat=seat, kid=kid, scheme=flags & _SCHEME_MASK,
        valid_from=valid_from, valid_until=valid_until, generation=generation,
        extensions=tuple(extensions), version=version,
    )
    _check_fields(ticket)
    return ticket


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise TicketFormatError("ticket is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def text(self, min_len: int) -> str:
        raw = self.take(self.take(1)[0])
        if not min_len <= len(raw) <= MAX_FIELD:
            raise TicketFormatError(f"text field of {len(raw)} bytes is out of range")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TicketFormatError("text field is not UTF-8") from None

    def uvarint(self) -> int:
        value = shift = 0
        for _ in range(6):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if value > MAX_TIME or value == 0 or (byte == 0 and shift > 7):
                    break  # out of range, or a non-canonical encoding (zero is never written)
                return value
        raise TicketFormatError("integer field is out of range")


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _check_fields(t: Ticket) -> None:
    if t.version != VERSION:
        raise TicketFormatError(f"unsupported ticket version {t.version}")
    if t.scheme not in TAG_SIZE:
        raise TicketFormatError(f"unknown signature scheme {t.scheme}")
    if len(t.kid) != 8 or any(c not in "0123456789abcdef" for c in t.kid):
        raise TicketFormatError(f"key id {t.kid!r} is not 8 lowercase hex digits")
    for name, text, lo in (("event", t.event, 1), ("ticket id", t.ticket_id, 1), ("seat", t.seat, 0)):
        size = len(text.encode())
        if not lo <= size <= MAX_FIELD:
            raise TicketFormatError(f"{name} must be {lo}..{MAX_FIELD} bytes of UTF-8, not {size}")
        if any(ord(c) < 32 or c == "\x7f" for c in text):
            raise TicketFormatError(f"{name} contains a control character")
    for name, n in (("valid_from", t.valid_from), ("valid_until", t.valid_until), ("generation", t.generation)):
        if not 0 <= n <= MAX_TIME:
            raise TicketFormatError(f"{name} {n} is out of range 0..{MAX_TIME}")
    if t.valid_from and t.valid_until and t.valid_from > t.valid_until:
        raise TicketFormatError("valid_from is after valid_until")
    if len(t.extensions) > 255:
        raise TicketFormatError("too many extensions")
    for kind, value in t.extensions:
        if not 0 <= kind <= 255 or len(value) > 255:
            raise TicketFormatError("extension type or value out of range")
