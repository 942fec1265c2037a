"""Real parts for the dashboard tests: a `gate dashboard` process and headless Chromium (Debian's, via Playwright).

Builds on sync_fixtures (mosquitto on a free port, real arbiter and gate
processes).  The browser is /usr/bin/chromium driven by Playwright; nothing is
downloaded.  Screenshots go to artifacts/ (gitignored) for people to look at.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sync_fixtures import Proc, Site

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
PASSWORD = "correct horse battery staple"
ADMIN = "admin"  # the dashboard's MQTT id (gate.id): its requests go to qrgate/revoke/admin etc.


class DashboardProc(Proc):
    """A running `gate dashboard`; `url` is where its page is."""

    url = ""

    def api(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """GET (or POST `body` as JSON) one API route; (status, JSON answer)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            return exc.code, dict(json.loads(exc.read()))


def start_dashboard(site: Site, *, capacity: int = 500, broker_url: str | None = None, **extra: str) -> DashboardProc:
    home = site.root / "dashboard"
    home.mkdir(parents=True, exist_ok=True)
    (home / "admin.password").write_text(PASSWORD + "\n")
    settings = {"QRGATE_DASHBOARD_ADMIN_PASSWORD_FILE": "admin.password", "QRGATE_DASHBOARD_CAPACITY": str(capacity),
                **extra}
    env = site.env(home, broker_url, **settings)
    proc = DashboardProc(["dashboard", "--gate-id", ADMIN, "--port", "0"], env)
    site.procs.append(proc)
    line = proc.line(20)
    assert line.startswith("dashboard ready on "), line
    proc.url = line.split()[3]
    return proc


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (1600x1000); the test fails if the page's script throws."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    errors: list[str] = []
    try:
        p = context.new_page()
        p.on("pageerror", lambda exc: errors.append(str(exc)))
        yield p
    finally:
        context.close()
    assert not errors, f"the page's script failed: {errors}"


def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as artifacts/dashboard-NAME.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def gate_card(page: Page, gate_id: str) -> Any:
    return page.locator(f'.gate[data-gate="{gate_id}"]')


def wait_state(page: Page, gate_id: str, state: str, timeout: float = 20.0) -> None:
    page.wait_for_selector(f'.gate[data-gate="{gate_id}"][data-state="{state}"]', timeout=timeout * 1000)
