"""Decision latency: ticket text to durable outcome, against raw crypto + raw SQLite in the same run.

    python bench/decide.py [--n 3000] [--dir DIR]

Goal (issue 2): our decision costs at most 1.5x (raw verify + raw durable
insert), for HMAC and for Ed25519.  Goal (issue 15): a decision by a
once-per-day check-in list costs at most 1.1x today's single-use decision.  The store lives in --dir (default: a
temporary folder under the current directory, so the disk is the real one).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._table import summary, table
from gate.checkin import CheckinGate
from gate.decide import Decider
from gate.keys import IssuerKey, Keyring
from gate.outcomes import Outcome
from gate.product import with_product
from gate.rules import CheckinList
from gate.store import Store
from gate.ticket import Ticket, parse
from gate.verify import Verifier

GOAL = 1.5
RULES_GOAL = 1.1
#: the list of the rule-checked decision: once per venue day, in a real time zone
DAY_LIST = CheckinList("day", "show7", per_day=True, timezone="Europe/Berlin", products=("day-pass",))


def raw_verify_fn(key: IssuerKey, texts: list[str]) -> Callable[[int], object]:
    """What the crypto alone costs: one HMAC (or Ed25519 verify) of the same signed bytes."""
    vk = key.verify_key()
    signed = [parse(t) for t in texts]
    if key.scheme == "hmac":
        return lambda i: hmac.compare_digest(
            hmac.new(vk.material, signed[i].signed, hashlib.sha256).digest()[:16], signed[i].tag)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    pub = Ed25519PublicKey.from_public_bytes(vk.material)
    return lambda i: pub.verify(signed[i].tag, signed[i].signed)


def raw_insert_fn(path: Path) -> tuple[Callable[[int], object], sqlite3.Connection]:
    """One INSERT + COMMIT per row, WAL, synchronous=FULL: the floor for a durable redemption."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE r (event TEXT, ticket_id TEXT, at REAL, PRIMARY KEY (event, ticket_id)) WITHOUT ROWID")

    def insert(i: int) -> None:
        db.execute("BEGIN")
        db.execute("INSERT INTO r VALUES ('show7', ?, 0)", (f"t{i}",))
        db.execute("COMMIT")
    return insert, db


def measure(scheme: str, n: int, folder: Path) -> dict[str, list[float]]:
    """Interleave raw verify, raw insert and our decision per ticket, so load on the machine hits all alike."""
    key = IssuerKey.new("show7", scheme)
    texts = [key.sign(Ticket(event="show7", ticket_id=f"{scheme}{i}", seat="12B")) for i in range(n)]
    verify = raw_verify_fn(key, texts)
    insert, raw_db = raw_insert_fn(folder / f"raw-{scheme}.db")
    store = Store.open(folder / f"gate-{scheme}.db")
    decider = Decider(Verifier(Keyring([key.verify_key()])), store, "bench-gate")
    passes = [key.sign(with_product(Ticket(event="show7", ticket_id=f"p{scheme}{i}", seat="12B"), "day-pass"))
              for i in range(n)]
    rules_store = Store.open(folder / f"rules-{scheme}.db")
    ruled = Decider(Verifier(Keyring([key.verify_key()])), rules_store, "bench-gate", checkin=CheckinGate(DAY_LIST))
    samples: dict[str, list[float]] = {"verify": [], "insert": [], "admit": [], "used": [], "rules": [],
                                       "rules_used": []}
    steps = (("verify", verify), ("insert", insert),
             ("admit", lambda i: _expect(decider.decide(texts[i]).outcome, Outcome.ADMIT)),
             ("rules", lambda i: _expect(ruled.decide(passes[i]).outcome, Outcome.ADMIT)),
             ("used", lambda i: _expect(decider.decide(texts[i]).outcome, Outcome.ALREADY_USED)),
             ("rules_used", lambda i: _expect(ruled.decide(passes[i]).outcome, Outcome.ALREADY_USED)))
    for i in range(n):
        for name, fn in steps:
            t0 = time.perf_counter_ns()
            fn(i)
            samples[name].append((time.perf_counter_ns() - t0) / 1000)
    store.close()
    rules_store.close()
    raw_db.close()
    return samples


def _expect(got: Outcome, want: Outcome) -> None:
    if got is not want:
        raise SystemExit(f"bench: expected {want}, got {got}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    rows, verdicts = [], []
    with tempfile.TemporaryDirectory(prefix="bench-decide-", dir=args.dir or Path.cwd()) as tmp:
        folder = Path(tmp)
        for scheme in ("hmac", "ed25519"):
            s = measure(scheme, args.n, folder)
            insert, crypto, admit, used = (summary(s[k]) for k in ("insert", "verify", "admit", "used"))
            rows.append((f"raw SQLite insert+commit (WAL, FULL) [{scheme} run]", *insert, 1e6 / insert[2]))
            rows.append((f"raw {scheme} verify", *crypto, 1e6 / crypto[2]))
            rows.append((f"decide {scheme}: ADMIT (durable)", *admit, 1e6 / admit[2]))
            rows.append((f"decide {scheme}: ALREADY_USED (audited)", *used, 1e6 / used[2]))
            rules, rules_used = summary(s["rules"]), summary(s["rules_used"])
            rows.append((f"decide {scheme} by a once-a-day list: ADMIT", *rules, 1e6 / rules[2]))
            rows.append((f"decide {scheme} by a once-a-day list: refused", *rules_used, 1e6 / rules_used[2]))
            for label, i in (("p50", 0), ("mean", 2)):
                ratio = admit[i] / (crypto[i] + insert[i])
                verdicts.append((f"{scheme} ADMIT {label} / (raw verify + raw insert)", f"{ratio:.2f}x",
                                 f"<= {GOAL}x", "PASS" if ratio <= GOAL else "FAIL"))
                ratio = rules[i] / admit[i]
                verdicts.append((f"{scheme} list ADMIT {label} / single-use ADMIT", f"{ratio:.2f}x",
                                 f"<= {RULES_GOAL}x", "PASS" if ratio <= RULES_GOAL else "FAIL"))
    print(f"decision latency, n={args.n} per row, microseconds\n")
    print(table(("path", "p50 us", "p99 us", "mean us", "per s"), rows))
    print()
    print(table(("goal", "measured", "target", "result"), verdicts))
    return 0 if all(v[-1] == "PASS" for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
