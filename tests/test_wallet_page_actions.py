"""The wallet page's buttons in a real headless Chromium, as holders use them: Bob buys, Alice sells to Bob
and gives to Bob, and what a refused click says (given away already, sold out, over) in plain words.

Everything is real and over loopback HTTP: `gate boxoffice serve`, `gate fake-agent serve`, and one
`gate wallet serve` process per holder (tests/office_fixtures.py `Theatre.pages`); the browser is
Debian's Chromium through Playwright (tests/dashboard_fixtures.py `browser`).  The tests only click,
type, choose and wait for visible text.  A tab whose timers are paused (Playwright's clock: a phone
asleep in a pocket) keeps showing what it showed, which is how a holder comes to click a button that
no longer holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dashboard_fixtures import ARTIFACTS, browser  # noqa: F401 - the module's browser fixture
from office_fixtures import EVENT, Service, Theatre, theatre, wait_for
from playwright.sync_api import Browser, Locator, Page

JARGON = ("generation", "slot", "chain", "txn", "back-step", "traceback", "error:", "{", "null", "undefined",
          "not_", "_")
SOON = 10  # seconds: the "late" ticket's event is over this long after the listing
WAIT = 15_000  # ms for anything a click starts (the page reads its mailbox every 3 s)

Phone = Callable[..., Page]


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[Theatre]:
    """A box office with Hamlet tickets 9f2 and a11 on sale, its agent, and the pages of Alice, Bob, Carol."""
    yield from theatre(tmp_path, "9f2", "a11")


@pytest.fixture
def phone(browser: Browser) -> Iterator[Phone]:  # noqa: F811 - pytest's fixture by argument name
    """`phone(service)`: open a holder's page on a phone-sized screen of its own (`clock=True`: under Playwright's
    clock, for `asleep`); the test fails if a page's script throws."""
    contexts, errors = [], []

    def open_page(service: Service, clock: bool = False) -> Page:
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if clock:
            page.clock.install()
        page.goto(service.url)
        page.locator("#tickets").filter(has_not_text="Loading").wait_for(timeout=WAIT)
        return page

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()
    assert not errors, f"a page's script failed: {errors}"


def said(page: Page, text: str) -> str:
    """Wait until the page's message line says `text` (its start) and return the whole of it."""
    line = page.locator("#say")
    line.filter(has_text=text).wait_for(timeout=WAIT)
    return plain(line.inner_text())


def plain(text: str) -> str:
    """`text` as a holder reads it: no code words, no JSON, no trace."""
    assert not [w for w in JARGON if w in text.lower()], text
    return text


def offer(page: Page, seat: str) -> Locator:
    return page.locator("#shop .offer").filter(has_text=f"Seat {seat}")


def my_ticket(page: Page, seat: str) -> Locator:
    return page.locator("#tickets .card").filter(has_text=f"Seat {seat}")


def buy(page: Page, seat: str) -> None:
    offer(page, seat).locator("button", has_text="Buy").click()
    said(page, "The ticket is yours.")
    my_ticket(page, seat).locator(".qr svg").wait_for(timeout=WAIT)


def ask(page: Page, who: str, seat: str) -> str:
    """Choose the person and their ticket in "Ask someone for their ticket" and click Ask; the answer shown."""
    page.locator("#askbox").wait_for(state="visible", timeout=WAIT)
    page.locator("#ask-who").select_option(label=who)
    page.locator("#ask-ticket").select_option(label=f"Hamlet · Town Hall · Seat {seat}")
    page.locator("#ask").click()
    return said(page, f"Asked {who} for Hamlet · Town Hall · Seat {seat}.")


def asked(page: Page, who: str, seat: str) -> Locator:
    """The card of the ticket `who` asks for, once the page shows the request."""
    card = my_ticket(page, seat)
    card.locator(".asks", has_text=f"{who} asks for this ticket.").wait_for(timeout=WAIT)
    return card


def snap(page: Page, name: str) -> None:
    """A screenshot of `page` in the test artifacts (for a person to look at)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), animations="disabled")


def test_bob_buys_a_ticket_with_a_click_and_sees_it_in_plain_words(hall: Theatre, phone: Phone) -> None:
    hall.list("soon", valid_from=int(time.time()) + 3600)
    bob = phone(hall.pages("bob")["bob"])
    sale = offer(bob, "S-9f2")
    assert "Hamlet" in sale.inner_text() and "Town Hall · Seat S-9f2 · 25.00 EUR" in sale.inner_text()
    assert "No tickets yet." in bob.locator("#tickets").inner_text()
    buy(bob, "S-9f2")
    card = my_ticket(bob, "S-9f2")
    assert card.locator("h2").inner_text() == "Hamlet"
    assert card.locator(".where").inner_text() == "Town Hall · Seat S-9f2"
    assert str(time.gmtime().tm_year) in card.locator(".when").inner_text()
    card.locator(".meta", has_text="The code changes in").wait_for(timeout=WAIT)
    offer(bob, "S-9f2").wait_for(state="detached", timeout=WAIT)  # no longer on sale
    buy(bob, "S-soon")  # a ticket for a later night: its card says when it works
    my_ticket(bob, "S-soon").locator(".meta", has_text="Not valid yet: show this at the door once it opens.").wait_for(
        timeout=WAIT)
    plain(bob.locator("body").inner_text())
    assert hall.bo.status(EVENT, "9f2")["state"] == "sold"
    snap(bob, "wallet-page-bought.png")


def test_alice_sells_her_ticket_to_bob_from_her_page(hall: Theatre, phone: Phone) -> None:
    pages = hall.pages("alice", "bob")
    alice, bob = phone(pages["alice"]), phone(pages["bob"])
    buy(alice, "S-9f2")
    ask(bob, "alice", "S-9f2")  # Bob asks Alice; her page shows it without a reload
    card = asked(alice, "bob", "S-9f2")
    card.locator(".price").fill("40.00")
    card.locator("button", has_text="Sell").click()
    said(alice, "Invoice sent.")
    bill = bob.locator("#shop .bill").filter(has_text="alice asks 40.00 EUR for Hamlet · Town Hall · Seat S-9f2.")
    bill.wait_for(timeout=WAIT)
    bill.locator("button", has_text="Pay").click()
    said(bob, "The ticket is yours.")
    mine = my_ticket(bob, "S-9f2")
    mine.locator(".qr svg").wait_for(timeout=WAIT)
    assert mine.locator("h2").inner_text() == "Hamlet"
    sold = alice.locator("#past .card").filter(has_text="Sold to bob for 40.00 EUR.")
    sold.wait_for(timeout=WAIT)
    assert "Hamlet" in sold.inner_text() and "Seat S-9f2" in sold.inner_text()
    alice.locator("#tickets", has_text="No tickets yet.").wait_for(timeout=WAIT)
    for page in (alice, bob):
        plain(page.locator("body").inner_text())
    status = hall.bo.status(EVENT, "9f2")
    assert status["state"] == "sold" and status["generation"] == 2
    snap(alice, "wallet-page-sold.png")


def test_alice_gives_her_ticket_to_bob_from_her_page(hall: Theatre, phone: Phone) -> None:
    pages = hall.pages("alice", "bob")
    alice, bob = phone(pages["alice"]), phone(pages["bob"])
    buy(alice, "S-9f2")
    ask(bob, "alice", "S-9f2")
    asked(alice, "bob", "S-9f2").locator("button", has_text="Give away").click()
    said(alice, "Given away.")
    mine = my_ticket(bob, "S-9f2")  # Bob clicks nothing: his page shows the ticket once it is his
    mine.locator(".qr svg").wait_for(timeout=WAIT)
    assert mine.locator(".where").inner_text() == "Town Hall · Seat S-9f2"
    alice.locator("#past .card").filter(has_text="Given to bob.").wait_for(timeout=WAIT)
    alice.locator("#tickets", has_text="No tickets yet.").wait_for(timeout=WAIT)
    assert bob.locator("#shop .bill").count() == 0  # a gift: nothing to pay
    for page in (alice, bob):
        plain(page.locator("body").inner_text())


def asleep(page: Page) -> None:
    """Stop the page's timers (a phone put away): it shows what it showed until a click."""
    page.clock.pause_at(time.time() + 1)


def test_a_ticket_given_away_already_cannot_be_sold_or_given_again(hall: Theatre, phone: Phone) -> None:
    pages = hall.pages("alice", "bob", "carol")
    alice_phone, bob = phone(pages["alice"]), phone(pages["bob"])
    buy(alice_phone, "S-9f2")
    ask(bob, "alice", "S-9f2")
    asked(alice_phone, "bob", "S-9f2")
    tabs = []
    for _ in range(2):  # Alice's laptop and tablet show Bob's request too, then sleep
        tab = phone(pages["alice"], clock=True)
        asked(tab, "bob", "S-9f2")
        asleep(tab)
        tabs.append(tab)
    asked(alice_phone, "bob", "S-9f2").locator("button", has_text="Give away").click()
    said(alice_phone, "Given away.")
    my_ticket(bob, "S-9f2").locator(".qr svg").wait_for(timeout=WAIT)
    laptop, tablet = tabs
    card = my_ticket(laptop, "S-9f2")
    card.locator(".price").fill("40.00")
    card.locator("button", has_text="Sell").click()
    assert said(laptop, "You have already") == ("You have already sold or given away this ticket: it is no longer"
                                                " yours to sell or give.")
    assert laptop.locator("#say.bad").count() == 1
    my_ticket(tablet, "S-9f2").locator("button", has_text="Give away").click()
    said(tablet, "You have already sold or given away this ticket")
    laptop.locator("#past .card").filter(has_text="Given to bob.").wait_for(timeout=WAIT)  # redrawn after the click
    carol = phone(pages["carol"])  # Carol, too late, asks Alice for it
    carol.locator("#askbox").wait_for(state="visible", timeout=WAIT)
    carol.locator("#ask-who").select_option(label="alice")
    carol.locator("#ask-ticket").select_option(label="Hamlet · Town Hall · Seat S-9f2")
    carol.locator("#ask").click()
    assert said(carol, "That person") == "That person does not hold this ticket (any more)."
    for page in (*tabs, carol):
        plain(page.locator("body").inner_text())
    assert hall.bo.status(EVENT, "9f2")["state"] == "sold"
    assert bob.locator("#shop .bill").count() == 0


def test_buying_a_ticket_sold_meanwhile_or_an_event_over_says_so(hall: Theatre, phone: Phone) -> None:
    pages = hall.pages("alice", "bob")
    alice = phone(pages["alice"])
    hall.list("late", valid_until=int(time.time()) + SOON)
    late = phone(pages["bob"], clock=True)
    offer(late, "S-late").wait_for(timeout=WAIT)
    asleep(late)  # Bob's tablet still shows the late show on sale, and his phone a11
    on_sale = phone(pages["bob"], clock=True)
    offer(on_sale, "S-a11").wait_for(timeout=WAIT)
    asleep(on_sale)
    buy(alice, "S-a11")
    offer(on_sale, "S-a11").locator("button", has_text="Buy").click()
    assert said(on_sale, "Sorry") == "Sorry, someone else has just taken this seat."
    assert on_sale.locator("#say.bad").count() == 1
    offer(on_sale, "S-a11").wait_for(state="detached", timeout=WAIT)  # redrawn after the click
    wait_for(lambda: hall.bo.status(EVENT, "late")["ended"], timeout=SOON + 10)
    offer(late, "S-late").locator("button", has_text="Buy").click()
    assert said(late, "This event is over") == "This event is over: its tickets can no longer be bought or sold."
    offer(late, "S-late").wait_for(state="detached", timeout=WAIT)
    for tab in (on_sale, late):
        assert "No tickets yet." in tab.locator("#tickets").inner_text()
        plain(tab.locator("body").inner_text())
