"""The product of a ticket: signed extension ``0x03`` of ticket format v1 (docs/ticket-format.md).

A check-in list (gate/rules.py) admits tickets by product ("vip", "day-pass"), so the product must be in
the signed ticket for a gate to decide offline.  The extension is *not* critical: a reader that does not
know it (an older gate, or one with no list configured) treats the ticket as today's single-use ticket.

Value: the product name, UTF-8, 1..64 bytes, no control characters.  A ticket without the extension has
the product ``""`` (none); a ticket with two of them is malformed.
"""

from __future__ import annotations

from gate.exc import TicketFormatError
from gate.ticket import MAX_FIELD, Ticket

EXT_PRODUCT = 0x03


def check_product(name: str) -> str:
    """`name` if it is a valid product name, else TicketFormatError saying why."""
    if name.isprintable() and 1 <= len(name.encode()) <= MAX_FIELD:  # the usual name, at a list gate's every scan
        return name  # (printable: no control character; the exact checks below decide all the others)
    size = len(name.encode())
    if not 1 <= size <= MAX_FIELD:
        raise TicketFormatError(f"product must be 1..{MAX_FIELD} bytes of UTF-8, not {size}")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise TicketFormatError("product contains a control character")
    return name


def with_product(ticket: Ticket, product: str) -> Ticket:
    """`ticket` carrying `product` (replacing any it had); `""` removes it."""
    others = tuple((k, v) for k, v in ticket.extensions if k != EXT_PRODUCT)
    if not product:
        return ticket.replace(extensions=others)
    return ticket.replace(extensions=(*others, (EXT_PRODUCT, check_product(product).encode())))


def product_of(ticket: Ticket) -> str:
    """The ticket's signed product, ``""`` when it has none; TicketFormatError for a malformed one."""
    values = [v for k, v in ticket.extensions if k == EXT_PRODUCT]
    if not values:
        return ""
    if len(values) > 1:
        raise TicketFormatError("the product extension appears twice")
    try:
        return check_product(values[0].decode("utf-8"))
    except UnicodeDecodeError:
        raise TicketFormatError("product is not UTF-8") from None
