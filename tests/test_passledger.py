"""A list gate's transitions outbox (gate/passledger.py) on real SQLite, answered by a real arbiter store."""

from __future__ import annotations

from pathlib import Path

from gate.ledger import Ledger
from gate.outcomes import Outcome, Reason
from gate.passes import PassRuling, PassState
from gate.passledger import PassLedger
from gate.rules import CheckinList
from gate.store import Scan, Store
from sync.arbiter.store import ArbiterStore
from sync.gateside.terms import pass_ruling_of, transition_of

HALL = CheckinList("hall", "show7", version=3, entries=0, capacity=1)


def scan(sid: str, ticket: str = "t1", at: float = 10.0, gate: str = "g1") -> Scan:
    return Scan(sid, gate, at, "show7", ticket, 0, "code")


def arbiter(tmp_path: Path) -> ArbiterStore:
    store = ArbiterStore.open(tmp_path / "arbiter.db")
    store.lists = {"hall": HALL}
    return store


def deliver(arb: ArbiterStore, ledger: PassLedger) -> dict[str, int]:
    """What the gate's drain does, without the broker: the pending moves to the arbiter, its answers back."""
    moves = ledger.pending("g1", 100, stale_before=1e12)  # every claim intent is an orphan here
    answers, _ = arb.transitions([transition_of(m.scan, m.list, m.version, m.direction, m.product,
                                                admitted=m.state == "late", void=m.state == "void") for m in moves])
    return ledger.settle_sent([pass_ruling_of(a) for a in answers])


def test_online_the_gate_shows_the_arbiters_ruling_and_keeps_its_state(store: Store, tmp_path: Path) -> None:
    ledger, arb = PassLedger(store), arbiter(tmp_path)
    one = scan("s1")
    assert ledger.begin(one, HALL, "in", "") is None
    [answer], _ = arb.transitions([transition_of(one, "hall", 3, "in", "")])
    shown = ledger.settle(one, HALL, "in", pass_ruling_of(answer))
    assert shown.outcome is Outcome.ADMIT
    with store.transaction() as tx:
        assert tx.pass_state("show7", "t1", "hall") == PassState(1, "", 1, True, 10.0)
    other = scan("s2", "t2")
    assert ledger.begin(other, HALL, "in", "") is None
    [full], _ = arb.transitions([transition_of(other, "hall", 3, "in", "")])
    refused = ledger.settle(other, HALL, "in", pass_ruling_of(full))
    assert (refused.outcome, refused.reason) == (Outcome.ALREADY_USED, Reason.AREA_FULL)
    assert ledger.begin(other, HALL, "in", "").replay  # type: ignore[union-attr]
    assert [h["detail"] for h in store.history("t2")] == ["list hall@3: 1 inside"]
    assert ledger.outbox_counts() == {}


def test_past_the_budget_admit_if_unseen_lets_in_and_the_late_entry_becomes_a_conflict(store: Store,
                                                                                       tmp_path: Path) -> None:
    ledger, arb = PassLedger(store), arbiter(tmp_path)
    arb.transitions([transition_of(scan("elsewhere", "t9", gate="g2"), "hall", 3, "in", "")])  # the hall is full
    waited = scan("s1")
    assert ledger.begin(waited, HALL, "in", "") is None
    shown = ledger.abandon(waited, HALL, "in", "", "admit-if-unseen", "no answer")
    assert shown.outcome is Outcome.ADMIT and shown.provisional
    assert ledger.outbox_counts() == {"pass_late": 1}
    assert deliver(arb, ledger) == {"conflict": 1}
    assert arb.inside() == {"hall": (2, 2)} and ledger.outbox_counts() == {}


def test_past_the_budget_deny_refuses_and_voids_what_the_arbiter_applied(store: Store, tmp_path: Path) -> None:
    ledger, arb = PassLedger(store), arbiter(tmp_path)
    waited = scan("s1")
    assert ledger.begin(waited, HALL, "in", "") is None
    arb.transitions([transition_of(waited, "hall", 3, "in", "")])  # committed there, its answer lost
    assert arb.inside() == {"hall": (1, 1)}
    shown = ledger.abandon(waited, HALL, "in", "", "deny", "no answer")
    assert (shown.outcome, shown.reason) == (Outcome.FAULT, Reason.OFFLINE)
    assert deliver(arb, ledger) == {"void": 1}
    assert arb.inside() == {"hall": (0, 0)}


def test_offline_exits_are_let_through_whatever_the_policy_and_orphans_become_void(store: Store,
                                                                                  tmp_path: Path) -> None:
    ledger, arb = PassLedger(store), arbiter(tmp_path)
    out = ledger.offline(scan("s1"), HALL, "out", "", "deny")
    assert (out.outcome, out.reason, out.provisional) == (Outcome.ADMIT, Reason.EXIT, False)
    denied = ledger.offline(scan("s2", "t2"), HALL, "in", "", "deny")
    assert denied.outcome is Outcome.FAULT
    assert ledger.begin(scan("s3", "t3"), HALL, "in", "") is None  # the process dies here
    assert ledger.outbox_counts() == {"pass_late": 1, "pass_claim": 1}
    assert deliver(arb, ledger) == {"late": 1, "void": 1}
    assert arb.rows("SELECT scan_id, outcome, reason FROM pass_scans ORDER BY scan_id") == [
        {"scan_id": "s1", "outcome": "ADMIT", "reason": "exit"}, {"scan_id": "s3", "outcome": "FAULT", "reason": "offline"}]


def test_a_stream_item_does_not_overwrite_a_move_the_arbiter_has_not_heard_of(store: Store) -> None:
    ledger = PassLedger(store)
    ledger.offline(scan("mine"), HALL, "in", "", "admit-if-unseen")
    item = {"seq": 1, "kind": "pass", "event": "show7", "ticket": "t1", "list": "hall", "scan": "theirs",
            "state": {"entries": 3, "day": "", "day_entries": 3, "inside": False, "last_entry": 5.0}}
    sync = Ledger(store)
    sync.apply_stream("e", [item])
    with store.transaction() as tx:
        assert tx.pass_state("show7", "t1", "hall").entries == 1
    ledger.settle_sent([PassRuling("mine", "ADMIT", state=PassState(4, "", 4, True, 10.0))])
    sync.apply_stream("e", [{**item, "seq": 2, "scan": "later"}])
    with store.transaction() as tx:
        assert tx.pass_state("show7", "t1", "hall") == PassState(3, "", 3, False, 5.0)
