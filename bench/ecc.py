"""Which QR error-correction level should tickets use?  Versions and read rates per level, one table.

    python bench/ecc.py            # ~1-2 minutes on 2 cores
    python bench/ecc.py --quick    # fewer frames, a smoke run

For levels M, Q and H (L for reference) it prints:

1. the QR version of the worked example (`show7 | 12B | 9f2`) and of a holder
   code (`QH:`, generation 2, slot 241) under HMAC and Ed25519;
2. the share of frames the pipeline reads, per level, with an edge covered
   by a finger and with blur, at the code sizes a phone held to a gate camera
   gives in a 640x480 frame.

The code is drawn at a fixed size in the frame (an app draws its QR at a
fixed width on the screen), so a higher level, which needs a higher version,
has smaller modules: the bench weighs what the extra error correction buys
against what the smaller modules cost.  Every level sees the same scenes (the
same finger, the same blur, the same pose); only the level changes.  A frame
counts as read when the pipeline reads it within two calls (as bench/decode.py).

Exit status: 0 (this bench informs a choice; it has no goal to fail).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import segno

if __package__ in (None, ""):  # run as a script from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._table import table
from gate.holder import Code, HolderTerms, present, with_terms
from gate.keys import IssuerKey
from gate.ticket import Ticket
from hardware.decoders import open_decoder
from hardware.scene import Conditions, render_frame

LEVELS = ("l", "m", "q", "h")
#: The levels the choice is between (L has too little to spare for a finger).
CHOICES = ("m", "q", "h")
#: The code's side in a 640x480 frame, pixels, quiet zone excluded: a phone
#: at arm's length from a gate camera, nearer, and held right up to it.
CODE_SIDES = (110, 150, 200)
#: What goes wrong at a gate, each drawn per frame, the same for every level.
TROUBLES = ("finger", "blur")


def sample_texts() -> dict[str, str]:
    """The worked example and the holder code of docs/ownership.md's vector, under each scheme.

    Fresh keys: the lengths, not the signatures, are what counts.  The holder
    code is the vector's (generation 2, a day's validity window, slot 241 of
    5760): 143 characters under HMAC, 215 under Ed25519.
    """
    texts = {}
    for scheme in ("hmac", "ed25519"):
        key = IssuerKey.new("show7", scheme)
        ticket = Ticket(event="show7", ticket_id="9f2", seat="12B")
        texts[f"{scheme} ticket"] = key.sign(ticket)
        terms = HolderTerms(anchor=bytes.fromhex("28eb32f35dabe7b70967ad0b020a7b8b"), start=1_800_000_000, slot=15,
                            slots=5760)
        holder = with_terms(ticket.replace(valid_from=1_800_000_000, valid_until=1_800_086_400, generation=2), terms)
        texts[f"{scheme} holder"] = present(key.sign(holder), Code(241, bytes.fromhex("4ce3947817db2a37ff7ab4f4ed84b150")))
    return texts


def version(text: str, level: str) -> int:
    return int(segno.make_qr(text, error=level, boost_error=False).version)


def modules(text: str, level: str) -> int:
    return 17 + 4 * version(text, level)


def scenes(trouble: str, n: int, seed: int) -> list[Conditions]:
    """`n` viewing conditions for one trouble; module_px is set per level later."""
    rng = np.random.default_rng(seed)

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    out = []
    for _ in range(n):
        base = Conditions(rotation=u(-15, 15), tilt=u(0, 25), blur=u(0.2, 0.5), noise=u(1, 3), grid=u(0, 0.3))
        if trouble == "finger":
            out.append(replace(base, cover=u(0.15, 0.35)))
        else:
            out.append(replace(base, blur=u(1.0, 2.0), motion=u(0, 3)))
    return out


def read_rates(texts: dict[str, str], n: int, seed: int) -> Counter[tuple[str, str, int, str]]:
    """Frames read per (text, trouble, code side, level)."""
    pipeline = open_decoder("pipeline")
    read: Counter[tuple[str, str, int, str]] = Counter()
    for t, trouble in enumerate(TROUBLES):
        for s, side in enumerate(CODE_SIDES):
            for name, text in texts.items():
                for i, cond in enumerate(scenes(trouble, n, seed * 1000 + 10 * t + s)):
                    for level in CHOICES:
                        sized = replace(cond, module_px=side / modules(text, level))
                        frame = render_frame(text, seed=seed * 100_000 + 1000 * s + i, difficulty=sized, error=level)
                        texts_read = pipeline.decode(frame) or pipeline.decode(frame)
                        read[(name, trouble, side, level)] += text in texts_read
    return read


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer frames, for a smoke run")
    parser.add_argument("--frames", type=int, help="frames per text, trouble, size and level (default 30, quick 6)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    n = args.frames or (6 if args.quick else 30)
    started = time.perf_counter()
    texts = sample_texts()

    print("QR version (modules a side) per error-correction level, segno, no boosting\n")
    rows = [[name, len(text)] + [f"{version(text, lv)} ({modules(text, lv)})" for lv in LEVELS]
            for name, text in texts.items()]
    print(table(["code", "chars", *(f"level {lv.upper()}" for lv in LEVELS)], rows))

    read = read_rates(texts, n, args.seed)
    print(f"\nframes read by the pipeline, of {n}, per level (code side in px in a 640x480 frame; px per module)\n")
    rows = []
    for name, text in texts.items():
        for trouble in TROUBLES:
            for side in CODE_SIDES:
                cells = [f"{read[(name, trouble, side, lv)]:>2} ({side / modules(text, lv):.1f})" for lv in CHOICES]
                rows.append([name, trouble, side, *cells])
    print(table(["code", "trouble", "side", *(f"level {lv.upper()}" for lv in CHOICES)], rows))

    print("\ntotals per level:")
    totals = {lv: sum(v for k, v in read.items() if k[3] == lv) for lv in CHOICES}
    per = n * len(texts) * len(TROUBLES) * len(CODE_SIDES)
    for lv in CHOICES:
        by = ", ".join(f"{trouble} {sum(v for k, v in read.items() if k[3] == lv and k[1] == trouble)}"
                       for trouble in TROUBLES)
        print(f"  level {lv.upper()}: {totals[lv]}/{per} ({100 * totals[lv] / per:.0f}%)  {by}")
    best = max(CHOICES, key=lambda lv: (totals[lv], -CHOICES.index(lv)))
    print(f"\nmost read: level {best.upper()}")
    print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
