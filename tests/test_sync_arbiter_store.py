"""The arbiter's compare-and-set, idempotent on scan ids, conflicts, releases, durability: every case on both stores,
a real SQLite file and a real PostgreSQL database (created and dropped by the test)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_fixtures import fresh_database

from sync.arbiter.store import ArbiterStore, Op
from sync.arbiter.stores import open_store
from sync.exc import ArbiterStoreError
from sync.wire import Answer, Claim, Release, Revocation, Supersession


@contextmanager
def location(backend: str, folder: Path) -> Iterator[str | Path]:
    """Where a new, empty arbiter store of `backend` goes."""
    if backend == "sqlite":
        yield folder / "arbiter.db"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def where(backend: str, tmp_path: Path) -> Iterator[str | Path]:
    with location(backend, tmp_path) as found:
        yield found


@pytest.fixture
def arbiter(where: str | Path) -> Iterator[ArbiterStore]:
    store = open_store(where, clock=lambda: 1000.0)
    yield store
    store.close()


def claim(scan: str, gate: str = "g1", ticket: str = "t1", at: float = 10.0, admitted: bool = False) -> Claim:
    return Claim(scan, "show7", ticket, gate, at, 0, admitted)


def one(store: ArbiterStore, op: Op) -> Answer:
    answers, _ = store.apply([op])
    return answers[0]


def test_first_claim_wins_and_the_next_loses_with_where_and_when(arbiter: ArbiterStore) -> None:
    answers, stream = arbiter.apply([claim("s1", "g1", at=10.0), claim("s2", "g2", at=11.0)])
    assert (answers[0].answer, answers[0].seq) == ("won", 1)
    assert answers[1].answer == "lost" and not answers[1].conflict
    assert answers[1].first is not None and (answers[1].first.gate, answers[1].first.at) == ("g1", 10.0)
    assert [(i["seq"], i["kind"], i["scan"]) for i in stream] == [(1, "redemption", "s1")]


def test_a_batch_of_claims_is_decided_exactly_as_the_same_claims_one_at_a_time(backend: str, tmp_path: Path) -> None:
    """PostgreSQL reads a batch's claim lookups ahead in one statement: each claim must still be decided on what
    every claim before it in the batch wrote (pgstore.PgArbiterStore._look_ahead)."""
    setup: list[Op] = [claim("s1", ticket="t1"), claim("s2", "g2", ticket="t2"), Revocation("show7", "t3", "admin"),
                       Revocation("*", "t4", "admin"), Supersession("show7", "t5", 2, "boxoffice"),
                       claim("s6", "g2", ticket="t6")]
    batch: list[Op] = [
        claim("s1", ticket="t1"),  # a replay: the same answer
        claim("s7", "g3", ticket="t2"),  # held: lost
        claim("s8", ticket="t3"), claim("s9", ticket="t4"),  # revoked (for the event, for every event)
        claim("s10", ticket="t5"),  # an older generation: superseded
        claim("s2", "g3", ticket="t2"),  # another gate's scan id: refused
        claim("s6", "g2", ticket="t6", admitted=True),  # its own win, admitted after all: still won
        claim("s11", "g2", ticket="t11", admitted=True), claim("s12", ticket="t12"),  # fresh: won
        claim("s13", ticket="t13"), claim("s14", "g2", ticket="t13", admitted=True),  # one ticket twice: a conflict
        claim("s15", ticket="t15"), claim("s15", ticket="t15", admitted=True),  # one scan twice
        claim("s16", "g3", ticket="t1", admitted=True),  # late, lost to s1: a conflict
    ]
    tables = ("claims", "scans", "conflicts", "revoked", "stream")
    with location(backend, tmp_path / "batched") as one_batch, location(backend, tmp_path / "single") as singly:
        batched, single = open_store(one_batch, clock=lambda: 1000.0), open_store(singly, clock=lambda: 1000.0)
        try:
            for store in (batched, single):
                store.apply(setup)
            answers, stream = batched.apply(batch)
            each = [single.apply([op]) for op in batch]
            assert answers == [a for got, _ in each for a in got]
            assert stream == [item for _, items in each for item in items]
            assert [batched.rows(f"SELECT * FROM {t} ORDER BY 1") for t in tables] == [
                single.rows(f"SELECT * FROM {t} ORDER BY 1") for t in tables]
        finally:
            batched.close()
            single.close()


def test_a_replayed_scan_id_gets_the_same_answer_and_changes_nothing(arbiter: ArbiterStore) -> None:
    first, _ = arbiter.apply([claim("s1"), claim("s2", "g2")])
    again, stream = arbiter.apply([claim("s2", "g2"), claim("s1"), claim("s1")])
    assert again == [first[1], first[0], first[0]] and stream == []
    assert arbiter.counts()["head"] == 1


def test_a_late_admission_that_loses_is_one_conflict_however_often_it_comes(arbiter: ArbiterStore) -> None:
    one(arbiter, claim("s1", "g1", at=10.0))
    answers, stream = arbiter.apply([claim("s2", "g2", at=9.0, admitted=True)] * 3)
    assert all(a.answer == "lost" and a.conflict for a in answers)
    [item] = stream
    assert item["kind"] == "conflict" and item["state"] == "open"
    assert (item["first"]["gate"], item["late"]["gate"], item["late"]["at"]) == ("g1", "g2", 9.0)
    assert arbiter.counts()["conflicts"] == 1


def test_a_late_admission_that_wins_is_no_conflict_and_can_never_be_released(arbiter: ArbiterStore) -> None:
    assert one(arbiter, claim("s1", admitted=True)).answer == "won"
    assert one(arbiter, Release("s1", "show7", "t1", "g1")).answer == "refused"
    assert arbiter.counts() == {"scans_won": 1, "held": 1, "conflicts": 0, "revoked": 0, "head": 1,
                                "checkpoint_errors": 0}


def test_asked_online_then_admitted_offline_the_same_scan_becomes_a_conflict_if_it_lost(
        arbiter: ArbiterStore) -> None:
    one(arbiter, claim("s1"))
    assert not one(arbiter, claim("s2", "g2")).conflict  # the answer was lost on the way: g2 timed out ...
    assert one(arbiter, claim("s2", "g2", admitted=True)).conflict  # ... and admitted offline
    assert one(arbiter, claim("s1", admitted=True)).answer == "won"  # same story for the winner: no conflict
    assert one(arbiter, Release("s1", "show7", "t1", "g1")).answer == "refused"


def test_a_release_frees_the_ticket_and_tombstones_the_scan(arbiter: ArbiterStore) -> None:
    one(arbiter, claim("s1"))
    answers, stream = arbiter.apply([Release("s1", "show7", "t1", "g1"), claim("s1")])
    assert [a.answer for a in answers] == ["released", "released"]  # a stale copy of the claim cannot win
    assert [i["kind"] for i in stream] == ["release"]
    assert one(arbiter, claim("s2", "g2")).answer == "won"


def test_releasing_an_unknown_scan_tombstones_it_in_advance(arbiter: ArbiterStore) -> None:
    assert one(arbiter, Release("s9", "show7", "t1", "g1")).answer == "released"
    assert one(arbiter, claim("s9")).answer == "released"  # the claim arrived after its release
    assert arbiter.counts()["held"] == 0


def test_a_late_admission_takes_over_when_its_rival_is_released(arbiter: ArbiterStore) -> None:
    one(arbiter, claim("s1", "g1"))  # g1 won but admitted nobody (it timed out and denied)
    one(arbiter, claim("s2", "g2", at=5.0, admitted=True))  # g2 admitted offline: a conflict, for now
    one(arbiter, claim("s3", "g3", at=6.0, admitted=True))
    _, stream = arbiter.apply([Release("s1", "show7", "t1", "g1")])
    assert [(i["kind"], i.get("scan"), i.get("state")) for i in stream] == [
        ("release", "s1", None), ("redemption", "s2", None), ("conflict", None, "void"), ("conflict", None, "open")]
    assert stream[3]["first"]["gate"] == "g2" and stream[3]["late"]["gate"] == "g3"  # only the real double entry
    assert one(arbiter, claim("s2", "g2", at=5.0, admitted=True)) == Answer("s2", "won", stream[1]["seq"])
    assert arbiter.counts()["conflicts"] == 1


def test_revocations(arbiter: ArbiterStore) -> None:
    answers, stream = arbiter.apply([Revocation("show7", "t1", "admin", "refunded"), Revocation("*", "t2", "admin"),
                                     Revocation("show7", "t1", "admin")])
    assert [(a.answer, a.seq) for a in answers] == [("revoked", 1), ("revoked", 2), ("revoked", None)]
    assert len(stream) == 2
    assert one(arbiter, claim("s1", ticket="t1")).answer == "revoked"
    assert one(arbiter, claim("s2", ticket="t2")).answer == "revoked"  # "*": every event


def test_a_scan_id_reused_for_another_ticket_is_invalid(arbiter: ArbiterStore) -> None:
    one(arbiter, claim("s1", ticket="t1"))
    assert one(arbiter, claim("s1", ticket="t2")).answer == "invalid"


def test_a_scan_id_of_another_gate_is_refused_and_changes_nothing(arbiter: ArbiterStore) -> None:
    won = one(arbiter, claim("s1", "g1"))
    refused, stream = arbiter.apply([claim("s1", "g2", admitted=True)])
    assert refused[0].answer == "refused" and stream == []
    assert one(arbiter, claim("s1", "g1")) == won and arbiter.counts()["conflicts"] == 0


def test_everything_survives_a_reopen_and_sequence_numbers_are_never_reused(where: str | Path) -> None:
    store = open_store(where)
    first, _ = store.apply([claim("s1"), claim("s2", "g2", ticket="t2")])
    store.apply([Release("s2", "show7", "t2", "g2")])
    epoch, head = store.epoch, store.head()
    store.close()
    store = open_store(where)
    assert (store.epoch, store.head()) == (epoch, head)
    assert one(store, claim("s1")) == first[0]
    assert one(store, claim("s3", "g3", ticket="t2")).seq == head + 1
    items, last = store.read_stream(0, 2)
    assert [i["seq"] for i in items] == [1, 2] and last == head + 1
    assert store.read_stream(2, 10)[0][0]["kind"] == "release"
    store.close()


def test_an_unusable_file_is_an_arbiter_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ArbiterStoreError, match=r"bad\.db"):
        ArbiterStore.open(bad)


def test_an_unreachable_database_is_an_arbiter_store_error_that_hides_the_password() -> None:
    from sync_fixtures import free_port

    url = f"postgresql://qrgate:s3cret@127.0.0.1:{free_port()}/none"
    with pytest.raises(ArbiterStoreError, match="cannot open the arbiter store") as raised:
        open_store(url)
    assert "s3cret" not in str(raised.value) and "qrgate:***@127.0.0.1" in str(raised.value)


OPS = st.lists(st.tuples(st.sampled_from(["claim", "late", "release", "revoke"]), st.integers(0, 5),
                         st.integers(0, 3), st.integers(0, 2)), max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPS)
def test_any_interleaving_keeps_the_invariants_and_a_replay_changes_nothing(
        backend: str, tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int, int]]) -> None:
    with location(backend, tmp_path_factory.mktemp("prop")) as where:
        store = open_store(where)
        try:
            check_invariants(store, ops)
        finally:
            store.close()


def check_invariants(store: ArbiterStore, ops: list[tuple[str, int, int, int]]) -> None:
    batch: list[Op] = []
    for kind, scan, ticket, gate in ops:
        # a scan id belongs to one gate and one ticket, as at a real gate
        s, t, g = f"s{scan}-{ticket}-{gate}", f"t{ticket}", f"g{gate}"
        if kind == "revoke":
            batch.append(Revocation("show7", t, "admin"))
        elif kind == "release":
            batch.append(Release(s, "show7", t, g))
        else:
            batch.append(Claim(s, "show7", t, g, float(scan), 0, kind == "late"))
    store.apply(batch)

    def ids(sql: str) -> set[object]:
        return {next(iter(r.values())) for r in store.rows(sql)}
    tables = ("claims", "scans", "conflicts", "revoked", "stream")
    before = {t: store.rows(f"SELECT * FROM {t} ORDER BY 1") for t in tables}
    again, stream = store.apply(batch)
    assert {t: store.rows(f"SELECT * FROM {t} ORDER BY 1") for t in tables} == before
    assert stream == [] and again == [store.apply([op])[0][0] for op in batch]
    # every admitted scan is the holder or an open conflict, and never released
    admitted = ids("SELECT scan_id FROM scans WHERE admitted = 1")
    holders = ids("SELECT scan_id FROM claims")
    late = ids("SELECT late_scan_id FROM conflicts WHERE state = 'open'")
    revoked_out = ids("SELECT scan_id FROM scans WHERE answer = 'revoked'")
    assert admitted <= holders | late | revoked_out
    assert not admitted & ids("SELECT scan_id FROM scans WHERE answer = 'released'")
    seqs = [r["seq"] for r in store.rows("SELECT seq FROM stream ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))


def wal_restarts(path: Path) -> int:
    """The WAL header's checkpoint sequence number: SQLite adds one each time it starts the WAL over."""
    header = (path.parent / f"{path.name}-wal").read_bytes()[:16]
    return int.from_bytes(header[12:16], "big")


def test_under_steady_claims_the_wal_starts_over_instead_of_growing(tmp_path: Path) -> None:
    """The checkpoint thread alone never catches up with steady commits (the WAL grew without end and every
    commit's fsync paid for the file growing); `apply` finishes its checkpoints, so the WAL starts over."""
    store = ArbiterStore.open(tmp_path / "busy.db")
    store.start_checkpointer(every=0.05)
    n, until = 0, time.monotonic() + 0.8
    while n < 1000 or time.monotonic() < until:
        store.apply([claim(f"s{n}", ticket=f"t{n}")])
        n += 1
    restarts, size = wal_restarts(tmp_path / "busy.db"), (tmp_path / "busy.db-wal").stat().st_size
    store.close()
    # the same claims with no checkpoint at all: the WAL holds every frame they wrote
    plain = ArbiterStore.open(tmp_path / "plain.db")
    plain.conn.execute("PRAGMA wal_autocheckpoint=0")
    for i in range(n):
        plain.apply([claim(f"s{i}", ticket=f"t{i}")])
    everything = (tmp_path / "plain.db-wal").stat().st_size
    plain.close()
    assert restarts >= 3, f"{n} claims in 0.8 s, yet the WAL started over only {restarts} times"
    assert size < everything / 3, f"WAL {size} bytes, all {n} claims' frames {everything}"
    assert store.checkpoint_errors == 0


def test_each_signed_list_goes_on_the_stream_once_and_catch_up_serves_it(arbiter: ArbiterStore,
                                                                         where: str | Path) -> None:
    """Lists on the stream (docs/checkin-lists.md): one item per (name, version), the document unchanged, durable
    (a reopened store, or another instance on the database, does not stream it again)."""
    from gate.keys import IssuerKey
    from gate.rules import CheckinList, sign

    key = IssuerKey.new("show7", "hmac")
    v1, v2 = CheckinList("pass3", "show7", version=1), CheckinList("pass3", "show7", version=2, entries=2)
    vip = CheckinList("vip", "show7", products=("vip",))
    docs = {lst.ref: sign(lst, key) for lst in (v1, v2, vip)}
    items = arbiter.publish_lists([(v1, docs["pass3@1"]), (vip, docs["vip@1"])])
    assert [(i["kind"], i["name"], i["version"], i["event"], i["ticket"]) for i in items] == [
        ("list", "pass3", 1, "show7", ""), ("list", "vip", 1, "show7", "")]
    assert items[0]["doc"] == docs["pass3@1"]
    assert arbiter.publish_lists([(v1, docs["pass3@1"]), (vip, docs["vip@1"])]) == []
    arbiter.apply([claim("s1")])
    again = open_store(where, clock=lambda: 1000.0)
    try:
        [new] = again.publish_lists([(v2, docs["pass3@2"]), (vip, docs["vip@1"])])
        assert (new["name"], new["version"], new["seq"]) == ("pass3", 2, 4)
    finally:
        again.close()
    served, head = arbiter.read_stream(0, 100)
    assert [(i["seq"], i["kind"]) for i in served] == [(1, "list"), (2, "list"), (3, "redemption"), (4, "list")]
    assert served[3]["doc"] == docs["pass3@2"] and head == 4
