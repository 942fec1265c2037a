"""Following the arbiter's sequence-numbered stream: the one rule every follower applies.

A follower (a gate's ledger, the dashboard's history) stores the stream's
epoch (which arbiter database it follows) and the last sequence number it
applied.  Of a batch of items, sorted by ``seq``: those at or below the
position were applied already (duplicates, replays) and are skipped; the
ones that follow without a hole are applied, in order; an item past
position + 1 is a gap: the batch stops there and the follower catches up
(sync/follower.py) before it goes on.  A batch of another epoch changes
nothing: the follower first resets to the new epoch at position 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Item = Mapping[str, Any]


def in_sequence(items: Iterable[Item], position: int) -> tuple[list[Item], bool]:
    """(the items that follow `position` without a hole, in order; whether a gap stopped the batch)."""
    out: list[Item] = []
    for item in sorted(items, key=lambda i: int(i["seq"])):
        seq = int(item["seq"])
        if seq <= position:
            continue
        if seq != position + 1:
            return out, True
        out.append(item)
        position = seq
    return out, False
