"""The wallet page in a real headless Chromium: it renders the holder's QR, rotates it, and a gate accepts it.

Needs the `playwright` Python package and Chromium at /usr/bin/chromium (Debian's
`chromium`); it never downloads a browser.  The screenshot is saved as
artifacts/wallet-page.png.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
import zxingcpp
from chain_fixtures import RealClock, World, listing, make_world
from playwright.sync_api import Page, sync_playwright

from gate.outcomes import Reason
from gate.ownership.webpage import WalletPage

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SLOT = 2


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # bypass_csp: the page's own policy forbids eval, which wait_for_function's predicate needs
            yield browser.new_page(viewport={"width": 420, "height": 640}, bypass_csp=True)
        finally:
            browser.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[World, WalletPage]]:
    start = time.time() - 10
    world = make_world(tmp_path, listing(slot=SLOT, slots=3600, start=start), clock=RealClock())
    alice = world.wallet("alice")
    world.purchase(alice)
    wallet_page = WalletPage(alice).start()
    try:
        yield world, wallet_page
    finally:
        wallet_page.stop()
        world.store.close()


def test_the_wallet_page_renders_and_rotates_the_code(served: tuple[World, WalletPage], page: Page) -> None:
    world, wallet_page = served
    page.goto(wallet_page.url)
    card = page.locator(".card").first
    card.locator(".qr svg").wait_for(timeout=10_000)
    first_t, first_text = card.get_attribute("data-t"), card.get_attribute("data-text")
    assert first_t and first_text and first_text.startswith("QH:")
    assert "show7 · 9f2 (generation 1)" in card.locator("h2").inner_text()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "wallet-page.png"
    card.screenshot(path=str(shot))
    shown_at = time.time()
    first_t, after = card.get_attribute("data-t"), card.get_attribute("data-text")  # a slot may end meanwhile
    assert first_t and after
    image = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
    decoded = [r.text for r in zxingcpp.read_barcodes(image)]
    assert len(decoded) == 1 and decoded[0] in (first_text, after)  # the rendered QR reads back as the code
    assert world.gate().verifier.verify(decoded[0], shown_at).reason is Reason.NONE
    first_text = after

    page.wait_for_function(f"document.querySelector('.card').dataset.t !== '{first_t}'",
                           timeout=(SLOT * 3) * 1000)
    second_t, second_text = card.get_attribute("data-t"), card.get_attribute("data-text")
    assert second_t is not None and int(second_t) > int(first_t)
    assert second_text != first_text and second_text is not None
    assert "s left" in card.locator(".meta").inner_text()
    # the first code is a screenshot by now: a gate two slots later refuses it
    later = time.time() + 2 * SLOT
    assert world.gate().verifier.verify(first_text, later).reason is Reason.STALE_CODE


def test_the_page_answers_errors_as_json(served: tuple[World, WalletPage], page: Page) -> None:
    _world, wallet_page = served
    key = {"X-Wallet-Key": wallet_page.secret}
    missing = page.request.get(wallet_page.base + "code.json?event=show7&ticket=nope", headers=key)
    assert missing.status == 404 and missing.json()["error"] == "not_holder"
    tickets = page.request.get(wallet_page.base + "tickets.json", headers=key)
    assert tickets.json() == [{"event": "show7", "ticket_id": "9f2", "generation": 1}]


def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return exc.code, dict(json.loads(exc.read()))


def test_a_page_the_holder_visits_cannot_read_the_live_code(served: tuple[World, WalletPage]) -> None:
    """DNS rebinding: attacker.example resolves to 127.0.0.1, so its script reaches the wallet page but
    sends its own Host; and without the page's secret (in the fragment of the URL the holder opened) no
    script gets a code, even with the right Host."""
    _world, wallet_page = served
    code = wallet_page.base + "code.json?event=show7&ticket=9f2"
    port = wallet_page.server.server_address[1]
    key = {"X-Wallet-Key": wallet_page.secret}
    for host in ("attacker.example", f"attacker.example:{port}", f"127.0.0.1.nip.io:{port}"):
        assert get(code, {"Host": host, **key}) == (421, {"error": "bad_host"})
    assert get(code, {}) == (401, {"error": "no_key"})
    assert get(wallet_page.base + "tickets.json", {"X-Wallet-Key": "guess"}) == (401, {"error": "no_key"})
    status, answer = get(code, {"Host": f"localhost:{port}", **key})
    assert status == 200 and str(answer["text"]).startswith("QH:")
    assert "#k=" in wallet_page.url and wallet_page.secret not in wallet_page.base
