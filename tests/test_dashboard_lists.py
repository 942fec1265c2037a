"""Check-in lists on the dashboard, in a real headless Chromium: inside counts per area, a list conflict, refusals
in words (docs/dashboard.md), against a real broker, arbiter, gate processes serving a list and the dashboard.

Screenshots: artifacts/dashboard-lists*.png.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.register_assert_rewrite("sync_fixtures", "dashboard_fixtures")

from dashboard_fixtures import ADMIN, DashboardProc, browser, login, page, shot, start_dashboard, wait_state  # noqa: E402
from playwright.sync_api import Page, expect  # noqa: E402
from sync_fixtures import GateProc, Site, TcpProxy  # noqa: E402

from gate.rules import CheckinList, sign  # noqa: E402

__all__ = ["browser", "page"]  # fixtures


def serve(site: Site, lst: CheckinList) -> Path:
    """Sign `lst` with the site's issuer key into the arbiter's lists folder; the file (for the gates too)."""
    folder = site.arbiter_home / "lists"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{lst.name}.list.json"
    path.write_text(json.dumps(sign(lst, site.key)))
    return path


def list_gate(site: Site, gate_id: str, path: Path, direction: str = "in", **extra: str) -> GateProc:
    return site.start_gate(gate_id, QRGATE_GATE_LIST=str(path), QRGATE_GATE_DIRECTION=direction, **extra)


def arbiter_inside(site: Site) -> dict[str, tuple[int, int]]:
    shown = site.gate_cli("arbiter", "lists", "inside", "--arbiter", "--json")
    assert shown.returncode == 0, shown.stderr
    return {d["list"]: (d["inside"], d["entries"]) for d in map(json.loads, shown.stdout.splitlines())}


def page_areas(page: Page) -> dict[str, tuple[int, int]]:
    cells = page.locator("#areas tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.list, r.querySelector('.inside').textContent,"
        " r.querySelector('.admitted').textContent])")
    return {name: (int(inside), int(admitted)) for name, inside, admitted in cells}


def test_inside_counts_a_list_conflict_and_refusals_in_words(site: Site, page: Page) -> None:
    path = serve(site, CheckinList("stadium", "show7", reentry=True))
    proxy = TcpProxy(site.broker.port)
    arbiter = site.start_arbiter()
    dashboard = start_dashboard(site)
    a_in, a_out = list_gate(site, "a-in", path), list_gate(site, "a-out", path, "out")
    b_in = list_gate(site, "b-in", path, broker_url=proxy.url)
    login(page, dashboard.url)
    for g in ("a-in", "a-out", "b-in"):
        wait_state(page, g, "online")
    p0, p1, p2 = site.mint(3, "p")
    proxy.cut()  # side b loses the arbiter (and the stream: it will not hear of p0's entry at a-in)
    wait_state(page, "b-in", "offline", timeout=15)

    assert [a_in.check(p)["outcome"] for p in (p0, p1, p2)] == ["ADMIT"] * 3
    assert a_out.check(p1)["reason"] == "exit"
    again = a_in.check(p0)  # no exit since: refused, and the page says why in words
    assert (again["outcome"], again["reason"], again["provisional"]) == ("ALREADY_USED", "already_inside", False)
    row = page.locator(f'#feed tr[data-scan="{again["scan_id"]}"]')
    row.wait_for(timeout=2000)
    expect(row).to_contain_text("already inside")
    expect(row).not_to_contain_text("already_inside")
    expect(page.locator('#reasons-chart text[data-reason="already_inside"]')).to_have_text("already inside")
    expect(page.locator('#areas tr[data-list="stadium"] .inside')).to_have_text("2")  # p0, p2 (p1 left)

    late = b_in.check(p0)  # by its own copy: the arbiter would have refused it
    assert (late["outcome"], late["provisional"]) == ("ADMIT", True)
    proxy.heal()

    conflict = page.locator('#conflicts .conflict.list[data-ticket="p0"]')
    conflict.wait_for(timeout=20_000)
    expect(conflict.locator(".tag")).to_have_text("LIST CONFLICT")
    expect(conflict).to_contain_text("show7 / p0 on stadium: already inside")
    expect(conflict.locator(".words")).to_have_text(
        "entered at b-in while already inside since a-in (the gate was offline)")
    assert conflict.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"  # highlighted
    expect(page.locator('#areas tr[data-list="stadium"] .conflicts')).to_have_text("1")
    expected = arbiter_inside(site)
    assert expected == {"stadium": (2, 4)}  # p0's late entry spent one: entries 2 + 1 + 1
    expect(page.locator('#areas tr[data-list="stadium"] .admitted')).to_have_text("4")
    assert page_areas(page) == expected
    status, state = dashboard.api("/api/state")
    assert status == 200 and [(a["list"], a["inside"], a["admitted"], a["conflicts"]) for a in state["areas"]] == [
        ("stadium", 2, 4, 1)]
    assert [c["summary"] for c in state["conflicts"] if c["kind"] == "list"] == [
        "entered at b-in while already inside since a-in (the gate was offline)"]
    page.fill("#lookup-ticket", "p0")
    page.click("#lookup-form button")
    expect(page.locator("#lookup tr.conflict-row")).to_contain_text("LIST CONFLICT")
    shot(page, "lists")

    # a restarted dashboard shows the same, from its history alone (the arbiter is gone: no catch-up)
    arbiter.kill()
    dashboard.kill()
    restarted = DashboardProc(["dashboard", "--gate-id", ADMIN, "--port", "0"],
                              site.env(site.root / "dashboard", None, QRGATE_DASHBOARD_CAPACITY="500"))
    site.procs.append(restarted)
    line = restarted.line(20)
    assert line.startswith("dashboard ready on "), line
    restarted.url = line.split()[3]
    login(page, restarted.url)
    expect(page.locator('#areas tr[data-list="stadium"] .inside')).to_have_text("2", timeout=10_000)
    assert page_areas(page) == expected
    expect(page.locator('#conflicts .conflict.list[data-ticket="p0"] .words')).to_have_text(
        re.compile("^entered at b-in while already inside since a-in"))
    shot(page, "lists-restarted")
    proxy.close()


def test_an_area_with_a_capacity_shows_inside_of_capacity_and_full(site: Site, page: Page) -> None:
    """The page showed the tickets inside an area but not its list's capacity, nor that it was full."""
    path = serve(site, CheckinList("hall", "show7", entries=0, capacity=2))
    site.start_arbiter()
    dashboard = start_dashboard(site)
    hall_in, hall_out = list_gate(site, "hall-in", path), list_gate(site, "hall-out", path, "out")
    login(page, dashboard.url)
    for g in ("hall-in", "hall-out"):
        wait_state(page, g, "online")
    row = page.locator('#areas tr[data-list="hall"]')
    expect(row.locator(".inside")).to_have_text("0 / 2", timeout=10_000)  # from the list on the stream
    h1, h2, h3 = site.mint(3, "h")
    assert [hall_in.check(t)["outcome"] for t in (h1, h2)] == ["ADMIT"] * 2
    expect(row.locator(".inside")).to_have_text("2 / 2FULL")
    expect(row).to_have_class(re.compile(r"\bfull\b"))
    expect(row.locator(".tag.full")).to_be_visible()
    assert hall_in.check(h3)["reason"] == "area_full"
    _status, state = dashboard.api("/api/state")
    assert [(a["list"], a["inside"], a["capacity"], a["full"]) for a in state["areas"]] == [("hall", 2, 2, True)]
    shot(page, "lists-full")
    assert hall_out.check(h1)["reason"] == "exit"
    expect(row.locator(".inside")).to_have_text("1 / 2")
    expect(row).not_to_have_class(re.compile(r"\bfull\b"))
