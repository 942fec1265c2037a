"""Who is inside each check-in list's area, as the dashboard folds the arbiter's `pass` stream items.

Pure and in memory (no I/O, no lock: sync/dashboard/model.py holds its lock around it).  What a caller may
rely on:

* Each `pass` item carries the ticket's state on its list after the move (docs/mqtt.md, "Transitions").
  An `Areas` keeps, per (event, ticket, list), the state of the highest sequence number it was given, so
  a replayed item, a catch-up page that repeats what the live stream brought, or items given out of order
  change nothing: the counts are those of the latest state of every ticket.
* Per list: `inside` is the number of tickets whose latest state is inside, `admitted` the sum of their
  entries (every entry the arbiter let spend one, an undo gives it back): both exactly the arbiter's
  counts (its `pass_areas`, `gate lists inside --arbiter`) for the items given; `conflicts` counts the
  list conflicts (late entries the arbiter would have refused) among them.
* `before` says a ticket's state before an item, with the gate and time of its last entry the dashboard
  saw (for a conflict's words: "entered at b-in while already inside since a-in").
* `listed` takes a `list` stream item (a signed list the arbiter holds): each list's `capacity` is that of
  the highest version seen (the one the arbiter enforces; the dashboard does not verify the signature, it
  only shows it), None for a list without one; `full` is true while `inside` >= `capacity`.  A list seen
  on the stream has a row from then on, 0 inside until a ticket enters.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.wire import Json

Key = tuple[str, str, str]  # (event, ticket, list)


@dataclass(frozen=True)
class Held:
    """One ticket's latest state on one list, as the stream said it (`seq` its item)."""

    seq: int
    inside: bool
    entries: int
    gate: str = ""  # the gate of its last entry the dashboard saw ("" if none)
    at: float = 0.0  # when (the gate's clock)


def moment(item: Json) -> float:
    """The item's `at` (the gate's clock), 0.0 if it has none: only `seq`, `list`, `scan` and `state` are
    checked by sync.wire.check_item, and a stream item never stops the dashboard."""
    at = item.get("at")
    return float(at) if isinstance(at, int | float) and not isinstance(at, bool) else 0.0


def key_of(item: Json) -> Key:
    return str(item["event"]), str(item["ticket"]), str(item["list"])


class Areas:
    """Feed it `pass` items (`apply`) or stored rows (`restore`); read `counts`."""

    def __init__(self) -> None:
        self.held: dict[Key, Held] = {}
        self.conflicts: dict[str, int] = {}  # list -> conflicts seen
        self._conflict_scans: set[str] = set()
        self.lists: dict[str, tuple[int, int]] = {}  # list -> (highest version seen, its capacity; 0: none)

    def listed(self, item: Json) -> None:
        """A `list` item: its capacity, if its version is the highest seen of that list."""
        doc = item.get("doc")
        fields = doc.get("list") if isinstance(doc, dict) else None
        capacity = fields.get("capacity", 0) if isinstance(fields, dict) else 0
        capacity = capacity if isinstance(capacity, int) and not isinstance(capacity, bool) and capacity > 0 else 0
        name, version = str(item["name"]), int(item["version"])
        if version > self.lists.get(name, (0, 0))[0]:
            self.lists[name] = (version, capacity)

    def apply(self, item: Json) -> bool:
        """Fold one `pass` item; False (and no change) if an item at or above its sequence number was already
        folded for that ticket.  `before(item)` beforehand says what the ticket's state was."""
        key, seq = key_of(item), int(item["seq"])
        before = self.held.get(key)
        if item.get("conflict") and str(item["scan"]) not in self._conflict_scans:
            self._conflict_scans.add(str(item["scan"]))
            self.conflicts[key[2]] = self.conflicts.get(key[2], 0) + 1
        if before is not None and before.seq >= seq:
            return False
        state = item["state"]
        entry = (item.get("direction") == "in" and item.get("outcome") == "ADMIT") or bool(item.get("conflict"))
        gate, at = (str(item.get("gate", "")), moment(item)) if entry else (
            (before.gate, before.at) if before else ("", 0.0))
        self.held[key] = Held(seq, bool(state["inside"]), int(state["entries"]), gate, at)
        return True

    def before(self, item: Json) -> Held | None:
        """The ticket's state just before `item` (with where it last entered), if the items below it came first."""
        held = self.held.get(key_of(item))
        return held if held is not None and held.seq < int(item["seq"]) else None

    def restore(self, key: Key, held: Held) -> None:
        """A state kept in the history (sync/dashboard/history.py): taken unless a later one is held."""
        now = self.held.get(key)
        if now is None or now.seq < held.seq:
            self.held[key] = held

    def clear(self) -> None:
        """The arbiter's database was replaced: its states start again."""
        self.held.clear()
        self.conflicts.clear()
        self._conflict_scans.clear()
        self.lists.clear()

    def counts(self) -> list[Json]:
        """Per list, by name: {"list", "inside", "admitted", "tickets", "conflicts", "capacity", "full"}."""
        out: dict[str, Json] = {}

        def row(name: str) -> Json:
            return out.setdefault(name, {"list": name, "inside": 0, "admitted": 0, "tickets": 0, "conflicts": 0})
        for (_event, _ticket, name), held in self.held.items():
            r = row(name)
            r["inside"] += int(held.inside)
            r["admitted"] += held.entries
            r["tickets"] += 1
        for name, n in self.conflicts.items():
            row(name)["conflicts"] = n
        for name in self.lists:
            row(name)
        for name, r in out.items():
            capacity = self.lists.get(name, (0, 0))[1]
            r["capacity"] = capacity or None
            r["full"] = bool(capacity) and r["inside"] >= capacity
        return [out[name] for name in sorted(out)]
