"""The PostgreSQL arbiter store with several writers on one database: one compare-and-set, one gap-free stream
in commit order, migrations recorded once, a SQLite arbiter's state moved over (the cases both stores share are in
test_sync_arbiter_store.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import ROOT
from pg_fixtures import fresh_database
from sync_fixtures import Site, rows

from gate.keys import IssuerKey
from gate.rules import CheckinList, sign
from sync.arbiter.pgstore import PG_MIGRATIONS, PgArbiterStore
from sync.arbiter.store import ArbiterStore
from sync.exc import ArbiterStoreError
from sync.wire import Claim, Override, Release, Revocation, Supersession

WRITERS = 4
TICKETS = 150


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as found:
        yield found


def visible_seqs(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT seq FROM stream ORDER BY seq")]


def test_concurrent_writers_one_winner_per_ticket_and_a_stream_without_holes_in_commit_order(url: str) -> None:
    """Four instances claim the same tickets at once, in batches; a reader on its own connection looks at the
    stream all the while: whatever it sees is 1..n, never a number whose predecessor is not yet committed."""
    stores = [PgArbiterStore.open(url) for _ in range(WRITERS)]
    done = threading.Event()
    answers: list[list[str]] = [[] for _ in range(WRITERS)]
    holes: list[list[int]] = []
    looks = 0

    def write(i: int) -> None:
        for start in range(0, TICKETS, 5):
            batch = [Claim(f"w{i}-{t}", "show7", f"t{t}", f"g{i}", float(t), 0) for t in range(start, start + 5)]
            if start % 25 == 0:
                batch.append(Revocation("show7", f"r{i}-{start}", "admin"))
            got, _stream = stores[i].apply(batch)
            answers[i] += [a.answer for a in got]

    def read() -> None:
        nonlocal looks
        with psycopg.connect(url, autocommit=True) as conn:
            while not done.is_set():
                seqs = visible_seqs(conn)
                looks += 1
                if seqs != list(range(1, len(seqs) + 1)):
                    holes.append(seqs)
    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    reader.join()
    try:
        assert holes == [], f"a reader saw holes: {holes[0]}"
        assert looks > 10
        claims = [a for got in answers for a in got if a != "revoked"]
        assert claims.count("won") == TICKETS and claims.count("lost") == TICKETS * (WRITERS - 1)
        revocations = WRITERS * len(range(0, TICKETS, 25))
        head = stores[0].head()
        assert head == TICKETS + revocations
        items, _ = stores[1].read_stream(0, 10_000)
        assert [i["seq"] for i in items] == list(range(1, head + 1))
        assert sorted(i["ticket"] for i in items if i["kind"] == "redemption") == sorted(f"t{t}" for t in range(TICKETS))
    finally:
        for store in stores:
            store.close()


def test_a_rolled_back_batch_gives_its_sequence_numbers_back(url: str) -> None:
    store = PgArbiterStore.open(url)
    try:
        store.apply([Claim("s1", "show7", "t1", "g1", 1.0, 0)])
        with pytest.raises(RuntimeError), store._transaction() as db:
            store._append(db, "redemption", "{}", 0.0)
            raise RuntimeError("a bug half way through a batch")
        answers, stream = store.apply([Claim("s2", "show7", "t2", "g1", 2.0, 0)])
        assert answers[0].seq == 2 and [i["seq"] for i in stream] == [2]
    finally:
        store.close()


def test_instances_started_together_migrate_once_and_share_the_epoch(url: str) -> None:
    stores: list[PgArbiterStore] = []
    threads = [threading.Thread(target=lambda: stores.append(PgArbiterStore.open(url))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(stores) == 3 and len({s.epoch for s in stores}) == 1
        recorded = stores[0].rows("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in recorded] == [(n, name) for n, name, _ in PG_MIGRATIONS]
        assert stores[0].version == PG_MIGRATIONS[-1][0]
    finally:
        for store in stores:
            store.close()


def test_an_instance_outlives_a_lost_connection(url: str) -> None:
    """The server ends the session (as a restart does): that batch fails, the next one connects again."""
    store = PgArbiterStore.open(url)
    try:
        store.apply([Claim("s1", "show7", "t1", "g1", 1.0, 0)])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                         " AND pid <> pg_backend_pid()")
        with pytest.raises(ArbiterStoreError):
            store.apply([Claim("s2", "show7", "t2", "g1", 2.0, 0)])
        answers, _ = store.apply([Claim("s2", "show7", "t2", "g1", 2.0, 0)])
        assert (answers[0].answer, answers[0].seq) == ("won", 2)
    finally:
        store.close()


def sqlite_history(folder: Path) -> ArbiterStore:
    """A SQLite arbiter with some of everything: wins, a loss, a release, a conflict, a revocation, an override,
    a raised generation."""
    store = ArbiterStore.open(folder / "arbiter.db")
    store.apply([Claim("s1", "show7", "t1", "g1", 1.0, 0), Claim("s2", "show7", "t1", "g2", 2.0, 0),
                 Claim("s3", "show7", "t2", "g1", 3.0, 0), Claim("s4", "show7", "t3", "g3", 4.0, 0)])
    store.apply([Release("s3", "show7", "t2", "g1"), Claim("s5", "show7", "t1", "g3", 0.5, 0, True),
                 Revocation("show7", "t9", "admin", "refunded"), Override("admit", "show7", "t5", "admin", "ann", "vip"),
                 Supersession("show7", "t6", 2, "boxoffice")])
    lst = CheckinList("pass3", "show7", version=2)
    store.publish_lists([(lst, sign(lst, IssuerKey.new("show7", "hmac")))])
    return store


TABLES = ("claims", "scans", "conflicts", "revoked", "stream", "overrides", "generations", "list_documents")


def test_migrate_from_sqlite_keeps_every_row_the_epoch_and_the_stream_positions(tmp_path: Path, url: str) -> None:
    old = sqlite_history(tmp_path)
    new = PgArbiterStore.open(url)
    try:
        copied = new.adopt(old)
        assert copied["stream"] == old.head() > 5 and copied["overrides"] == 1
        assert (new.epoch, new.head(), new.counts()) == (old.epoch, old.head(), old.counts())
        for table in TABLES:
            assert new.rows(f"SELECT * FROM {table} ORDER BY 1") == old.rows(f"SELECT * FROM {table} ORDER BY 1"), table
        assert new.read_stream(0, 100) == old.read_stream(0, 100)
        # it goes on where the SQLite arbiter stopped: the same answers, the next sequence number, the next override
        for op in (Claim("s1", "show7", "t1", "g1", 1.0, 0), Claim("s2", "show7", "t1", "g2", 2.0, 0)):
            assert new.apply([op])[0] == old.apply([op])[0]
        answers, _ = new.apply([Claim("s6", "show7", "t7", "g1", 6.0, 0), Override("admit", "show7", "t8", "a", "b")])
        assert [a.seq for a in answers] == [old.head() + 1, old.head() + 2]
        assert [r["id"] for r in new.overrides()] == [1, 2]
        with pytest.raises(ArbiterStoreError, match="already holds"):
            new.adopt(old)  # never over another arbiter's state
    finally:
        old.close()
        new.close()


def test_gate_arbiter_migrate_then_a_gate_goes_on_from_its_stream_position(site: Site, url: str) -> None:
    arbiter = site.start_arbiter()
    tickets = site.mint(6)
    gate = site.start_gate("gate-1")
    assert [gate.check(t)["outcome"] for t in tickets[:3]] == ["ADMIT"] * 3
    assert gate.finish() == 0
    position = rows(site.gate_db("gate-1"), "SELECT key, value FROM sync_state ORDER BY key")
    arbiter.proc.terminate()
    assert arbiter.finish(20) == 0
    migrated = subprocess.run([sys.executable, "-m", "gate.cli", "arbiter", "migrate", "--from", str(site.arbiter_home),
                               "--to", url], capture_output=True, text=True, env=site.env(site.arbiter_home), cwd=ROOT)
    assert migrated.returncode == 0 and "head 3" in migrated.stdout, migrated.stderr
    site.start_arbiter("--store", url)
    gate = site.start_gate("gate-1")
    assert [gate.check(t)["outcome"] for t in tickets[:4]] == ["ALREADY_USED"] * 3 + ["ADMIT"]
    assert gate.finish() == 1  # some were rejected
    after = dict(rows(site.gate_db("gate-1"), "SELECT key, value FROM sync_state"))
    assert after["epoch"] == dict(position)["epoch"] and int(after["seq"]) == 4  # no reset: the same stream, on
    again = subprocess.run([sys.executable, "-m", "gate.cli", "arbiter", "migrate", "--from", str(site.arbiter_home),
                            "--to", url], capture_output=True, text=True, env=site.env(site.arbiter_home), cwd=ROOT)
    assert again.returncode == 2 and "already holds" in again.stderr and "Traceback" not in again.stderr
