"""Raised ownership generations reach every gate through the arbiter's stream, like revocations.

Unit level on the real SQLite stores, then end to end: a real mosquitto, the
real `gate arbiter`, a gate running `gate check`, and `gate supersede --broker`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.decide import Decider
from gate.keys import IssuerKey, Keyring
from gate.ledger import Ledger
from gate.outcomes import Outcome, Reason
from gate.store import Store
from gate.ticket import Ticket
from gate.verify import Verifier
from sync import wire
from sync.arbiter.store import ArbiterStore

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import Site, rows, wait_until  # noqa: E402

KEY = IssuerKey("0a1b2c3d", "hmac", "show7", bytes(range(32)), 0.0)


def test_the_arbiter_streams_a_generation_and_a_gate_ledger_applies_it(tmp_path: Path) -> None:
    arbiter = ArbiterStore.open(tmp_path / "arbiter.db", clock=lambda: 1000.0)
    request = wire.request("generations", [wire.Supersession("show7", "9f2", 2, "boxoffice")])
    items = wire.parse_supersessions(wire.decode(wire.encode(request)))
    answers, stream = arbiter.apply(items)
    assert [(a.answer, a.seq) for a in answers] == [("revoked", 1)]
    assert [wire.check_item(i)["kind"] for i in stream] == ["generation"]
    arbiter.apply([wire.Supersession("show7", "9f2", 1, "boxoffice")])  # a lower one later changes nothing
    entries, _head = arbiter.read_stream(0, 10)

    with Store.open(tmp_path / "gate.db") as store:
        applied, gap = Ledger(store).apply_stream(arbiter.epoch, entries)
        assert (applied, gap) == (2, False) and store.generation("show7", "9f2") == 2
        decider = Decider(Verifier(Keyring([KEY.verify_key()]), clock=lambda: 1000.0), store, "g1",
                          claimer=None, clock=lambda: 1000.0)
        old = decider.decide(KEY.sign(Ticket(event="show7", ticket_id="9f2", generation=1)))
        assert (old.outcome, old.reason) == (Outcome.REVOKED, Reason.SUPERSEDED)
    arbiter.close()


def test_supersede_with_a_broker_reaches_a_running_gate(site: Site) -> None:
    site.start_arbiter()
    gate = site.start_gate("gate-1")
    old = site.key.sign(Ticket(event="show7", ticket_id="9f2", generation=1))
    new = site.key.sign(Ticket(event="show7", ticket_id="9f2", generation=2))
    sent = site.gate_cli("boxoffice-admin", "supersede", "9f2", "--event", "show7", "--generation", "2")
    assert sent.returncode == 0, sent.stderr
    assert "on the arbiter's stream" in sent.stdout
    db = site.gate_db("gate-1")
    wait_until(lambda: rows(db, "SELECT generation FROM generations") == [(2,)], 20, "the gate applies generation 2")
    refused = gate.check(old)
    assert (refused["outcome"], refused["reason"]) == ("REVOKED", "superseded")
    assert gate.check(new)["outcome"] == "ADMIT"
    gate.finish()
