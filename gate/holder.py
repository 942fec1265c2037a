"""The holder's code at the gate: a critical ticket extension plus a rotating back-step value.

The box office signs, in critical extension ``0x82`` (25 bytes), the terms of
the holder's code chain::

    offset size field
    0      1    mode          0 rotating, 1 paper (static)
    1      2    slot          seconds per slot, 1..3600 (u16 big-endian)
    3      2    slots         N, the chain length = number of slots, 1..65535
    5      4    start         unix seconds at which slot 1 begins (u32, > 0)
    9      16   anchor        A = x_N of the holder's code chain (see gate.backstep)

The chain's salt is ``code_salt(event, ticket id)``.  Slot t (1..N) covers
``[start + (t-1)*slot, start + t*slot)`` and its value is ``v_t = x_{N-t}``.

What the wallet shows (all in the QR alphanumeric set)::

    "QH:" + Base45(body || tag) + Base45(u16be(t) || v_t)

i.e. the signed ticket text with its prefix "QG:" changed to "QH:" and a
fixed 27-character suffix (18 bytes).  A gate checks, after the signature and
the validity window: the value hashes forward t steps to the signed anchor
(else ``bad_backstep``), then, for a rotating code, that t is the gate's
current slot within ``skew`` slots (else ``stale_code``: a screenshot).  A
paper code is accepted in any slot (it is static, and single use still
holds).  A holder ticket shown without its suffix is ``bad_backstep``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gate.backstep import MAX_N, SIZE, code_salt, forward, reaches
from gate.base45 import b45decode, b45encode
from gate.exc import TicketFormatError
from gate.outcomes import Reason
from gate.ticket import PREFIX, Ticket

EXT_HOLDER = 0x82
MODE_ROTATING, MODE_PAPER = 0, 1
MODES = {"rotating": MODE_ROTATING, "paper": MODE_PAPER}
CODE_PREFIX = "QH:"
SUFFIX_BYTES = 2 + SIZE
SUFFIX_CHARS = SUFFIX_BYTES // 2 * 3
EXT_SIZE = 25
MAX_SLOT = 3600
#: slots of clock error tolerated either side of the gate's current slot
DEFAULT_SKEW = 1


@dataclass(frozen=True)
class HolderTerms:
    """The signed terms of a holder's code chain (extension 0x82)."""

    anchor: bytes
    start: int
    slot: int
    slots: int
    mode: int = MODE_ROTATING

    def __post_init__(self) -> None:
        if self.mode not in MODES.values():
            raise TicketFormatError(f"unknown holder-code mode {self.mode}")
        if not 1 <= self.slot <= MAX_SLOT or not 1 <= self.slots <= MAX_N:
            raise TicketFormatError(f"slot {self.slot} s x {self.slots} is out of range")
        if not 0 < self.start < 2**32 or len(self.anchor) != SIZE:
            raise TicketFormatError("holder-code start or anchor is out of range")

    def encode(self) -> bytes:
        return (bytes((self.mode,)) + self.slot.to_bytes(2, "big") + self.slots.to_bytes(2, "big")
                + self.start.to_bytes(4, "big") + self.anchor)

    @classmethod
    def decode(cls, raw: bytes) -> HolderTerms:
        if len(raw) != EXT_SIZE:
            raise TicketFormatError(f"holder-code extension of {len(raw)} bytes (expected {EXT_SIZE})")
        return cls(anchor=raw[9:], start=int.from_bytes(raw[5:9], "big"), slot=int.from_bytes(raw[1:3], "big"),
                   slots=int.from_bytes(raw[3:5], "big"), mode=raw[0])

    @property
    def end(self) -> int:
        return self.start + self.slot * self.slots

    def slot_at(self, now: float) -> int:
        """The slot number of time `now` (below 1 before the window, above N after it)."""
        return math.floor((now - self.start) / self.slot) + 1

    def slot_ends(self, t: int) -> int:
        return self.start + t * self.slot

    def to_json(self) -> dict[str, object]:
        return {"anchor": self.anchor.hex(), "start": self.start, "slot": self.slot, "slots": self.slots,
                "mode": self.mode}


@dataclass(frozen=True)
class Code:
    """The rotating part of a holder's QR: slot number t and v_t."""

    t: int
    value: bytes

    def encode(self) -> str:
        return b45encode(self.t.to_bytes(2, "big") + self.value)


def terms_of(ticket: Ticket) -> HolderTerms | None:
    """The holder terms a ticket carries, or None; TicketFormatError if malformed or repeated."""
    found = [value for kind, value in ticket.extensions if kind == EXT_HOLDER]
    if len(found) > 1:
        raise TicketFormatError("holder-code extension repeated")
    return HolderTerms.decode(found[0]) if found else None


def with_terms(ticket: Ticket, terms: HolderTerms) -> Ticket:
    """`ticket` carrying `terms` (replacing any holder extension it had)."""
    others = tuple(e for e in ticket.extensions if e[0] != EXT_HOLDER)
    return ticket.replace(extensions=(*others, (EXT_HOLDER, terms.encode())))


def present(ticket_text: str, code: Code) -> str:
    """The QR text of a holder code: the signed ticket text ("QG:...") made "QH:" plus the suffix."""
    if not ticket_text.startswith(PREFIX):
        raise TicketFormatError("not a qrgate ticket text")
    return CODE_PREFIX + ticket_text[len(PREFIX):] + code.encode()


def split(text: str) -> tuple[str, Code | None]:
    """(signed ticket text, code or None) of presented QR text; TicketFormatError for a bad suffix.

    Text without the "QH:" prefix is returned unchanged with no code.
    """
    if not isinstance(text, str) or not text.startswith(CODE_PREFIX):
        return text, None
    body = text[len(CODE_PREFIX):]
    if len(body) <= SUFFIX_CHARS:
        raise TicketFormatError("holder code is truncated")
    raw = b45decode(body[-SUFFIX_CHARS:])
    t = int.from_bytes(raw[:2], "big")
    if t == 0:
        raise TicketFormatError("holder code slot 0 (the public anchor) is never a code")
    return PREFIX + body[:-SUFFIX_CHARS], Code(t, raw[2:])


def check(ticket: Ticket, code: Code | None, now: float, skew: int = DEFAULT_SKEW, *,
          required: bool = False) -> tuple[Reason, str]:
    """Reason.NONE when the ticket needs no code or `code` is its valid code at `now`; never raises.

    `required` (the key is holder-only, gate/keys.py): a ticket without holder terms is refused too.
    """
    try:
        terms = terms_of(ticket)
    except TicketFormatError as exc:
        return Reason.MALFORMED, str(exc)
    if terms is None and required:
        return Reason.BAD_BACKSTEP, f"key {ticket.kid} admits holder tickets only: this is a plain copy"
    if terms is None:
        return (Reason.NONE, "") if code is None else (Reason.MALFORMED, "a code for a ticket without holder terms")
    if code is None:
        return Reason.BAD_BACKSTEP, "a holder ticket shown without its code"
    salt = code_salt(ticket.event, ticket.ticket_id)
    if not reaches(code.value, code.t, terms.anchor, 0, salt, terms.slots):
        return Reason.BAD_BACKSTEP, f"slot {code.t} value does not reach the anchor"
    if terms.mode == MODE_PAPER:
        return Reason.NONE, ""
    current = terms.slot_at(now)
    if abs(code.t - current) > skew:
        when = "earlier" if code.t < current else "later"
        return Reason.STALE_CODE, f"code of slot {code.t}, {when} than this gate's slot {current} (skew {skew})"
    return Reason.NONE, ""


def code_for(seed: bytes, ticket: Ticket, terms: HolderTerms, now: float) -> Code:
    """The holder's code at `now` (a paper ticket: always slot 1); costs up to N hash steps."""
    t = 1 if terms.mode == MODE_PAPER else min(max(terms.slot_at(now), 1), terms.slots)
    salt = code_salt(ticket.event, ticket.ticket_id)
    return Code(t, forward(seed, salt, 0, terms.slots - t))
