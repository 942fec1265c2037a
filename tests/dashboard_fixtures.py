"""Real parts for the dashboard tests: a `gate dashboard` process and headless Chromium (Debian's, via Playwright).

Builds on sync_fixtures (mosquitto on a free port, real arbiter and gate
processes).  The browser is /usr/bin/chromium driven by Playwright; nothing is
downloaded.  Screenshots go to artifacts/ (gitignored) for people to look at.
"""

from __future__ import annotations

import http.cookiejar
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, gate_env
from playwright.sync_api import Browser, Page, sync_playwright
from sync_fixtures import Proc, Site

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
PASSWORD = "correct horse battery staple"
ADMIN_ACCOUNT = "alice"  # the dashboard account of the admin in the tests
ADMIN = "admin"  # the dashboard's MQTT id (gate.id): its requests go to qrgate/revoke/admin etc.


class Client:
    """One logged-in (or not) HTTP client of a dashboard: its own cookie jar and CSRF token."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        self.url = url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        handlers: list[Any] = [urllib.request.HTTPCookieProcessor(self.jar)]
        if context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)
        self.csrf = ""

    def login(self, name: str, password: str = PASSWORD) -> tuple[int, dict[str, Any]]:
        status, answer = self.call("/api/login", {"name": name, "password": password})
        self.csrf = str(answer.get("csrf", ""))
        return status, answer

    def call(self, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
             ) -> tuple[int, dict[str, Any]]:
        """GET (or POST `body` as JSON, with the CSRF token) one route; (status, JSON answer)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers={
            "Content-Type": "application/json", **({"X-CSRF-Token": self.csrf} if self.csrf else {}),
            **(headers or {})})
        try:
            with self.opener.open(request, timeout=15) as response:
                return response.status, dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            return exc.code, dict(json.loads(exc.read() or b"{}"))


class DashboardProc(Proc):
    """A running `gate dashboard`; `url` is where its page is; `api` is the admin alice, logged in."""

    url = ""
    _admin: Client | None = None

    def client(self, name: str | None = None, password: str = PASSWORD) -> Client:
        c = Client(self.url)
        if name is not None:
            status, answer = c.login(name, password)
            assert status == 200, answer
        return c

    def api(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        if self._admin is None:
            self._admin = self.client(ADMIN_ACCOUNT)
        return self._admin.call(path, body)


def add_account(home: Path, name: str, role: str, password: str = PASSWORD) -> None:
    """`gate dashboard user add NAME --role ROLE`, the password on stdin (as an operator would pipe it)."""
    done = subprocess.run([sys.executable, "-m", "gate.cli", "dashboard", "user", "add", name, "--role", role],
                          input=password + "\n", capture_output=True, text=True, cwd=ROOT, env=gate_env(home),
                          timeout=60)
    assert done.returncode == 0, done.stderr


def start_dashboard(site: Site, *, capacity: int = 500, broker_url: str | None = None,
                    accounts: dict[str, str] | None = None, **extra: str) -> DashboardProc:
    """A dashboard with the accounts given (default: alice, admin, and victor, viewer; password PASSWORD)."""
    home = site.root / "dashboard"
    home.mkdir(parents=True, exist_ok=True)
    for name, role in (accounts if accounts is not None else {ADMIN_ACCOUNT: "admin", "victor": "viewer"}).items():
        add_account(home, name, role)
    settings = {"QRGATE_DASHBOARD_CAPACITY": str(capacity), **extra}
    env = site.env(home, broker_url, **settings)
    proc = DashboardProc(["dashboard", "--gate-id", ADMIN, "--port", "0"], env)
    site.procs.append(proc)
    line = proc.line(20)
    assert line.startswith("dashboard ready on "), line
    proc.url = line.split()[3]
    return proc


def login(page: Page, url: str, name: str = "alice", password: str = PASSWORD) -> None:
    """Log in through the login form, as a person would, and wait for the page."""
    page.goto(url.rstrip("/") + "/login")
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_url(url.rstrip("/") + "/", timeout=15_000)
    page.locator("#account").filter(has_text=name).wait_for(timeout=15_000)


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
