"""The PostgreSQL arbiter store with several writers on one database: one compare-and-set, one gap-free stream
in commit order, migrations recorded once (the cases both stores share are in test_sync_arbiter_store.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from pg_fixtures import fresh_database

from sync.arbiter.pgstore import PG_MIGRATIONS, PgArbiterStore
from sync.wire import Claim, Revocation

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
        from sync.exc import ArbiterStoreError

        with pytest.raises(ArbiterStoreError):
            store.apply([Claim("s2", "show7", "t2", "g1", 2.0, 0)])
        answers, _ = store.apply([Claim("s2", "show7", "t2", "g1", 2.0, 0)])
        assert (answers[0].answer, answers[0].seq) == ("won", 2)
    finally:
        store.close()
