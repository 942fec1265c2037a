"""The dashboard in a real headless Chromium, against a real broker, arbiter, dashboard and gate processes.

Screenshots: artifacts/dashboard-*.png.
"""

from __future__ import annotations

import re
import time

import pytest

pytest.register_assert_rewrite("sync_fixtures", "dashboard_fixtures")

from dashboard_fixtures import browser, gate_card, login, page, shot, start_dashboard, wait_state  # noqa: E402
from playwright.sync_api import Page, expect  # noqa: E402
from sync_fixtures import Site, TcpProxy, rows, wait_until  # noqa: E402

__all__ = ["browser", "page"]  # fixtures


def test_a_scan_at_a_gate_appears_on_the_page_within_a_second(site: Site, page: Page) -> None:
    site.start_arbiter()
    dashboard = start_dashboard(site)
    tickets = site.mint(3)
    gates = [site.start_gate(f"gate-{n}") for n in (1, 2)]
    login(page, dashboard.url)
    for n in (1, 2):
        wait_state(page, f"gate-{n}", "online")

    first = gates[0].check(tickets[0])
    page.locator(f'#feed tr[data-scan="{first["scan_id"]}"]').wait_for(timeout=1000)
    again = gates[1].check(tickets[0])
    row = page.locator(f'#feed tr[data-scan="{again["scan_id"]}"]')
    row.wait_for(timeout=1000)

    assert (first["outcome"], again["outcome"]) == ("ADMIT", "ALREADY_USED")
    expect(row).to_have_attribute("data-outcome", "ALREADY_USED")
    expect(row).to_contain_text("gate-2")
    expect(row).to_contain_text("first at gate-1")
    expect(page.locator("#cap-admitted")).to_have_text("1")
    expect(gate_card(page, "gate-1").locator(".nums")).to_contain_text("in 1")
    expect(gate_card(page, "gate-2").locator(".nums")).to_contain_text("out 1")
    assert gates[0].check("not a ticket")["outcome"] == "INVALID"
    expect(page.locator("#feed tr").first).to_have_attribute("data-outcome", "INVALID")

    page.fill("#lookup-ticket", "t0")
    page.click("#lookup-form button")
    history = page.locator("#lookup tbody tr")
    expect(history).to_have_count(3)  # ADMIT at gate-1, its redemption on the stream, ALREADY_USED at gate-2
    expect(page.locator("#lookup")).to_contain_text("redeemed by gate-1")
    shot(page, "scan")


def test_a_killed_gate_shows_offline(site: Site, page: Page) -> None:
    site.start_arbiter()
    dashboard = start_dashboard(site)
    gates = {g: site.start_gate(g) for g in ("gate-1", "gate-2", "gate-3")}
    login(page, dashboard.url)
    for g in gates:
        wait_state(page, g, "online")

    gates["gate-2"].kill()  # SIGKILL: the broker publishes its last will
    wait_state(page, "gate-2", "offline", timeout=15)
    expect(gate_card(page, "gate-2").locator(".state")).to_have_text("offline (lost)")
    for g in ("gate-1", "gate-3"):
        expect(gate_card(page, g)).to_have_attribute("data-state", "online")
    expect(page.locator("#gate-summary")).to_contain_text("1 offline")
    shot(page, "gate-offline")


def test_a_double_entry_after_a_partition_appears_highlighted(site: Site, page: Page) -> None:
    proxy = TcpProxy(site.broker.port)
    site.start_arbiter()
    dashboard = start_dashboard(site)
    tickets = site.mint(6, prefix="d")
    a = site.start_gate("gate-a")
    b = site.start_gate("gate-b", broker_url=proxy.url)
    login(page, dashboard.url)
    wait_state(page, "gate-a", "online")
    wait_state(page, "gate-b", "online")

    proxy.cut()
    wait_state(page, "gate-b", "offline", timeout=15)
    at_b = b.check(tickets[0])  # admitted offline, provisionally
    at_a = a.check(tickets[0])  # the arbiter has not heard of gate-b's: admitted too
    assert (at_a["outcome"], at_b["outcome"], at_b["provisional"]) == ("ADMIT", "ADMIT", True)
    expect(page.locator("#conflicts .conflict")).to_have_count(0)
    proxy.heal()

    conflict = page.locator('#conflicts .conflict.open[data-ticket="d0"]')
    conflict.wait_for(timeout=20_000)
    expect(conflict).to_contain_text("DOUBLE ENTRY")
    who = conflict.locator(".who span")
    expect(who).to_have_text(["first", re.compile(r"^gate-a at "), "again", re.compile(r"^gate-b at .*offline"),
                              "found", re.compile("by the arbiter")])
    assert conflict.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"  # highlighted
    expect(page.locator("#cap-double")).to_have_text("1")
    wait_state(page, "gate-b", "online")

    page.fill("#lookup-ticket", "d0")
    page.click("#lookup-form button")
    expect(page.locator('#lookup tr[data-kind="conflict"]')).to_contain_text("DOUBLE ENTRY")
    held = rows(site.arbiter_db(), "SELECT first_gate, late_gate FROM conflicts WHERE ticket_id = 'd0'")
    assert held == [("gate-a", "gate-b")]
    shot(page, "double-entry")
    proxy.close()


def admin_action(page: Page, action: str, ticket: str, *, event: str = "show7", reason: str = "refunded") -> str:
    page.select_option("#admin-action", action)
    page.fill("#admin-event", event)
    page.fill("#admin-ticket", ticket)
    page.fill("#admin-reason", reason)
    result = page.locator("#admin-result")
    result.evaluate("e => { e.textContent = ''; e.dataset.answer = ''; }")
    page.click("#admin-submit")
    expect(result).to_have_attribute("data-answer", re.compile(r"."), timeout=15_000)
    return str(result.get_attribute("data-answer"))


def test_revoking_a_ticket_from_the_page_makes_a_gate_reject_it(site: Site, page: Page) -> None:
    site.start_arbiter()
    dashboard = start_dashboard(site)
    tickets = site.mint(2, prefix="r")
    gate = site.start_gate("gate-1")
    login(page, dashboard.url)
    wait_state(page, "gate-1", "online")

    assert admin_action(page, "revoke", "r0") == "revoked"
    expect(page.locator("#admin-result")).to_contain_text("Done: r0 revoked")
    expect(page.locator("#admin-log")).to_contain_text("show7/r0 by alice: refunded")  # the person, as for overrides
    expect(page.locator("#admin-log")).not_to_contain_text("by admin")  # not the dashboard's MQTT id

    decision = gate.check(tickets[0])
    assert (decision["outcome"], decision["reason"]) == ("REVOKED", "revoked")
    assert gate.check(tickets[1])["outcome"] == "ADMIT"
    row = page.locator(f'#feed tr[data-scan="{decision["scan_id"]}"]')
    row.wait_for(timeout=2000)
    expect(row).to_have_attribute("data-outcome", "REVOKED")
    wait_until(lambda: rows(site.gate_db("gate-1"), "SELECT count(*) FROM revoked WHERE ticket_id = 'r0'") == [(1,)],
               10, "the revocation in the gate's store")
    audit = dashboard.api("/api/ticket?ticket=r0")[1]["rows"]
    assert [r["kind"] for r in audit if r["source"] == "dashboard"] == ["revoke"]
    page.fill("#lookup-ticket", "r0")
    page.click("#lookup-form button")
    expect(page.locator('#lookup tr[data-kind="revocation"]')).to_contain_text("revoked by alice: refunded")
    expect(page.locator('#lookup tr[data-kind="revoke"]')).to_contain_text("revoke by alice")
    shot(page, "revoke")


def test_the_page_survives_a_broker_restart(site: Site, page: Page) -> None:
    """The dashboard losing the broker says so, and that it no longer knows the gates' states (grey
    "unknown", when each was last seen), never that they are offline: the broker's shutdown sends their last
    wills to whoever is still connected, the dashboard among them.  Back, the states come from fresh statuses."""
    site.start_arbiter()
    dashboard = start_dashboard(site)
    tickets = site.mint(20, prefix="b")
    names = ("gate-1", "gate-2", "gate-3")
    gate, *_ = [site.start_gate(g) for g in names]
    login(page, dashboard.url)
    for g in names:
        wait_state(page, g, "online")
    expect(page.locator("#stale")).to_be_hidden()
    expect(page.locator("#link")).to_have_text("LIVE")

    site.broker.stop()
    expect(page.locator("#stale")).to_be_visible(timeout=15_000)
    expect(page.locator("#stale")).to_contain_text(
        re.compile(r"dashboard is disconnected from the broker mqtt://127\.0\.0\.1:\d+ since \d\d:\d\d:\d\d"))
    expect(page.locator("#link")).to_have_text("STALE: dashboard disconnected")
    expect(page.locator("body")).to_have_class("stale")
    time.sleep(1.5)  # any last will the shutdown delivered has been pushed by now
    cards = page.locator("#gates .gate")
    expect(cards).to_have_count(3)
    for g in names:
        card = gate_card(page, g)
        expect(card).to_have_attribute("data-state", "unknown")
        expect(card.locator(".state")).to_have_text("unknown")
        expect(card.locator(".meta")).to_contain_text("last seen")
        expect(card.locator(".ago")).to_have_text(re.compile(r"^(just now|\d+ s ago)$"))
        assert card.evaluate("e => getComputedStyle(e.querySelector('.state')).color") != "rgb(255, 93, 93)"  # red
    expect(page.locator(".gate.offline")).to_have_count(0)
    expect(page.locator("#gates")).not_to_contain_text(re.compile("offline", re.I))
    expect(page.locator("#gates-pill")).to_have_text("3 gates: state unknown (dashboard disconnected)")
    expect(page.locator("#arbiter")).to_contain_text("arbiter unknown")
    shot(page, "broker-down")

    site.broker.start()
    expect(page.locator("#stale")).to_be_hidden(timeout=20_000)
    expect(page.locator("#link")).to_have_text("LIVE")
    for g in names:  # each from its own status once it is back (the restarted broker kept no retained one)
        wait_state(page, g, "online", timeout=30)
    for ticket in tickets:  # until the gate has its own link back (its scans are dropped until then)
        decision = gate.check(ticket)
        if not decision["provisional"]:
            break
        time.sleep(0.5)
    assert decision["outcome"] == "ADMIT" and not decision["provisional"]
    page.locator(f'#feed tr[data-scan="{decision["scan_id"]}"]').wait_for(timeout=2000)
    shot(page, "broker-back")


def test_when_only_the_dashboard_loses_the_broker_the_gates_come_back_from_their_retained_statuses(
        site: Site, page: Page) -> None:
    proxy = TcpProxy(site.broker.port)
    site.start_arbiter()
    dashboard = start_dashboard(site, broker_url=proxy.url)  # only the dashboard goes through the proxy
    gates = {g: site.start_gate(g) for g in ("gate-1", "gate-2")}
    login(page, dashboard.url)
    for g in gates:
        wait_state(page, g, "online")

    proxy.cut()
    expect(page.locator("#link")).to_have_text("STALE: dashboard disconnected", timeout=15_000)
    for g in gates:  # they are fine; the dashboard cannot tell
        wait_state(page, g, "unknown", timeout=5)
        expect(gate_card(page, g)).to_have_attribute("data-last-state", "online")
    gates["gate-2"].kill()  # while the dashboard is away: the broker keeps its last will, retained
    time.sleep(1)
    proxy.heal()

    expect(page.locator("#link")).to_have_text("LIVE", timeout=30_000)
    wait_state(page, "gate-1", "online")
    wait_state(page, "gate-2", "offline")
    expect(gate_card(page, "gate-2").locator(".state")).to_have_text("offline (lost)")
    expect(page.locator("#gates-pill")).to_have_text("1 of 2 gates not online: gate-2")
    shot(page, "dashboard-reconnected")
    proxy.close()


def test_the_page_needs_a_login_and_a_viewer_cannot_act(site: Site, page: Page) -> None:
    dashboard = start_dashboard(site)
    page.goto(dashboard.url)
    page.wait_for_url(dashboard.url + "login")  # no session: the login form, and nothing else
    page.fill("#login-name", "victor")
    page.fill("#login-password", "not his password")
    page.click("#login-submit")
    expect(page.locator("#login-result")).to_have_attribute("data-answer", "denied")
    login(page, dashboard.url, "victor")
    expect(page.locator("#account")).to_have_text("victor (viewer)")
    expect(page.locator("#admin-submit")).to_be_disabled()
    page.click("#logout")
    page.wait_for_url(dashboard.url + "login")
    page.goto(dashboard.url)
    page.wait_for_url(dashboard.url + "login")  # the session ended with the logout
    shot(page, "login")
