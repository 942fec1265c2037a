"""Several processes on one store file, and crashes at random moments (real processes, SIGKILL)."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import ROOT, gate_env

from gate.keys import IssuerKey, KeyStore
from gate.store import Store
from gate.ticket import Ticket


def mint_many(home: Path, n: int, prefix: str = "t") -> list[str]:
    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    return [key.sign(Ticket(event="show7", ticket_id=f"{prefix}{i}", seat=f"R{i % 40}")) for i in range(n)]


def start_check(home: Path, gate_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gate.cli", "check", "--json", "--gate-id", gate_id],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=gate_env(home), cwd=ROOT)


BATCH = 2  # released at a barrier two at a time, the two processes stay in step


def drive(proc: subprocess.Popen[str], batches: list[list[str]], gate: threading.Barrier) -> list[list[dict]]:
    """Feed `batches` to one `gate check --json`, each released at `gate` together with the other process's."""
    assert proc.stdin is not None and proc.stdout is not None
    answers = []
    for batch in batches:
        gate.wait(timeout=60)
        proc.stdin.write("".join(t + "\n" for t in batch))
        proc.stdin.flush()
        answers.append([json.loads(proc.stdout.readline()) for _ in batch])
    proc.stdin.close()
    return answers


def collisions(mine: list[dict], theirs: list[dict]) -> int:
    """Tickets of one batch (the same tickets, in the same order, for both) that the two processes were
    deciding at the same time: the loser began its decision before the winner began its next one (a
    process decides one line at a time, so by then the winner's commit had returned)."""
    both = 0
    for i, (a, b) in enumerate(zip(mine[:-1], theirs[:-1], strict=True)):
        loser, after = (b, mine[i + 1]) if a["outcome"] == "ADMIT" else (a, theirs[i + 1])
        both += loser["at"] < after["at"]
    return both


def test_two_processes_racing_over_1000_tickets_admit_each_exactly_once(home: Path) -> None:
    tickets = mint_many(home, 1000)
    procs = [start_check(home, f"gate-{n}") for n in (1, 2)]
    for p in procs:  # each has started and opened the store once it answers a first line
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write("warm-up\n")
        p.stdin.flush()
        assert json.loads(p.stdout.readline())["reason"] == "malformed"
    # both get the same small batches in the same order, released together: they try each ticket at once
    batches = [tickets[i:i + BATCH] for i in range(0, len(tickets), BATCH)]
    start_gate = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        answered = list(pool.map(lambda p: drive(p, batches, start_gate), procs))
    for p in procs:
        assert p.wait(timeout=60) == 1  # the warm-up line was rejected
        assert p.stderr is not None and "Traceback" not in p.stderr.read()
    rows = [r for per_proc in answered for batch in per_proc for r in batch]
    assert len(rows) == 2000
    admitted = Counter(r["ticket_id"] for r in rows if r["outcome"] == "ADMIT")
    assert sum(admitted.values()) == 1000
    assert set(admitted.values()) == {1}
    assert {r["outcome"] for r in rows} == {"ADMIT", "ALREADY_USED"}
    used = [r for r in rows if r["outcome"] == "ALREADY_USED"]
    assert all(r["first_gate"] != r["gate_id"] for r in used)  # each lost to the other process
    overlapped = sum(collisions(a, b) for a, b in zip(*answered, strict=True))
    assert overlapped >= len(batches) // 2, f"only {overlapped} of {len(batches)} first tickets were tried by both at once"
    with sqlite3.connect(home / "gate.db") as db:
        assert db.execute("SELECT count(*) FROM redeemed").fetchone()[0] == 1000
        assert db.execute("SELECT count(*) FROM audit WHERE outcome = 'ADMIT'").fetchone()[0] == 1000


def test_sigkill_at_random_moments_loses_no_admission_and_admits_nothing_twice(home: Path, tmp_path: Path) -> None:
    tickets = mint_many(home, 10000)
    Store.open(home / "gate.db").close()  # the store exists: a kill during start-up finds its tables
    rng = random.Random(20261121)
    reported: dict[str, int] = Counter()
    ids = {t: f"t{i}" for i, t in enumerate(tickets)}
    for kill in range(50):
        # the child decides a few thousand a second: feed more than it can finish before the kill
        fresh = [t for t in tickets if ids[t] not in reported][:6000]
        replay = rng.choices(tickets, k=8000 - len(fresh))  # already used ones too (still durable writes)
        feed = tmp_path / "feed.txt"
        order = fresh + replay
        rng.shuffle(order)
        feed.write_text("".join(t + "\n" for t in order))
        with feed.open() as stdin:
            proc = subprocess.Popen([sys.executable, "-m", "gate.cli", "check", "--json", "--gate-id", "gate-crash"],
                                    stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                    env=gate_env(home), cwd=ROOT)
            timer = threading.Timer(rng.uniform(0.3, 1.2), proc.send_signal, (signal.SIGKILL,))  # start-up included
            timer.start()
            out, _ = proc.communicate(timeout=120)
            timer.join()
        assert proc.returncode == -signal.SIGKILL, f"run {kill} ended before the kill: feed more tickets"
        for line in out.splitlines():
            if not line.endswith("}"):
                continue  # the kill can land mid-line: an unfinished report is no report
            row = json.loads(line)
            if row["outcome"] == "ADMIT":
                reported[row["ticket_id"]] += 1
        with sqlite3.connect(home / "gate.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            redeemed = {r[0] for r in db.execute("SELECT ticket_id FROM redeemed")}
            audit_admits = Counter(r[0] for r in db.execute("SELECT ticket_id FROM audit WHERE outcome = 'ADMIT'"))
        assert set(reported) <= redeemed, "a ticket reported ADMIT is missing after the crash"
        assert max(reported.values(), default=1) == 1, "a ticket was admitted twice"
        assert max(audit_admits.values(), default=1) == 1
        assert set(audit_admits) == redeemed  # the redemption and its audit row commit together
    assert len(reported) > 100, "the child never got far enough to admit much"

