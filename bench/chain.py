"""Back-step chains: hash steps per second, and the gate's check of a rotating code late in a 24 h window.

    python bench/chain.py [--n 500] [--steps 200000]

1. Steps per second of our verifier's hash (gate.backstep.forward:
   SHA-256 over tag || salt || position || value, cut to 16 bytes) against a
   plain hashlib loop (x = sha256(x).digest()) in the same run, best of 5.
   The design note we build from claims 5 million steps/s.
2. Verifier.verify of a holder code (signature, window, back-step, slot) at
   slot 1 and at the end of a 24 h window of 15 s slots (t = 5760 steps), for
   HMAC and Ed25519, p50/p99 over --n runs; a plain ticket as the baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._table import summary, table, time_each
from gate.backstep import anchor_of, code_salt, forward
from gate.holder import HolderTerms, code_for, present, with_terms
from gate.keys import IssuerKey, Keyring
from gate.outcomes import Reason
from gate.ticket import Ticket
from gate.verify import Verifier

START, SLOT, SLOTS = 1_800_000_000, 15, 5760
CLAIM = 5_000_000


def best_rate(run: object, steps: int, repeat: int = 5) -> float:
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(steps)  # type: ignore[operator]
        best = max(best, steps / (time.perf_counter() - t0))
    return best


def plain_loop(steps: int) -> bytes:
    x = bytes(32)
    sha256 = hashlib.sha256
    for _ in range(steps):
        x = sha256(x).digest()
    return x


def ours(steps: int) -> bytes:
    x, salt, done = bytes(16), bytes(16), 0
    while done < steps:  # positions are u16: walk the chain in 65535-step pieces
        n = min(65535, steps - done)
        x = forward(x, salt, 0, n)
        done += n
    return x


def holder_texts(key: IssuerKey) -> tuple[str, str, str]:
    seed = bytes(range(16))
    terms = HolderTerms(anchor_of(seed, code_salt("show7", "9f2"), SLOTS), START, SLOT, SLOTS)
    ticket = with_terms(Ticket(event="show7", ticket_id="9f2", seat="12B", valid_from=START,
                               valid_until=START + SLOT * SLOTS, generation=2), terms)
    text = key.sign(ticket)
    first = present(text, code_for(seed, ticket, terms, START + 7))
    last = present(text, code_for(seed, ticket, terms, START + SLOT * (SLOTS - 1) + 7))
    plain = key.sign(Ticket(event="show7", ticket_id="9f2", seat="12B", valid_from=START,
                            valid_until=START + SLOT * SLOTS, generation=2))
    return plain, first, last


def verify_rows(n: int) -> list[list[object]]:
    rows: list[list[object]] = []
    for scheme in ("hmac", "ed25519"):
        key = IssuerKey.new("show7", scheme)
        plain, first, last = holder_texts(key)
        for name, text, now in (("plain ticket", plain, START + 7), ("code, slot 1", first, START + 7),
                                (f"code, slot {SLOTS} (24 h)", last, START + SLOT * (SLOTS - 1) + 7)):
            verifier = Verifier(Keyring([key.verify_key()]), code_skew=1)
            assert verifier.verify(text, now).reason is Reason.NONE, (scheme, name)
            p50, p99, _ = summary(time_each(lambda _i, t=text, w=now, v=verifier: v.verify(t, w), n))
            rows.append([scheme, name, len(text), p50, p99])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="verifications per row")
    parser.add_argument("--steps", type=int, default=200_000, help="hash steps per rate measurement")
    args = parser.parse_args()
    plain, mine = best_rate(plain_loop, args.steps), best_rate(ours, args.steps)
    print(table(["hash loop", "steps/s (M)", "vs plain", "vs 5 M/s claim"], [
        ["plain hashlib sha256(x)", plain / 1e6, "1.00x", f"{plain / CLAIM:.2f}x"],
        ["ours: forward() (salted, positioned, 16 B)", mine / 1e6, f"{mine / plain:.2f}x", f"{mine / CLAIM:.2f}x"],
    ]))
    print(f"\n{SLOTS} steps (24 h at {SLOT} s) take {SLOTS / mine * 1000:.2f} ms at our rate\n")
    print(table(["scheme", "gate check (Verifier.verify)", "QR chars", "p50 us", "p99 us"], verify_rows(args.n)))


if __name__ == "__main__":
    main()
