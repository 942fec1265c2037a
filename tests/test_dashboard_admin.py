"""Admin overrides through the dashboard's API: they need an admin account, reach every gate, and are audited
under the logged-in account."""

from __future__ import annotations

import json

import pytest

pytest.register_assert_rewrite("sync_fixtures", "dashboard_fixtures")

from dashboard_fixtures import start_dashboard  # noqa: E402
from sync_fixtures import Proc, Site, Watcher, rows, wait_until  # noqa: E402


def override(action: str, ticket: str, **extra: str) -> dict[str, str]:
    return {"action": action, "event": "show7", "ticket": ticket, "reason": f"{action} {ticket}", **extra}


def test_overrides_need_an_admin_reach_every_gate_and_are_audited(site: Site) -> None:
    site.start_arbiter()
    dashboard = start_dashboard(site)
    tickets = {t: text for t, text in zip(("o0", "o1", "o2"), site.mint(3, prefix="o"), strict=True)}
    watcher = Watcher(site.broker)
    g1, g2 = site.start_gate("gate-1"), site.start_gate("gate-2")
    for g in ("gate-1", "gate-2"):
        wait_until(lambda g=g: (watcher.last(f"qrgate/status/{g}") or {}).get("state") == "online", 20, f"{g} online")

    assert g1.check(tickets["o0"])["outcome"] == "ADMIT"
    viewer = dashboard.client("victor")
    status, answer = viewer.call("/api/override", override("unredeem", "o0"))
    assert (status, answer["answer"]) == (403, "denied")
    assert g2.check(tickets["o0"])["outcome"] == "ALREADY_USED"  # nothing changed

    status, answer = dashboard.api("/api/override", override("unredeem", "o0"))
    assert (status, answer["ok"], answer["answer"]) == (200, True, "released"), answer
    for g in ("gate-1", "gate-2"):  # each gate applies the release from the stream (gate-2 answers from its copy)
        wait_until(lambda g=g: rows(site.gate_db(g), "SELECT count(*) FROM redeemed WHERE ticket_id = 'o0'") == [(0,)],
                   10, f"{g} to drop its redemption of o0")
    assert g2.check(tickets["o0"])["outcome"] == "ADMIT"  # the holder may come in again
    status, answer = dashboard.api("/api/override", override("unredeem", "o1"))
    assert (status, answer["answer"]) == (409, "invalid")  # never redeemed

    status, answer = dashboard.api("/api/override", override("admit", "o1"))
    assert (status, answer["answer"]) == (200, "won") and answer["seq"]
    used = g1.check(tickets["o1"])
    assert (used["outcome"], used["first_gate"]) == ("ALREADY_USED", "admin:admin")
    status, answer = dashboard.api("/api/override", override("admit", "o0"))
    assert (status, answer["answer"]) == (409, "lost") and "gate-2" in answer["detail"]

    status, answer = dashboard.api("/api/override", override("erase", "o2"))
    assert status == 400 and "action" in answer["detail"]
    status, answer = dashboard.api("/api/revoke", {"ticket": "o2", "admin": "mallory"})  # the body names no one
    assert (status, answer["answer"]) == (200, "revoked")  # no event: every event
    assert g1.check(tickets["o2"])["outcome"] == "REVOKED"
    [(body,)] = rows(site.arbiter_db(), "SELECT body FROM stream WHERE kind = 'revocation'")
    assert json.loads(body)["admin"] == "alice"  # the account that asked, on every gate's stream

    audit = rows(site.arbiter_db(), "SELECT action, ticket_id, by, admin, reason, answer FROM overrides ORDER BY id")
    assert audit == [("unredeem", "o0", "admin", "alice", "unredeem o0", "released"),
                     ("unredeem", "o1", "admin", "alice", "unredeem o1", "invalid"),
                     ("admit", "o1", "admin", "alice", "admit o1", "won"),
                     ("admit", "o0", "admin", "alice", "admit o0", "lost")]
    at = rows(site.arbiter_db(), "SELECT min(at) > 0 FROM overrides")
    assert at == [(1,)]
    history = dashboard.api("/api/ticket?ticket=o0&event=show7")[1]["rows"]
    kinds = [(r["source"], r["kind"]) for r in history]
    assert ("dashboard", "unredeem") in kinds and ("arbiter", "release") in kinds
    assert sum(k == ("gate", "scan") for k in kinds) == 3  # ADMIT, ALREADY_USED, ADMIT again
    for gate in (g1, g2):
        assert gate.finish() in (0, 1) and "Traceback" not in gate.stderr
    watcher.close()


def test_without_an_account_the_dashboard_does_not_start(site: Site) -> None:
    site.start_arbiter()
    home = site.root / "dashboard"
    home.mkdir()
    proc = Proc(["dashboard", "--gate-id", "admin", "--port", "0"], site.env(home))
    assert proc.finish(30) == 2
    assert "no dashboard accounts" in proc.stderr and "gate dashboard user add" in proc.stderr
    assert "Traceback" not in proc.stderr
