"""The product extension 0x03 (gate/product.py): signed, optional, one encoding, old tickets unchanged."""

from __future__ import annotations

import pytest

from gate.exc import TicketFormatError
from gate.keys import IssuerKey, Keyring
from gate.outcomes import Reason
from gate.product import EXT_PRODUCT, product_of, with_product
from gate.ticket import Ticket, parse
from gate.verify import Verifier


def test_product_round_trips_through_a_signed_ticket() -> None:
    key = IssuerKey.new("show7", "ed25519")
    text = key.sign(with_product(Ticket("show7", "t1"), "vip"))
    verdict = Verifier(Keyring([key.verify_key()])).verify(text, 0)
    assert verdict.reason is Reason.NONE and verdict.ticket is not None
    assert product_of(verdict.ticket) == "vip"


def test_a_ticket_without_product_is_unchanged() -> None:
    ticket = Ticket("show7", "t1")
    assert with_product(ticket, "") == ticket
    assert product_of(ticket) == ""
    assert with_product(with_product(ticket, "vip"), "") == ticket


def test_replacing_the_product_keeps_one_extension() -> None:
    ticket = with_product(with_product(Ticket("show7", "t1"), "vip"), "general")
    assert [k for k, _ in ticket.extensions] == [EXT_PRODUCT]
    assert product_of(ticket) == "general"


@pytest.mark.parametrize("bad", ["x" * 65, "a\nb", "\x7f"])
def test_bad_product_names_are_refused(bad: str) -> None:
    with pytest.raises(TicketFormatError):
        with_product(Ticket("show7", "t1"), bad)


def test_two_products_or_bad_utf8_are_malformed() -> None:
    twice = Ticket("show7", "t1", extensions=((EXT_PRODUCT, b"a"), (EXT_PRODUCT, b"b")))
    with pytest.raises(TicketFormatError, match="twice"):
        product_of(parse(IssuerKey.new("show7", "hmac").sign(twice)).ticket)
    with pytest.raises(TicketFormatError, match="UTF-8"):
        product_of(Ticket("show7", "t1", extensions=((EXT_PRODUCT, b"\xff"),)))
