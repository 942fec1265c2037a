"""TLS with the venue's generated CA end to end: the real `gate arbiter` and `gate check` processes run from
their provisioned bundles (config, password, client certificate, verification keys) on the real broker
started from the generated config, and a gate claims through the arbiter."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.register_assert_rewrite("deploy_fixtures")
pytest_plugins = ["deploy_fixtures"]

from conftest import ROOT, gate_env  # noqa: E402
from deploy_fixtures import Site  # noqa: E402
from sync_fixtures import FAST, Proc  # noqa: E402

from gate.ticket import Ticket  # noqa: E402


def bundle_env(site: Site, user: str, state: Path) -> dict[str, str]:
    """Run from the bundle exactly as provisioned; only the store moves from /var/lib to the test's folder."""
    return gate_env(site.bundle(user), QRGATE_STORE_PATH=str(state / f"{user}.db"),
                    QRGATE_SYNC_ARBITER_DB=str(state / "arbiter.db"), **FAST)


def check(site: Site, user: str, state: Path, ticket: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-m", "gate.cli", "check", "--json", ticket], capture_output=True,
                            text=True, env=bundle_env(site, user, state), cwd=ROOT, timeout=120)
    assert "Traceback" not in result.stderr and result.stdout, result.stderr
    return dict(json.loads(result.stdout.splitlines()[0]))


def test_a_gate_claims_through_the_arbiter_over_tls(site: Site, tmp_path: Path) -> None:
    state = tmp_path / "state"
    arbiter = Proc(["arbiter"], bundle_env(site, "arbiter", state))
    try:
        assert arbiter.line(30).startswith("arbiter ready on mqtts://localhost:"), arbiter.proc.stderr
        ticket = site.key.sign(Ticket(event="show7", ticket_id="9f2", seat="12B"))
        first = check(site, "gate-north-1", state, ticket)
        assert (first["outcome"], first["gate_id"], first["provisional"]) == ("ADMIT", "gate-north-1", False)
        # gate-south-1 has never seen the ticket: only the arbiter, over TLS, can tell it where it was used
        second = check(site, "gate-south-1", state, ticket)
        assert (second["outcome"], second["first_gate"], second["provisional"]) == (
            "ALREADY_USED", "gate-north-1", False)
    finally:
        arbiter.kill()
    with sqlite3.connect(state / "arbiter.db") as db:
        assert db.execute("SELECT ticket_id, gate_id FROM claims").fetchall() == [("9f2", "gate-north-1")]
    log = site.broker.log()
    for user in ("arbiter", "gate-north-1", "gate-south-1"):
        assert f"u'{user}'" in log, f"{user} never connected"
