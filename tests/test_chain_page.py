"""The wallet page in a real headless Chromium: plain words, the QR rotates and decodes, the session key and
the Host check, and (connected to real box office and agent processes) buying with a click.

Needs the `playwright` Python package and Chromium at /usr/bin/chromium (Debian's
`chromium`); it never downloads a browser.  The screenshot is saved as
artifacts/wallet-page.png.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
import zxingcpp
from chain_fixtures import RealClock, World, listing, make_world
from office_fixtures import EVENT, Theatre, theatre, wait_for
from playwright.sync_api import Page, sync_playwright
from test_boxoffice_server import buy_and_pay

from gate.outcomes import Reason
from gate.ownership.webpage import WalletPage

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SLOT = 2
JARGON = ("generation", "slot", "chain", "txn", "back-step")


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 420, "height": 900})
        finally:
            browser.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[World, WalletPage]]:
    start = time.time() - 10
    item = dataclasses.replace(listing(slot=SLOT, slots=3600, start=start), title="Hamlet", venue="Town Hall")
    world = make_world(tmp_path, item, clock=RealClock())
    alice = world.wallet("alice")
    world.purchase(alice)
    wallet_page = WalletPage(alice)
    wallet_page.start()
    try:
        yield world, wallet_page
    finally:
        wallet_page.stop()
        world.store.close()


def test_the_wallet_page_shows_the_ticket_in_plain_words_and_rotates_the_code(
        served: tuple[World, WalletPage], page: Page) -> None:
    world, wallet_page = served
    page.goto(wallet_page.url)
    card = page.locator("#tickets .card").first
    card.locator(".qr svg").wait_for(timeout=10_000)
    first_t, first_text = shown_code(page)
    assert first_t and first_text and first_text.startswith("QH:")
    assert card.locator("h2").inner_text() == "Hamlet"
    assert card.locator(".where").inner_text() == "Town Hall · Seat 12B"
    assert str(time.gmtime(time.time() - 10).tm_year) in card.locator(".when").inner_text()
    shown = card.inner_text().lower()
    assert not [w for w in JARGON if w in shown], shown

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "wallet-page.png"
    card.screenshot(path=str(shot))
    shown_at = time.time()
    first_t, after = shown_code(page)  # a slot may end meanwhile
    assert first_t and after
    image = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
    decoded = [r.text for r in zxingcpp.read_barcodes(image)]
    assert len(decoded) == 1 and decoded[0] in (first_text, after)  # the rendered QR reads back as the code
    assert world.gate().verifier.verify(decoded[0], shown_at).reason is Reason.NONE
    first_text = after

    page.wait_for_function("(t) => document.querySelector('#tickets .card').dataset.t !== t", arg=first_t,
                           timeout=(SLOT * 3) * 1000)
    second_t, second_text = shown_code(page)
    assert second_t is not None and int(second_t) > int(first_t)
    assert second_text != first_text and second_text is not None
    assert "The code changes in" in card.locator(".meta").inner_text()
    # the first code is a screenshot by now: a gate two slots later refuses it
    later = time.time() + 2 * SLOT
    assert world.gate().verifier.verify(first_text, later).reason is Reason.STALE_CODE


def shown_code(page: Page) -> tuple[str, str]:
    """The card's slot and code text, read together (two reads could straddle a rotation)."""
    t, text = page.evaluate("(() => { const d = document.querySelector('#tickets .card').dataset;"
                            " return [d.t, d.text]; })()")
    return str(t), str(text)


def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_page_needs_its_session_key_and_its_own_host(served: tuple[World, WalletPage], page: Page) -> None:
    _world, wallet_page = served
    base, key = wallet_page.origin, {"X-Wallet-Key": wallet_page.secret}
    assert fetch(base + "/api/tickets", {})[0] == 403  # no key: another site or user cannot read the codes
    assert fetch(base + "/", {})[0] == 403
    assert fetch(base + "/api/tickets", {**key, "Host": "attacker.example"})[0] == 421  # DNS rebinding
    status, body = fetch(base + "/api/code?event=show7&ticket=nope", key)
    assert status == 404 and b"not yours" in body
    status, body = fetch(base + "/api/offers", key)  # a wallet with files only
    assert status == 409 and b"not connected to a box office" in body


@pytest.fixture
def connected(tmp_path: Path) -> Iterator[tuple[Theatre, WalletPage]]:
    for t in theatre(tmp_path, "9f2"):
        alice = t.wallet("alice")
        wallet_page = WalletPage(alice.wallet, alice)
        wallet_page.start()
        try:
            yield t, wallet_page
        finally:
            wallet_page.stop()


def test_buying_with_a_click_against_the_real_box_office(connected: tuple[Theatre, WalletPage], page: Page) -> None:
    site, wallet_page = connected
    page.goto(wallet_page.url)
    offer = page.locator("#shop .offer").first
    offer.locator("button").wait_for(timeout=10_000)
    assert "Hamlet" in offer.inner_text() and "25.00 EUR" in offer.inner_text()
    offer.locator("button").click()
    page.locator("#say").wait_for(state="visible", timeout=15_000)
    assert page.locator("#say").inner_text() == "The ticket is yours."
    page.locator("#tickets .card .qr svg").wait_for(timeout=10_000)
    assert site.bo.status(EVENT, "9f2")["state"] == "sold"
    # sold: no longer on sale, once the page has read the offers again (it does after the purchase's answer)
    page.wait_for_function("document.querySelectorAll('#shop .offer').length === 0", timeout=10_000)


def call(wallet_page: WalletPage, method: str, path: str, body: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One API call of the page with its session key; (status, JSON answer)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(wallet_page.origin + path, data=data, method=method,
                                     headers={"X-Wallet-Key": wallet_page.secret, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_page_says_sold_and_over_in_words_a_holder_understands(connected: tuple[Theatre, WalletPage]) -> None:
    site, wallet_page = connected
    site.list("late", valid_until=int(time.time()) + 2)
    offers = call(wallet_page, "GET", "/api/offers")[1]["on_sale"]  # the holder sees it on sale ...
    assert "late" in [x["ticket_id"] for x in offers]
    assert call(wallet_page, "POST", "/api/buy", {"event": EVENT, "ticket": "9f2"}) == (
        200, {"ok": True, "message": "The ticket is yours."})
    status, sold = call(wallet_page, "POST", "/api/buy", {"event": EVENT, "ticket": "9f2"})
    assert (status, sold["message"]) == (409, "Sorry, someone else has just taken this seat.")
    wait_for(lambda: site.bo.status(EVENT, "late")["ended"])  # ... and clicks once it is over
    status, over = call(wallet_page, "POST", "/api/buy", {"event": EVENT, "ticket": "late"})
    assert (status, over["message"]) == (409, "This event is over: its tickets can no longer be bought or sold.")
    assert [x["ticket_id"] for x in call(wallet_page, "GET", "/api/offers")[1]["on_sale"]] == []


def test_asking_twice_for_a_ticket_says_so_not_someone_else(tmp_path: Path) -> None:
    """Bob asks Alice for her ticket, then asks again (another tab, a second tap): the box office holds it for
    his first request, and the page says so instead of "someone else is buying this ticket"."""
    for site in theatre(tmp_path, "9f2"):
        alice, bob = site.wallet("alice"), site.wallet("bob")
        buy_and_pay(site, alice)
        bob_page = WalletPage(bob.wallet, bob)
        bob_page.start()
        try:
            asked = {"event": EVENT, "ticket": "9f2", "seller": alice.chain}
            first = call(bob_page, "POST", "/api/ask", asked)
            assert first[0] == 200 and first[1]["message"].startswith("Asked alice for"), first
            again = call(bob_page, "POST", "/api/ask", asked)
            assert again == (409, {"error": "asked_already", "message": "You have asked for this ticket already: "
                                                                         "the seller's answer will show here."})
        finally:
            bob_page.stop()


def test_a_ticket_not_yet_valid_says_so_on_its_card(tmp_path: Path) -> None:
    item = dataclasses.replace(listing(slot=SLOT, slots=3600, start=time.time() + 3600), title="Hamlet")
    world = make_world(tmp_path, item, clock=RealClock())
    alice = world.wallet("alice")
    world.purchase(alice)
    wallet_page = WalletPage(alice)
    wallet_page.start()
    try:
        status, code = call(wallet_page, "GET", f"/api/code?event={EVENT}&ticket=9f2")
        assert status == 200 and code["note"] == "Not valid yet: show this at the door once it opens."
    finally:
        wallet_page.stop()
        world.store.close()
