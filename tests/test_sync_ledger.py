"""The gate side of sync on a real gate store: outbox states, settling answers, applying the stream."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import mint

from gate.decide import Decider
from gate.keys import IssuerKey, Keyring
from gate.ledger import STALE_GRACE, Ledger
from gate.migrations import MIGRATIONS
from gate.outcomes import Outcome, Reason
from gate.store import Redemption, Scan, Store
from gate.verify import Verifier
from sync.gateside.claimer import GateClaimer
from sync.gateside.session import CLOSE_POLL, STREAM_EVERY, GateSync
from sync.gateside.terms import claim_of, release_of, ruling_of
from sync.link import Broker
from sync.topics import Topics
from sync.wire import Answer, Claim, First, Release


def settle(ledger: Ledger, scan: Scan, answer: Answer) -> Redemption:
    """The arbiter's answer on the wire, recorded by the ledger in its own terms (as the gate's claimer does)."""
    return ledger.settle(scan, ruling_of(answer))


def pending(ledger: Ledger, gate_id: str, limit: int, stale_before: float) -> tuple[list[Claim], list[Release]]:
    """The outbox as the drain sends it: late claims and releases on the wire."""
    late, released = ledger.pending(gate_id, limit, stale_before)
    return [claim_of(s, admitted=True) for s in late], [release_of(s) for s in released]

@pytest.fixture
def ledger(store: Store) -> Ledger:
    return Ledger(store, clock=lambda: 1000.0)


def scan(scan_id: str = "s1", ticket: str = "t1", gate: str = "g1", at: float = 100.0) -> Scan:
    return Scan(scan_id, gate, at, "show7", ticket, 0)


def q(store: Store, sql: str, *args: object) -> list[tuple[Any, ...]]:
    return store.conn.execute(sql, args).fetchall()


def test_migration_2_upgrades_a_store_holding_admissions(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "old.db")
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
               " applied_at REAL NOT NULL)")
    number, name, script = MIGRATIONS[0]
    for statement in script:
        db.execute(statement)
    db.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (number, name))
    db.execute("INSERT INTO redeemed (event, ticket_id, scan_id, gate_id, at) VALUES ('show7', 't1', 's1', 'g1', 1)")
    db.commit()
    db.close()
    with Store.open(tmp_path / "old.db") as store:
        assert store.version >= 2
        assert q(store, "SELECT scan_id, source, arbiter FROM redeemed") == [("s1", "local", "")]
        assert Ledger(store).outbox_counts() == {}


def test_the_local_set_answers_with_no_claim_and_no_outbox_entry(ledger: Ledger, store: Store) -> None:
    store.redeem(scan("s0", gate="g2"))
    used = ledger.begin(scan("s1"))
    assert used is not None and used.outcome is Outcome.ALREADY_USED and used.first and used.first.gate_id == "g2"
    store.revoke("show7", "t2", at=1, by="admin")
    revoked = ledger.begin(scan("s2", ticket="t2"))
    assert revoked is not None and revoked.outcome is Outcome.REVOKED
    assert q(store, "SELECT count(*) FROM outbox") == [(0,)]
    replay = ledger.begin(scan("s0", gate="g2"))
    assert replay is not None and replay.outcome is Outcome.ADMIT and replay.replay


def test_the_claim_intent_is_durable_before_the_claim(ledger: Ledger, store: Store) -> None:
    assert ledger.begin(scan()) is None
    assert q(store, "SELECT scan_id, state FROM outbox") == [("s1", "claim")]
    assert q(store, "SELECT count(*) FROM redeemed") == [(0,)]


def test_won_admits_with_its_audit_row_and_closes_the_entry(ledger: Ledger, store: Store) -> None:
    ledger.begin(scan())
    result = settle(ledger, scan(), Answer("s1", "won", 7))
    assert result.outcome is Outcome.ADMIT and not result.provisional
    assert q(store, "SELECT source, arbiter, arbiter_seq, provisional FROM redeemed") == [("local", "won", 7, 0)]
    assert q(store, "SELECT state, answer FROM outbox") == [("done", "won")]
    assert q(store, "SELECT outcome FROM audit") == [("ADMIT",)]


def test_lost_is_already_used_with_the_arbiters_first_use(ledger: Ledger, store: Store) -> None:
    ledger.begin(scan())
    result = settle(ledger, scan(), Answer("s1", "lost", first=First("g2", 99.0, "s0", 1000.0)))
    assert result.outcome is Outcome.ALREADY_USED and result.first and (result.first.gate_id, result.first.at) == (
        "g2", 99.0)
    assert q(store, "SELECT scan_id, gate_id, source FROM redeemed") == [("s0", "g2", "arbiter")]
    assert q(store, "SELECT state FROM outbox") == [("done",)]


def test_revoked_at_the_arbiter_is_revoked_here_too(ledger: Ledger, store: Store) -> None:
    ledger.begin(scan())
    assert settle(ledger, scan(), Answer("s1", "revoked")).outcome is Outcome.REVOKED
    assert store.is_revoked("show7", "t1")


@pytest.mark.parametrize(("policy", "outcome", "state"), [("admit-if-unseen", Outcome.ADMIT, "late"),
                                                           ("deny", Outcome.FAULT, "release")])
def test_past_the_budget_the_policy_decides(ledger: Ledger, store: Store, policy: str, outcome: Outcome,
                                            state: str) -> None:
    ledger.begin(scan())
    result = ledger.abandon(scan(), policy, "no answer in time")
    assert result.outcome is outcome and result.provisional == (outcome is Outcome.ADMIT)
    assert q(store, "SELECT state FROM outbox") == [(state,)]
    if outcome is Outcome.FAULT:
        assert result.reason is Reason.OFFLINE and q(store, "SELECT count(*) FROM redeemed") == [(0,)]


def test_a_win_that_came_by_the_stream_before_the_budget_ran_out_admits_for_real(ledger: Ledger,
                                                                                  store: Store) -> None:
    ledger.begin(scan())
    ledger.apply_stream("e1", [{"seq": 1, "kind": "redemption", "event": "show7", "ticket": "t1", "scan": "s1",
                                "gate": "g1", "at": 100.0}])
    result = ledger.abandon(scan(), "deny", "no answer in time")
    assert result.outcome is Outcome.ADMIT and not result.provisional
    assert q(store, "SELECT source, arbiter FROM redeemed") == [("local", "won")]
    assert q(store, "SELECT state FROM outbox") == [("done",)]


def test_an_orphaned_claim_becomes_a_release_and_its_late_answer_then_denies(store: Store) -> None:
    now = [1000.0]
    ledger = Ledger(store, clock=lambda: now[0])
    ledger.begin(scan())
    claims, releases = pending(ledger, "g1", 10, stale_before=now[0] - 0.3 - STALE_GRACE)
    assert (claims, releases) == ([], [])  # still young: someone may be waiting for its answer
    now[0] += 10
    claims, releases = pending(ledger, "g1", 10, stale_before=now[0] - 0.3 - STALE_GRACE)
    assert [r.scan for r in releases] == ["s1"] and claims == []
    late = settle(ledger, scan(), Answer("s1", "won", 1))  # the waiter lost the compare-and-set
    assert late.outcome is Outcome.FAULT and q(store, "SELECT count(*) FROM redeemed") == [(0,)]
    assert ledger.settle_released([ruling_of(Answer("s1", "released"))]) == 1
    assert ledger.outbox_counts() == {}


def test_late_claims_drain_and_a_lost_one_is_a_conflict(ledger: Ledger, store: Store) -> None:
    assert ledger.offline(scan("s1"), "admit-if-unseen").provisional
    assert ledger.offline(scan("s2", ticket="t2"), "admit-if-unseen").provisional
    claims, _ = pending(ledger, "g1", 10, 0)
    assert [(c.scan, c.admitted) for c in claims] == [("s1", True), ("s2", True)]
    answers = [Answer("s1", "won", 3), Answer("s2", "lost", first=First("g2", 50.0, "s9")), Answer("s2", "won", 1)]
    assert ledger.settle_late([ruling_of(a) for a in answers]) == {"won": 1, "lost": 1}  # the duplicate answer changes nothing
    assert q(store, "SELECT ticket_id, arbiter FROM redeemed ORDER BY ticket_id") == [("t1", "won"), ("t2", "conflict")]
    assert q(store, "SELECT ticket_id, first_gate, late_gate, late_at, state FROM conflicts") == [
        ("t2", "g2", "g1", 100.0, "open")]
    assert ledger.outbox_counts() == {}


def test_offline_deny_records_the_scan_and_queues_nothing(ledger: Ledger, store: Store) -> None:
    result = ledger.offline(scan(), "deny")
    assert (result.outcome, result.reason) == (Outcome.FAULT, Reason.OFFLINE)
    assert q(store, "SELECT outcome, reason FROM audit") == [("FAULT", "offline")]
    assert ledger.outbox_counts() == {}


def item(seq: int, kind: str = "redemption", ticket: str = "t1", scan_id: str = "x1", **extra: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "event": "show7", "ticket": ticket, "scan": scan_id, "gate": "g2", "at": 5.0,
            **extra}


def test_the_stream_applies_in_order_skips_replays_and_stops_at_a_gap(ledger: Ledger, store: Store) -> None:
    assert ledger.apply_stream("e1", [item(1), item(2, ticket="t2", scan_id="x2")]) == (2, False)
    assert ledger.apply_stream("e1", [item(2, ticket="t2", scan_id="x2"), item(1)]) == (0, False)
    assert ledger.apply_stream("e1", [item(3, ticket="t3"), item(5, ticket="t5")]) == (1, True)
    assert ledger.position() == ("e1", 3)
    assert ledger.apply_stream("e2", [item(4, ticket="t4")]) == (0, True)  # another arbiter database
    assert sorted(t for (t,) in q(store, "SELECT ticket_id FROM redeemed")) == ["t1", "t2", "t3"]
    ledger.reset_stream("e2")
    assert ledger.position() == ("e2", 0)


def test_stream_batches_that_arrive_together_are_applied_together_in_order(store: Store) -> None:
    sync = GateSync(Ledger(store), "gate-1", Broker("127.0.0.1", 9), Topics())
    for message in [("stream", ("e1", [item(3)])), ("stream", ("e1", [item(2)])), ("kick", None),
                    ("stream", ("e1", [item(4)]))]:
        sync._inbox.put(message)
    # what came within the window, in sequence order, and the message that ended it, to be handled next
    assert sync._gather(("e1", [item(1)])) == (("e1", [item(1), item(2), item(3)]), ("kick", None))
    sync._inbox.put(("stream", ("e2", [item(1)])))  # another arbiter database ends it too
    assert sync._gather(("e1", [item(5)])) == (("e1", [item(4), item(5)]), ("stream", ("e2", [item(1)])))
    late = threading.Timer(1.0, sync._inbox.put, (("stream", ("e1", [item(7)])),))  # long after the window
    late.start()
    t0 = time.monotonic()
    assert sync._gather(("e1", [item(6)])) == (("e1", [item(6)]), None)  # nothing more: the window ends it
    assert time.monotonic() - t0 >= STREAM_EVERY * 0.9  # it did wait (a lower bound: never late on a slow machine)
    late.join()
    assert sync._inbox.get_nowait() == ("stream", ("e1", [item(7)]))  # it did not wait for the next batch


def test_stream_items_of_every_kind(ledger: Ledger, store: Store) -> None:
    store.redeem(scan("mine", ticket="t9"))  # our own admission is never dropped by a release
    conflict = {"state": "open", "first": {"gate": "g2", "at": 1.0, "scan": "x1"},
                "late": {"gate": "g1", "at": 2.0, "scan": "mine"}}
    ledger.apply_stream("e1", [item(1), item(2, "release"), item(3, "release", ticket="t9", scan_id="mine"),
                               item(4, "revocation", ticket="t7", reason="refunded"),
                               item(5, "conflict", ticket="t9", **conflict)])
    assert q(store, "SELECT ticket_id, source, arbiter FROM redeemed") == [("t9", "local", "conflict")]
    assert store.is_revoked("show7", "t7")
    ledger.apply_stream("e1", [item(6, "conflict", ticket="t9", **{**conflict, "state": "void"})])
    assert q(store, "SELECT state, seq FROM conflicts") == [("void", 6)]


def decider(store: Store, key: IssuerKey, policy: str) -> Decider:
    """The real GateClaimer and GateSync, with no broker listening: every decision is offline."""
    sync = GateSync(Ledger(store), "gate-1", Broker("127.0.0.1", 9), Topics())
    verifier = Verifier(Keyring([key.verify_key()]), clock=lambda: 1.8e9)
    return Decider(verifier, store, "gate-1", clock=lambda: 1.8e9, claimer=GateClaimer(Ledger(store), sync, policy))


@pytest.fixture
def key() -> Iterator[IssuerKey]:
    yield IssuerKey.new("show7", "hmac")


def test_the_decider_with_a_claimer_and_no_broker_admits_provisionally_once(store: Store, key: IssuerKey) -> None:
    d = decider(store, key, "admit-if-unseen")
    first = d.decide(mint(key, "9f2"))
    assert first.outcome is Outcome.ADMIT and first.provisional
    again = d.decide(mint(key, "9f2"))
    assert (again.outcome, again.first_gate, again.first_at) == (Outcome.ALREADY_USED, "gate-1", first.at)
    assert d.decide("garbage").outcome is Outcome.INVALID
    assert Ledger(store).outbox_counts() == {"late": 1}


def test_the_deny_policy_refuses_without_the_arbiter(store: Store, key: IssuerKey) -> None:
    result = decider(store, key, "deny").decide(mint(key, "9f2"))
    assert (result.outcome, result.reason, result.admitted) == (Outcome.FAULT, Reason.OFFLINE, False)


class CountingLedger(Ledger):
    looks = 0

    def outbox_counts(self) -> dict[str, int]:
        self.looks += 1
        return super().outbox_counts()


def test_closing_with_the_broker_gone_waits_without_spinning(store: Store, key: IssuerKey) -> None:
    """`gate check`/`gate run` wait `sync.drain_wait` at exit for the outbox: with no broker that is a few
    passes over the outbox, not one pass after another as fast as the worker answers (a core spun)."""
    ledger = CountingLedger(store)
    sync = GateSync(ledger, "gate-1", Broker("127.0.0.1", 9), Topics())
    d = Decider(Verifier(Keyring([key.verify_key()]), clock=lambda: 1.8e9), store, "gate-1", clock=lambda: 1.8e9,
                claimer=GateClaimer(Ledger(store), sync, "admit-if-unseen"))
    assert d.decide(mint(key, "9f2")).provisional  # the outbox holds a late claim: close waits for it
    sync.start()
    assert sync.close(drain_wait=1.0) is False
    assert ledger.looks <= 1.0 / CLOSE_POLL + 5, ledger.looks  # one look a pass (and the status), not thousands
