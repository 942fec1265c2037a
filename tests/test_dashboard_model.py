"""The dashboard's live model and its history file (real SQLite on tmp_path), with no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.decide import Decision
from gate.outcomes import Outcome, Reason
from sync.dashboard.history import History
from sync.dashboard.model import Model
from sync.wire import parse_scan, scan_payload

NOW = 1_800_000_000.0


def scan(n: int, gate: str = "gate-1", outcome: Outcome = Outcome.ADMIT, reason: Reason = Reason.NONE,
         ticket: str | None = None, seat: str = "A1") -> tuple[Decision, float]:
    decision = Decision(outcome, reason, f"s{n}", gate, NOW + n, "show7", ticket or f"t{n}", seat)
    return decision, NOW + n + 0.01


def feed(model: Model, history: History, *scans: tuple[Decision, float]) -> None:
    events = [(parse_scan(scan_payload(d, decided), d.gate_id), decided) for d, decided in scans]
    for event, received in events:
        model.scan(event, received)
    history.add_scans(events)


def item(seq: int, kind: str, ticket: str, **extra: object) -> dict[str, object]:
    return {"seq": seq, "kind": kind, "event": "show7", "ticket": ticket, **extra}


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History.open(tmp_path / "dashboard.db")


def test_rates_reasons_and_totals_per_gate_and_for_the_venue(history: History) -> None:
    model = Model(capacity=100)
    model.link(True, NOW)  # the dashboard is connected: what the gates say is what it shows
    feed(model, history, scan(1), scan(2), scan(3, outcome=Outcome.ALREADY_USED, reason=Reason.ALREADY_USED),
         scan(4, "gate-2", Outcome.INVALID, Reason.BAD_SIGNATURE), scan(5, "gate-10"))
    model.status("gate-1", {"state": "online", "decisions": {"ADMIT": 2, "ALREADY_USED": 1}, "outbox": {"late": 3},
                            "clock_offset": 0.25}, NOW + 6, retained=False)
    snap = model.snapshot(NOW + 10, feed=True)
    gates = {g["gate"]: g for g in snap["gates"]}
    assert [g["gate"] for g in snap["gates"]] == ["gate-1", "gate-2", "gate-10"]  # natural order
    assert (gates["gate-1"]["admitted"], gates["gate-1"]["rejected"]) == (2, 1)  # from its status
    assert (gates["gate-1"]["outbox"], gates["gate-1"]["clock_offset"]) == (3, 0.25)
    assert gates["gate-1"]["per_minute"] == 2 and gates["gate-1"]["reasons"] == {"already_used": 1}
    assert gates["gate-2"]["reasons"] == {"bad_signature": 1} and gates["gate-2"]["state"] == "unknown"
    assert sum(snap["venue"]["admitted"]) == 3 and sum(snap["venue"]["rejected"]) == 2
    assert snap["venue"]["reasons"] == {"already_used": 1, "bad_signature": 1}
    assert [row["scan_id"] for row in snap["feed"]] == ["s5", "s4", "s3", "s2", "s1"]
    feed(model, history, scan(6))  # after the status: counted on top of it until the next status
    assert {g["gate"]: g for g in model.snapshot(NOW + 10)["gates"]}["gate-1"]["admitted"] == 3
    assert {g["gate"]: g for g in model.snapshot(NOW + 100)["gates"]}["gate-1"]["state"] == "silent"


def test_while_the_dashboard_is_disconnected_every_gate_is_unknown_not_offline() -> None:
    """The dashboard losing the broker says nothing about the gates: unknown (with when it last heard each and
    what it was), and once it is back each state returns with its next status, not from before."""
    model = Model()
    model.link(True, NOW, "mqtt://10.0.0.2:1883")
    model.arbiter_status({"state": "online", "head": 3}, NOW)
    for n in (1, 2, 3):
        model.status(f"gate-{n}", {"state": "online"}, NOW + n, retained=False)
    model.status("gate-3", {"state": "offline", "reason": "lost"}, NOW + 4, retained=False)  # the broker's will
    model.link(False, NOW + 5)
    snap = model.snapshot(NOW + 8)
    assert snap["stale"] and snap["link"] == {"up": False, "since": NOW + 5, "broker": "mqtt://10.0.0.2:1883"}
    assert [(g["state"], g["last_state"], g["known"], g["heard"]) for g in snap["gates"]] == [
        ("unknown", "online", False, NOW + 1), ("unknown", "online", False, NOW + 2),
        ("unknown", "offline", False, NOW + 4)]
    assert (snap["arbiter"]["state"], snap["arbiter"]["last_state"]) == ("unknown", "online")
    assert {g["state"] for g in model.snapshot(NOW + 500)["gates"]} == {"unknown"}  # not "silent" either

    model.link(True, NOW + 20)
    model.status("gate-1", {"state": "online"}, NOW + 21, retained=True)  # retained, sent on subscribing
    model.status("gate-3", {"state": "online"}, NOW + 22, retained=False)  # it reconnected too
    snap = model.snapshot(NOW + 23)
    assert not snap["stale"]
    assert [(g["gate"], g["state"]) for g in snap["gates"]] == [
        ("gate-1", "online"), ("gate-2", "unknown"), ("gate-3", "online")]  # gate-2: no status since
    assert snap["arbiter"]["state"] == "unknown"
    model.arbiter_status({"state": "online", "head": 3}, NOW + 24)
    assert model.snapshot(NOW + 25)["arbiter"]["state"] == "online"


def test_a_revocation_shows_the_person_who_revoked() -> None:
    model = Model()
    model.stream_item(item(1, "revocation", "d", by="admin", admin="alice", reason="refunded", at=NOW))
    model.stream_item(item(2, "revocation", "e", by="box-office", reason="", at=NOW))  # an older arbiter's
    assert [(r["ticket"], r["by"], r["admin"]) for r in model.snapshot(NOW)["revocations"]] == [
        ("e", "box-office", ""), ("d", "admin", "alice")]


def test_the_stream_drives_capacity_conflicts_and_overrides(history: History) -> None:
    model = Model(capacity=10)
    items = [item(1, "redemption", "a", scan="x1", gate="gate-1", at=NOW),
             item(2, "redemption", "b", scan="x2", gate="gate-2", at=NOW),
             item(3, "conflict", "b", state="open", first={"gate": "gate-2", "at": NOW, "scan": "x2"},
                  late={"gate": "gate-3", "at": NOW + 1, "scan": "x3"}, arbiter_at=NOW + 5),
             item(4, "release", "a", scan="x1", gate="gate-1", override="unredeem", by="admin", admin="alice"),
             item(5, "redemption", "c", scan="x5", gate="admin:admin", at=NOW, admin="alice"),
             item(6, "revocation", "d", by="admin", admin="alice", reason="refunded", at=NOW)]
    kept, gap = history.apply_stream("e1", items[:2] + items[3:4])
    assert [i["seq"] for i in kept] == [1, 2] and gap  # 4 after 2: a gap, stop there
    kept, gap = history.apply_stream("e1", items)
    assert [i["seq"] for i in kept] == [3, 4, 5, 6] and not gap
    assert history.apply_stream("e1", items) == ([], False)  # replays change nothing
    assert history.position() == ("e1", 6)
    assert history.apply_stream("e2", items[:1]) == ([], True)  # another arbiter database: catch up first

    for i in history.stream_items():  # what a restarted dashboard does
        model.stream_item(i)
    snap = model.snapshot(NOW)
    assert snap["capacity"] == {"issued": 10, "admitted": 2, "double": 1}  # b and c held, a un-redeemed
    assert [(c["ticket"], c["first"]["gate"], c["late"]["gate"]) for c in snap["conflicts"]] == [
        ("b", "gate-2", "gate-3")]
    assert [(o["action"], o["ticket"], o["admin"]) for o in snap["overrides"]] == [
        ("admit", "c", "alice"), ("unredeem", "a", "alice")]
    assert snap["revoked"] == 1 and snap["revocations"][0]["reason"] == "refunded"
    assert [r["summary"] for r in history.ticket("d")] == ["revoked by alice: refunded"]  # the person, not "admin"


def test_a_tickets_history_across_gates_survives_a_restart(tmp_path: Path) -> None:
    history = History.open(tmp_path / "d.db")
    model = Model()
    feed(model, history, scan(1, "gate-1", ticket="9f2"),
         scan(2, "gate-2", Outcome.ALREADY_USED, Reason.ALREADY_USED, ticket="9f2"), scan(3, ticket="other"))
    history.apply_stream("e1", [item(1, "redemption", "9f2", scan="s1", gate="gate-1", at=NOW + 1,
                                     arbiter_at=NOW + 1.5)])
    history.record_action(NOW + 9, "alice", "revoke", "show7", "9f2", "refunded", "127.0.0.1", "revoked", "")
    history.close()

    again = History.open(tmp_path / "d.db")
    rows = again.ticket("9f2")
    assert [(r["source"], r["kind"], r["gate"]) for r in rows] == [
        ("gate", "scan", "gate-1"), ("arbiter", "redemption", "gate-1"), ("gate", "scan", "gate-2"),
        ("dashboard", "revoke", "")]
    assert "first used at" not in rows[0]["summary"] and rows[2]["summary"].startswith("ALREADY_USED")
    assert again.ticket("9f2", "other-event") == []
    restored = Model()
    for event, received in again.recent_scans(NOW - 60):
        restored.scan(event, received, live=False)
    assert len(restored.snapshot(NOW + 10, feed=True)["feed"]) == 3


def test_scans_of_seatless_tickets_count_like_any_other(history: History) -> None:
    """`gate mint --count` makes tickets with no seat (seat ""): their scans are scans, not bad messages."""
    model = Model()
    feed(model, history, scan(1, seat=""), scan(2, ticket="t1", seat="", outcome=Outcome.ALREADY_USED,
                                                reason=Reason.ALREADY_USED))
    snap = model.snapshot(NOW + 10, feed=True)
    assert [row["scan_id"] for row in snap["feed"]] == ["s2", "s1"] and snap["feed"][0]["seat"] is None
    assert sum(snap["venue"]["admitted"]) == 1 and snap["venue"]["reasons"] == {"already_used": 1}
    assert [r["kind"] for r in history.ticket("t1")] == ["scan", "scan"]
