"""Files written by the code before the layout redesign (issue 11) open and migrate in place.

tests/fixtures/old_dbs/ holds one file of each kind, written by commit 26d6668 (its script is beside
them).  Each is copied to tmp_path, opened with today's store, and must keep every row it had; the
files whose store did not record its migrations then (the arbiter's, the dashboard's) are adopted.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from gate.ledger import Ledger
from gate.migrations import MIGRATIONS
from gate.ownership.boxoffice import BoxOffice
from gate.ownership.payment import FakePaymentAgent
from gate.ownership.wallet import Wallet
from gate.store import Store
from sync.arbiter.schema import MIGRATIONS as ARBITER_MIGRATIONS
from sync.arbiter.store import ArbiterStore
from sync.dashboard.history import History

OLD = Path(__file__).resolve().parent / "fixtures" / "old_dbs"


@pytest.fixture
def old(tmp_path: Path) -> Path:
    for f in OLD.glob("*.db"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def migrations(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()


def test_the_gates_store_keeps_its_redemptions_outbox_and_stream_position(old: Path) -> None:
    with Store.open(old / "gate.db") as store:
        assert store.version == MIGRATIONS[-1][0]
        first = store.first_use("show7", "9f2")
        assert first is not None and first.scan_id == "scan-a"
        assert store.is_revoked("show7", "a11") and store.generation("show7", "b22") == 2
        ledger = Ledger(store)
        assert ledger.outbox_counts() == {"late": 1}
        assert ledger.position() == ("epoch-1", 1)
        assert store.is_redeemed("show7", "d44")
        assert [r["outcome"] for r in store.history("9f2")] == ["ADMIT", "ALREADY_USED"]


def test_the_arbiters_store_is_adopted_and_keeps_its_stream(old: Path) -> None:
    before = sqlite3.connect(old / "arbiter.db")
    assert before.execute("SELECT name FROM sqlite_master WHERE name = 'schema_migrations'").fetchone() is None
    head = before.execute("SELECT max(seq) FROM stream").fetchone()[0]
    epoch = before.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
    before.close()
    store = ArbiterStore.open(old / "arbiter.db")
    try:
        assert (store.epoch, store.head()) == (epoch, head) and head > 0
        items, _ = store.read_stream(0, 100)
        assert [i["seq"] for i in items] == list(range(1, head + 1))
        counts = store.counts()
        assert counts["held"] == 2 and counts["conflicts"] == 1 and counts["revoked"] == 1
        assert [o["admin"] for o in store.overrides()] == ["Ann"]
        assert store.rows("SELECT generation FROM generations WHERE ticket_id = 't4'") == [{"generation": 2}]
    finally:
        store.close()
    assert [v for v, _ in migrations(old / "arbiter.db")] == [m[0] for m in ARBITER_MIGRATIONS]
    assert "adopted" in migrations(old / "arbiter.db")[0][1]


def test_the_dashboards_history_is_adopted_and_keeps_its_rows(old: Path) -> None:
    history = History.open(old / "dashboard.db")
    try:
        assert history.position() == ("epoch-1", 1)
        kinds = sorted(row["kind"] for row in history.ticket("t1"))
        assert kinds == ["redemption", "scan"]
        assert [row["kind"] for row in history.ticket("t3")] == ["revoke"]
        assert history.areas() == {}  # migration 2: no pass item on its stream, no area yet
    finally:
        history.close()
    assert [v for v, _ in migrations(old / "dashboard.db")] == [1, 2]


def test_the_box_office_wallet_and_agent_keep_the_sale(old: Path) -> None:
    office = BoxOffice.open(str(old / "boxoffice.db"), lambda ticket: "")
    assert [(h["ticket_id"], h["state"], h["generation"]) for h in office.holders()] == [("9f2", "sold", 1)]
    wallet = Wallet.open(str(old / "wallet.db"))
    assert [(t["ticket_id"], t["state"]) for t in wallet.tickets()] == [("9f2", "held")]
    text, code, _terms = wallet.code("show7", "9f2")
    assert text.startswith("QH:") and code.t >= 1
    agent = FakePaymentAgent.open(str(old / "fake-agent.db"))
    assert agent.db.rows("SELECT count(*) AS n FROM payments") == [{"n": 1}]
    for party in (office, wallet, agent):
        assert party.party.check_own_chain() >= 1
        party.db.close()
