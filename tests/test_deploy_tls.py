"""TLS with the venue's generated CA end to end: the real `gate arbiter` and `gate check` processes run from
their provisioned bundles (config, password, client certificate, verification keys) on the real broker
started from the generated config, and a gate claims through the arbiter."""

from __future__ import annotations

import http.client
import json
import sqlite3
import ssl
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

pytest.register_assert_rewrite("deploy_fixtures")
pytest_plugins = ["deploy_fixtures"]

from conftest import ROOT, gate_env  # noqa: E402
from dashboard_fixtures import Client  # noqa: E402
from deploy_fixtures import Site  # noqa: E402
from sync_fixtures import FAST, Proc  # noqa: E402

from gate.ticket import Ticket  # noqa: E402


def bundle_env(provisioned: Site, user: str, state: Path) -> dict[str, str]:
    """Run from the bundle exactly as provisioned; only the store moves from /var/lib to the test's folder."""
    return gate_env(provisioned.bundle(user), QRGATE_STORE_PATH=str(state / f"{user}.db"),
                    QRGATE_SYNC_ARBITER_DB=str(state / "arbiter.db"), **FAST)


def cli(provisioned: Site, user: str, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "gate.cli", *args], capture_output=True, text=True,
                            env=bundle_env(provisioned, user, state), cwd=ROOT, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def check(provisioned: Site, user: str, state: Path, ticket: str) -> dict[str, object]:
    result = cli(provisioned, user, state, "check", "--json", ticket)
    assert result.stdout, result.stderr
    return dict(json.loads(result.stdout.splitlines()[0]))


def test_a_gate_claims_through_the_arbiter_over_tls(provisioned: Site, tmp_path: Path) -> None:
    state = tmp_path / "state"
    arbiter = Proc(["arbiter"], bundle_env(provisioned, "arbiter", state))
    try:
        assert arbiter.line(30).startswith("arbiter ready on mqtts://localhost:"), arbiter.proc.stderr
        ticket = provisioned.key.sign(Ticket(event="show7", ticket_id="9f2", seat="12B"))
        first = check(provisioned, "gate-north-1", state, ticket)
        assert (first["outcome"], first["gate_id"], first["provisional"]) == ("ADMIT", "gate-north-1", False)
        # gate-south-1 has never seen the ticket: only the arbiter, over TLS, can tell it where it was used
        second = check(provisioned, "gate-south-1", state, ticket)
        assert (second["outcome"], second["first_gate"], second["provisional"]) == (
            "ALREADY_USED", "gate-north-1", False)
        # revoking is the admin credential's: the dashboard's is confirmed by the arbiter, a gate's never arrives
        admin = cli(provisioned, "dashboard", state, "revoke", "t2", "--event", "show7", "--reason", "refunded")
        assert admin.returncode == 0 and "distributed by the arbiter" in admin.stdout, admin.stderr
        rogue = cli(provisioned, "gate-south-1", state, "revoke", "t3", "--event", "show7")
        assert rogue.returncode == 1 and "did not confirm" in rogue.stderr
    finally:
        arbiter.kill()
    with sqlite3.connect(state / "arbiter.db") as db:
        assert db.execute("SELECT ticket_id, gate_id FROM claims").fetchall() == [("9f2", "gate-north-1")]
        assert [r[0] for r in db.execute("SELECT ticket_id FROM revoked")] == ["t2"]
    log = provisioned.broker.log()
    for user in ("arbiter", "gate-north-1", "gate-south-1", "dashboard"):
        assert f"u'{user}'" in log, f"{user} never connected"


def test_the_dashboard_runs_from_its_bundle_over_https_with_the_venue_ca(provisioned: Site, tmp_path: Path) -> None:
    bundle = provisioned.bundle("dashboard")
    env = {**bundle_env(provisioned, "dashboard", tmp_path), "QRGATE_DASHBOARD_PORT": "0",
           "QRGATE_DASHBOARD_HISTORY_DB": str(tmp_path / "dashboard.db")}
    dashboard = Proc(["dashboard"], env)
    try:
        line = dashboard.line(30)
        assert line.startswith("dashboard ready on https://127.0.0.1:") and "1 accounts" in line, line
        assert "mqtts://localhost:" in line
        port = int(line.split()[3].rsplit(":", 1)[1].strip("/"))
        venue_ca = ssl.create_default_context(cafile=str(bundle / "tls" / "ca.crt"))
        client = Client(f"https://localhost:{port}", venue_ca)  # the certificate names localhost
        assert client.call("/api/state")[0] == 401
        status, answer = client.login("admin", (bundle / "admin.password").read_text().strip())
        assert (status, answer["role"]) == (200, "admin"), answer
        cookie = next(iter(client.jar))
        assert cookie.name == "__Host-qrgate" and cookie.secure and cookie.has_nonstandard_attr("HttpOnly")
        assert client.call("/api/state")[0] == 200
        with pytest.raises(urllib.error.URLError) as refused:  # a client that does not trust the venue CA
            Client(f"https://localhost:{port}", ssl.create_default_context()).call("/api/state")
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
        with pytest.raises((http.client.HTTPException, ConnectionError, urllib.error.URLError)):
            Client(f"http://127.0.0.1:{port}").call("/api/state")  # no plain HTTP on the HTTPS port
    finally:
        dashboard.kill()


def test_a_dashboard_on_a_network_address_without_a_certificate_does_not_start(provisioned: Site,
                                                                               tmp_path: Path) -> None:
    env = {**bundle_env(provisioned, "dashboard", tmp_path), "QRGATE_DASHBOARD_PORT": "0",
           "QRGATE_DASHBOARD_CERT_FILE": "", "QRGATE_DASHBOARD_HISTORY_DB": str(tmp_path / "dashboard.db")}
    dashboard = Proc(["dashboard", "--host", "0.0.0.0"], env)
    assert dashboard.finish(30) == 2
    assert "not a loopback address" in dashboard.stderr and "Traceback" not in dashboard.stderr
