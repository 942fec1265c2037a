"""A power cut, not only a process crash: every ADMIT the gate reported is on disk, not only in the page cache.

The child is the real `gate check --json` under tests/fixtures/powercut.c, which logs every write to its
SQLite files, every sync that returned and every line printed (tests/powercut.py).  From that log the test
rebuilds the files as a disk would hold them after a cut at any instant: what was synced, plus nothing or
any subset of what was not.  A store that printed ADMIT before its commit was synced (synchronous=OFF or
NORMAL, a print before the commit) fails here, though it passes the SIGKILL test in test_concurrency.py.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import powercut
import pytest
from conftest import ROOT, gate_env

from gate.keys import IssuerKey, KeyStore
from gate.store import Store
from gate.ticket import Ticket, parse


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return powercut.build(tmp_path_factory.mktemp("powercut"))


def mint_many(home: Path, n: int) -> tuple[list[str], dict[str, str]]:
    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    tickets = [key.sign(Ticket(event="show7", ticket_id=f"t{i}", seat=f"R{i % 40}")) for i in range(n)]
    return tickets, {t: f"t{i}" for i, t in enumerate(tickets)}


def mint_id(text: str) -> str:
    return parse(text).ticket.ticket_id


def admitted(printed: bytes) -> list[str]:
    """The ticket ids of the whole ADMIT lines in `printed` (a line the cut left unfinished is no report)."""
    lines = printed.decode(errors="replace").split("\n")[:-1]
    return [row["ticket_id"] for row in map(json.loads, lines) if row["outcome"] == "ADMIT"]


def redeemed_after(image: dict[str, bytes | None], home: Path, scratch: Path) -> tuple[set[str], Counter[str]]:
    """Install `image` (files under `home`) into `scratch` and read it back: (redeemed ids, ADMITs per id in the
    audit), after an integrity check."""
    powercut.install(image, scratch, home)
    with sqlite3.connect(scratch / "gate.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        redeemed = {r[0] for r in db.execute("SELECT ticket_id FROM redeemed")}
        audit = Counter(r[0] for r in db.execute("SELECT ticket_id FROM audit WHERE outcome = 'ADMIT'"))
    db.close()
    return redeemed, audit


def where(replay: powercut.Replay, feed: list[str], admitted_before: set[str]) -> str:
    """Where the cut landed: inside the commit of the decision after the last whole printed line (a redemption
    if its ticket was not admitted before, a used one's audit row else), in a checkpoint, or between them."""
    lines = replay.printed.count(b"\n")  # one line per decision, in the order fed
    if lines == len(feed):
        return "after the last decision"
    deciding = feed[lines]
    if replay.in_flight("-wal"):
        return "inside a redemption" if mint_id(deciding) not in admitted_before else "inside an audit-only commit"
    return "inside a checkpoint" if replay.in_flight() else "between commits"


def run_check(home: Path, shim: Path, log: Path, feed: list[str], kill_after: float | None = None,
              kill_at_write: int = 0) -> subprocess.CompletedProcess[str]:
    """`gate check --json` on `feed` under the shim; killed after `kill_after` s, or by the shim itself right
    after its `kill_at_write`-th write to the store (0: never)."""
    env = gate_env(home, **powercut.env(shim, home, log), POWERCUT_KILL_AFTER=str(kill_at_write))
    proc = subprocess.Popen([sys.executable, "-m", "gate.cli", "check", "--json", "--gate-id", "gate-cut"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)
    timer = threading.Timer(kill_after, proc.send_signal, (signal.SIGKILL,)) if kill_after is not None else None
    if timer is not None:
        timer.start()
    out, err = proc.communicate("".join(t + "\n" for t in feed), timeout=300)
    if timer is not None:
        timer.join()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_every_admit_is_synced_before_it_is_printed(home: Path, tmp_path: Path, shim: Path) -> None:
    """A cut just after each line the gate printed: every ADMIT printed so far is in the rebuilt store."""
    tickets, _ = mint_many(home, 120)
    Store.open(home / "gate.db").close()  # its tables are on disk: what is tested is each decision's commit
    rng = random.Random(18)
    feed = tickets + rng.choices(tickets, k=40)  # ALREADY_USED ones too: they commit an audit row each
    rng.shuffle(feed)
    log = tmp_path / "cut.log"
    start = powercut.snapshot(home)
    done = run_check(home, shim, log, feed)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr  # 1: some were ALREADY_USED
    replay = powercut.Replay(start)
    checked = 0
    for record in powercut.records(log):
        replay.feed(record)
        if record.kind != "O" or b'"ADMIT"' not in record.data:
            continue
        reported = admitted(replay.printed)
        redeemed, audit = redeemed_after(replay.image(rng if checked % 2 else None), home, tmp_path / "disk")
        missing = set(reported) - redeemed
        assert not missing, f"cut after report {len(reported)}: reported ADMIT but not on disk: {sorted(missing)}"
        assert set(audit) == redeemed and max(audit.values(), default=1) == 1
        checked += 1
    assert checked == 120 and len(admitted(replay.printed)) == 120
    assert sum(r.kind == "S" for r in powercut.records(log)) >= 160  # at least a sync per decision


def test_power_cuts_at_random_moments_lose_no_reported_admission(home: Path, tmp_path: Path, shim: Path) -> None:
    """30 runs, each cut at a random moment (every other one: right after a random write of the store, so
    inside a commit for sure); the next run starts from what the disk held."""
    tickets, ids = mint_many(home, 40000)  # never short of fresh tickets: each cut lands among redemptions
    Store.open(home / "gate.db").close()
    rng = random.Random(20261203)
    reported: Counter[str] = Counter()
    landed = Counter[str]()
    for run in range(30):
        # the child decides a thousand or so a second: feed more than it can finish before the cut
        fresh = [t for t in tickets if ids[t] not in reported][:3500]
        feed = fresh + rng.choices(tickets, k=4000 - len(fresh))
        rng.shuffle(feed)
        log = tmp_path / f"run{run}.log"
        start = powercut.snapshot(home)
        if run % 2:
            done = run_check(home, shim, log, feed, kill_after=rng.uniform(0.3, 1.0))
        else:
            done = run_check(home, shim, log, feed, kill_at_write=rng.randint(20, 800))
        assert done.returncode == -signal.SIGKILL, f"run {run} ended before the cut: feed more tickets"
        replay = powercut.Replay(start)
        for record in powercut.records(log):
            replay.feed(record)
        log.unlink()
        before = set(reported)
        reported.update(admitted(replay.printed))
        landed[where(replay, feed, before)] += 1
        assert max(reported.values()) == 1, "a ticket was admitted twice"
        image = replay.image(rng if run % 4 < 2 else None)
        powercut.install(image)  # the power is back: what the disk held is all the next run finds
        redeemed, audit = redeemed_after(image, home, tmp_path / "disk")
        assert set(reported) <= redeemed, f"run {run}: a ticket reported ADMIT is missing after the cut"
        assert set(audit) == redeemed and max(audit.values(), default=1) == 1
    print(f"cuts: {dict(landed)}, {len(reported)} admissions reported")
    assert len(reported) > 300, "the child never got far enough to admit much"
    assert landed["inside a redemption"] >= 10, f"too few cuts landed inside a redemption's commit: {landed}"
