"""The local store on real SQLite files: migrations, append-only audit, idempotency, faults."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import mint

from gate.decide import Decider
from gate.exc import StoreCorrupt, StoreError
from gate.keys import IssuerKey
from gate.migrations import MIGRATIONS
from gate.outcomes import Outcome, Reason
from gate.store import Scan, Store


def scan(ticket_id: str = "9f2", scan_id: str = "s1", gate: str = "gate-1", at: float = 1.0) -> Scan:
    return Scan(scan_id, gate, at, "show7", ticket_id)


def test_open_sets_wal_full_sync_and_migrates(tmp_path: Path) -> None:
    with Store.open(tmp_path / "g.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store.version == MIGRATIONS[-1][0]
    with Store.open(tmp_path / "g.db") as again:  # re-opening applies nothing twice
        rows = again.conn.execute("SELECT version FROM schema_migrations").fetchall()
        assert [r[0] for r in rows] == [m[0] for m in MIGRATIONS]


def test_redeem_is_add_if_absent_and_idempotent_by_scan_id(store: Store) -> None:
    assert store.redeem(scan(scan_id="a")).outcome is Outcome.ADMIT
    replay = store.redeem(scan(scan_id="a", at=5.0))
    assert (replay.outcome, replay.replay) == (Outcome.ADMIT, True)
    second = store.redeem(scan(scan_id="b", gate="gate-2", at=9.0))
    assert second.outcome is Outcome.ALREADY_USED
    assert second.first is not None and (second.first.gate_id, second.first.at) == ("gate-1", 1.0)
    outcomes = [row["outcome"] for row in store.history("9f2")]
    assert outcomes == ["ADMIT", "ALREADY_USED"]  # the replay wrote nothing


def test_same_ticket_id_in_two_events_is_two_tickets(store: Store) -> None:
    assert store.redeem(Scan("a", "g", 1.0, "show7", "1")).outcome is Outcome.ADMIT
    assert store.redeem(Scan("b", "g", 1.0, "show8", "1")).outcome is Outcome.ADMIT


def test_revocation_is_checked_in_the_redeem_transaction(store: Store) -> None:
    assert store.revoke("show7", "9f2", at=1.0, by="admin")
    assert not store.revoke("show7", "9f2", at=2.0, by="admin")
    assert store.redeem(scan()).outcome is Outcome.REVOKED
    assert not store.is_redeemed("show7", "9f2")
    store.revoke(None, "x1", at=1.0, by="admin")  # every event
    assert store.redeem(Scan("c", "g", 1.0, "show9", "x1")).outcome is Outcome.REVOKED


def test_audit_log_is_append_only(store: Store) -> None:
    store.redeem(scan())
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("UPDATE audit SET outcome = 'ADMIT'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("DELETE FROM audit")
    assert len(store.history("9f2")) == 1


def test_every_scan_is_audited_with_gate_time_outcome_reason(make_decider: Callable[..., Decider]) -> None:
    key = IssuerKey.new("show7", "hmac")
    decider = make_decider(key, gate_id="gate-east")
    decider.decide(mint(key))
    decider.decide(mint(key))
    decider.decide("garbage")
    rows = decider.store.conn.execute("SELECT gate_id, ticket_id, outcome, reason FROM audit ORDER BY seq").fetchall()
    assert rows == [("gate-east", "9f2", "ADMIT", ""), ("gate-east", "9f2", "ALREADY_USED", "already_used"),
                    ("gate-east", None, "INVALID", "malformed")]


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "gate.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorrupt, match=r"gate\.db"):
        Store.open(bad)


def corrupt_one_leaf(path: Path) -> int:
    """Fill a store with 300 redemptions, then break one page that no open or migration reads (not a table's
    root, not the schema): only the integrity check itself can notice it.  The page number."""
    with Store.open(path) as store:
        for i in range(300):
            store.redeem(scan(ticket_id=f"t{i}", scan_id=f"s{i}"))
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        roots = {r[0] for r in store.conn.execute("SELECT rootpage FROM sqlite_master WHERE rootpage > 0")}
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    victim = max(set(range(2, pages + 1)) - roots)
    data = bytearray(path.read_bytes())
    kind = (victim - 1) * 4096
    assert data[kind] in (0x0A, 0x0D)  # a leaf: of an index, or of a table
    data[kind] ^= 0x0A ^ 0x0D  # the other leaf type: a valid page that the check finds in the wrong tree
    path.write_bytes(bytes(data))
    return victim


def test_a_corrupted_page_fails_the_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "gate.db"
    corrupt_one_leaf(path)
    with sqlite3.connect(path) as db:  # the file still opens and reads as a database: the check is what refuses
        assert db.execute("SELECT count(*) FROM sync_state").fetchone() is not None
    db.close()
    with pytest.raises(StoreCorrupt, match="integrity check failed"):
        Store.open(path)


# -- a full or read-only disk: a real small tmpfs (CI runs as root) ----------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "qrgate-test", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    try:
        with open(path / "ballast", "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError:  # ENOSPC: full, which is the point (a full disk may refuse even the open)
        pass


def test_full_disk_denies_with_store_fault_and_loses_nothing(small_disk: Path) -> None:
    key = IssuerKey.new("show7", "hmac")
    store = Store.open(small_disk / "gate.db")
    decider = Decider(_verifier(key), store, "gate-1")
    admitted = [mint(key, f"ok{i}") for i in range(20)]
    assert all(decider.decide(t).outcome is Outcome.ADMIT for t in admitted)
    fill(small_disk)
    denied = []
    for i in range(200):  # WAL pages may still have room for a few; the disk must run out
        d = decider.decide(mint(key, f"late{i}" + "x" * 40, seat="S" * 60))
        assert d.outcome in (Outcome.ADMIT, Outcome.FAULT)
        if d.outcome is Outcome.FAULT:
            denied.append(d)
            break
    assert denied, "the disk never filled"
    assert denied[0].reason is Reason.STORE_FAULT
    assert "full" in denied[0].detail.lower()
    (small_disk / "ballast").unlink()
    retry = decider.decide(mint(key, denied[0].ticket_id or "", seat="S" * 60))
    assert retry.outcome is Outcome.ADMIT  # the denied scan burned nothing
    store.close()
    with Store.open(small_disk / "gate.db") as again:
        assert {("show7", f"ok{i}") for i in range(20)} <= again.redeemed_keys()
        assert again.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.fixture
def read_only(small_disk: Path) -> Iterator[Path]:
    """The store's disk remounted read-only (as a failing SD card is): a store was made there first."""
    Store.open(small_disk / "gate.db").close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        yield small_disk
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)


def test_read_only_disk_is_a_clear_store_error(read_only: Path) -> None:
    with pytest.raises(StoreError, match=r"gate\.db.*read-?only"):
        Store.open(read_only / "gate.db")


def test_read_only_disk_denies_at_the_cli_without_a_traceback(read_only: Path, gate_cli: Callable[..., object],
                                                              home: Path) -> None:
    key = IssuerKey.new("show7", "hmac")
    from gate.keys import KeyStore
    KeyStore(home / "keys").add_issuer_key(key)
    db_path = read_only / "gate.db"
    home.joinpath("gate.toml").write_text(f'[store]\npath = "{db_path}"\n')
    result = gate_cli("check", mint(key))
    assert result.returncode == 2  # type: ignore[attr-defined]
    assert "ADMIT" not in result.stdout  # type: ignore[attr-defined]
    assert "gate.db" in result.stderr and "Traceback" not in result.stderr  # type: ignore[attr-defined]


def _verifier(key: IssuerKey):  # type: ignore[no-untyped-def]
    from gate.keys import Keyring
    from gate.verify import Verifier
    return Verifier(Keyring([key.verify_key()]))
