"""The vocabulary of the flows: applications, block kinds, payload fields, amounts, the catalog, the signed status.

Applications (each seals with its own key per pair of parties, gate.ownership.seal):

=================  ====================  =============================================
application        between               kinds
=================  ====================  =============================================
``qrgate.ticket``  wallet <-> box office purchase_request, resale_request, reservation,
                                         payment_request, hold, release, ownership,
                                         timeout, superseded
``qrgate.resale``  wallet <-> wallet     resale_request, invoice
``qrgate.payment`` payer/payee <-> agent payment, payment_confirmation, payment_receipt
=================  ====================  =============================================

The resale price lives only in ``qrgate.resale`` and ``qrgate.payment``
blocks between buyer, seller and agent: the box office holds none of their keys.
Amounts are integers in minor units (cents); the block's ``txn`` is the payment reference.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from gate.exc import TicketFormatError
from gate.holder import MODES, HolderTerms
from gate.ownership import seal
from gate.ownership.block import Block, Json, canonical
from gate.ownership.exc import BadSignature, MalformedBlock

APP_TICKET, APP_RESALE, APP_PAYMENT = "qrgate.ticket", "qrgate.resale", "qrgate.payment"
CATALOG_FORMAT = "qrgate-catalog/1"
STATUS_FORMAT = "qrgate-status/1"
STATUS_SKEW = 60.0  # seconds a status answer's `at` may differ from the gate's clock


def new_txn() -> str:
    return secrets.token_hex(16)


def parse_amount(text: str) -> int:
    """'25.00' -> 2500 (minor units); ValueError for anything that is not a non-negative amount."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount such as 25.00") from None
    cents = value * 100
    if not value.is_finite() or value < 0 or cents != cents.to_integral_value():
        raise ValueError(f"{text!r} is not an amount such as 25.00")
    return int(cents)


def format_amount(cents: int, currency: str) -> str:
    return f"{cents // 100}.{cents % 100:02d} {currency}"


@dataclass(frozen=True)
class CodeRequest:
    """What a buyer commits to in its request: its code chain's anchor and the mode."""

    anchor: bytes
    mode: int

    def to_json(self) -> Json:
        return {"anchor": self.anchor.hex(), "mode": self.mode}

    @classmethod
    def from_json(cls, d: object) -> CodeRequest:
        bad = MalformedBlock(f"'code' must be {{anchor: 32 hex, mode: 0|1}}, not {d!r}")
        if not isinstance(d, dict) or not isinstance(d.get("anchor"), str) or d.get("mode") not in MODES.values():
            raise bad
        try:
            anchor = bytes.fromhex(d["anchor"])
        except ValueError:
            raise bad from None
        if len(anchor) != 16 or isinstance(d["mode"], bool):
            raise bad
        return cls(anchor, int(d["mode"]))


@dataclass(frozen=True)
class Listing:
    """One ticket as the box office lists it: seat, price and the terms of its holder code."""

    event: str
    ticket_id: str
    seat: str
    price: int
    currency: str
    valid_from: int
    valid_until: int
    slot: int
    slots: int
    state: str = "available"
    title: str = ""  # the event's name, for the holder ("Hamlet"); empty: the event id is all there is
    venue: str = ""

    def terms(self, code: CodeRequest) -> HolderTerms:
        """The holder terms the box office signs for a buyer's code request; MalformedBlock if out of range."""
        try:
            return HolderTerms(code.anchor, self.valid_from, self.slot, self.slots, code.mode)
        except TicketFormatError as exc:
            raise MalformedBlock(str(exc)) from None

    def to_json(self) -> Json:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: object) -> Listing:
        if not isinstance(d, dict):
            raise MalformedBlock("a catalog entry must be a JSON object")
        try:
            return cls(**d)
        except TypeError as exc:
            raise MalformedBlock(f"catalog entry: {exc}") from None


@dataclass(frozen=True)
class Catalog:
    """What a box office publishes: its identity block and its listings, signed (a JSON file or GET /catalog).

    The signature is Ed25519 over the canonical JSON of every other field, under the key the
    box office's identity publishes (``sign``); `verify` checks it.  A wallet that pinned the box
    office's chain id therefore cannot be fed listings of a fake theatre, nor altered prices.
    """

    boxoffice: Block
    listings: tuple[Listing, ...]
    at: int = 0
    signature: bytes = b""

    def signed_part(self) -> bytes:
        return canonical({"format": CATALOG_FORMAT, "boxoffice": self.boxoffice.to_json(), "at": self.at,
                          "tickets": [x.to_json() for x in self.listings]})

    def verify(self) -> Catalog:
        """This catalog if its signature verifies under its box office's key; BadSignature otherwise."""
        key = self.boxoffice.identity().sign
        if not key or not seal.signed_by(key, self.signed_part(), self.signature):
            raise BadSignature(f"the catalog of {self.boxoffice.chain} is unsigned or its signature does not verify")
        return self

    def to_json(self) -> Json:
        return {"format": CATALOG_FORMAT, "boxoffice": self.boxoffice.to_json(), "at": self.at,
                "tickets": [x.to_json() for x in self.listings], "signature": self.signature.hex()}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def loads(cls, text: str | bytes) -> Catalog:
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedBlock(f"not a JSON catalog: {exc}") from None
        if not isinstance(d, dict) or d.get("format") != CATALOG_FORMAT or not isinstance(d.get("tickets"), list):
            raise MalformedBlock(f"not a {CATALOG_FORMAT} file")
        at, signature = d.get("at", 0), d.get("signature", "")
        try:
            sig = bytes.fromhex(signature) if isinstance(signature, str) else None
        except ValueError:
            sig = None
        if sig is None or isinstance(at, bool) or not isinstance(at, int):
            raise MalformedBlock("catalog: 'at' must be unix seconds and 'signature' hex")
        return cls(Block.from_json(d.get("boxoffice")), tuple(Listing.from_json(x) for x in d["tickets"]), at, sig)


def status_signed_part(answer: Json) -> bytes:
    """What a status answer's signature covers: every field but ``signature`` itself, among them ``format``,
    the box office's identity block (so its chain id), ``event``, ``ticket_id``, ``generation`` and ``at``."""
    return canonical({k: v for k, v in answer.items() if k != "signature"})


def sign_status(answer: Json, boxoffice: Block, at: int, sign: Callable[[bytes], bytes]) -> Json:
    """`answer` (a ticket's status) with the box office's identity, the time and the signature added."""
    draft = {**answer, "format": STATUS_FORMAT, "boxoffice": boxoffice.to_json(), "at": at}
    return {**draft, "signature": sign(status_signed_part(draft)).hex()}


def verify_status(answer: object, *, boxoffice: str, event: str, ticket_id: str, now: float,
                  skew: float = STATUS_SKEW) -> Json:
    """A status answer (GET /tickets/{event}/{ticket_id}) if box office `boxoffice` (its pinned chain id) signed
    it for this very ticket within `skew` seconds of `now`; BadSignature (or MalformedBlock) saying why not."""
    if not isinstance(answer, dict) or answer.get("format") != STATUS_FORMAT:
        raise BadSignature(f"not a signed {STATUS_FORMAT} answer")
    block = Block.from_json(answer.get("boxoffice"))
    if block.chain != boxoffice:
        raise BadSignature(f"the answer is box office {block.chain}'s, not the {boxoffice} this gate trusts")
    key, signature = block.identity().sign, answer.get("signature")
    try:
        sig = bytes.fromhex(signature) if isinstance(signature, str) else b""
    except ValueError:
        sig = b""
    if not key or not seal.signed_by(key, status_signed_part(answer), sig):
        raise BadSignature(f"the answer of box office {boxoffice} is unsigned or its signature does not verify")
    if (answer.get("event"), answer.get("ticket_id")) != (event, ticket_id):
        raise BadSignature(f"the answer is for {answer.get('event')}/{answer.get('ticket_id')}, "
                           f"not {event}/{ticket_id}")
    at = answer.get("at")
    if not isinstance(at, int) or isinstance(at, bool) or abs(now - at) > skew:
        raise BadSignature(f"the answer is dated {at!r}, more than {skew:.0f} s from this gate's clock ({now:.0f})")
    return answer
