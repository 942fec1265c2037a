"""The page is readable whole: twelve gates named alike show their whole names, a scan's detail wraps.

A real headless Chromium against a real broker, arbiter, dashboard and gate processes; the checks are the
browser's own layout (an element's scrollWidth against its clientWidth, where its text's box lies), at two
window widths.  Screenshots: artifacts/dashboard-layout-*.png.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.register_assert_rewrite("sync_fixtures", "dashboard_fixtures")

from dashboard_fixtures import browser, gate_card, login, page, shot, start_dashboard, wait_state  # noqa: E402
from playwright.sync_api import Locator, Page, expect  # noqa: E402
from sync_fixtures import Site  # noqa: E402

__all__ = ["browser", "page"]  # fixtures

GATES = [f"gate-north-{n:02d}" for n in range(1, 13)]
WIDTHS = (1600, 1200)

#: for each element: its text, and whether any of it is cut (an ellipsis or overflow: scrollWidth beyond
#: clientWidth) or drawn outside the element or outside its card
CLIPPED = """(els) => els.map((e) => {
  const range = document.createRange();
  range.selectNodeContents(e);
  const box = e.getBoundingClientRect(), text = range.getBoundingClientRect();
  const card = (e.closest('.gate, .card') || document.body).getBoundingClientRect();
  const inside = (inner, outer) => inner.left >= outer.left - 0.5 && inner.right <= outer.right + 0.5;
  const drawn = e.textContent.trim() === "" || inside(text, box);  // (an empty cell draws no text)
  return {text: e.textContent, cut: e.scrollWidth > e.clientWidth + 0.5 || !drawn || !inside(box, card)
          || box.width === 0};
})"""


def clipped(where: Locator) -> list[str]:
    """The texts of the elements of `where` that a person cannot read whole."""
    found: list[dict[str, Any]] = where.evaluate_all(CLIPPED)
    return [f["text"] for f in found if f["cut"]]


def test_twelve_gates_named_alike_show_their_whole_names_and_every_detail_wraps(site: Site, page: Page) -> None:
    site.start_arbiter()
    dashboard = start_dashboard(site)
    tickets = site.mint(2, prefix="n")
    gates = {g: site.start_gate(g) for g in GATES}
    login(page, dashboard.url)
    for g in GATES:
        wait_state(page, g, "online")
    admitted = gates["gate-north-01"].check(tickets[0])
    again = gates["gate-north-12"].check(tickets[0])  # ALREADY_USED, "first at gate-north-01 HH:MM:SS"
    bad = gates["gate-north-07"].check("not a ticket")  # INVALID malformed, with the parser's words
    assert (admitted["outcome"], again["outcome"], bad["outcome"]) == ("ADMIT", "ALREADY_USED", "INVALID")
    gates["gate-north-02"].kill()  # its state reads "offline (lost)": the longest beside a name
    wait_state(page, "gate-north-02", "offline", timeout=15)
    for decision in (admitted, again, bad):
        page.locator(f'#feed tr[data-scan="{decision["scan_id"]}"]').wait_for(timeout=5000)

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        names = page.locator("#gates .gate .name")
        expect(names).to_have_text(GATES)  # every card, in order, with its whole id as its text
        assert clipped(names) == [], f"gate names cut at {width} px"
        assert clipped(page.locator("#gates .gate .state")) == []
        expect(gate_card(page, "gate-north-02").locator(".state")).to_have_text("offline (lost)")

        feed = page.locator("#feed")
        detail = feed.locator(f'tr[data-scan="{bad["scan_id"]}"] td').nth(4)
        expect(detail).to_have_text(f"malformed · {bad['detail']}")
        expect(feed.locator(f'tr[data-scan="{again["scan_id"]}"] td').nth(4)).to_contain_text(
            "first at gate-north-01")
        assert clipped(feed.locator("td")) == [], f"live scans cut at {width} px"
        shot(page, f"layout-{width}")

    page.fill("#lookup-ticket", "n0")
    page.click("#lookup-form button")
    history = page.locator("#lookup tbody td")
    expect(page.locator("#lookup tbody tr")).to_have_count(3)  # ADMIT, its redemption, ALREADY_USED
    expect(page.locator("#lookup")).to_contain_text("first used at gate-north-01")
    assert clipped(history) == []
