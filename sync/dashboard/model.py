"""The dashboard's live view: what every gate, the arbiter and the stream say, folded into one state.

Pure and in memory (no I/O); thread-safe.  Times are the dashboard's own
clock when a message arrived (``received``): gates have no real-time clock,
so rates and charts do not trust theirs.  `snapshot` is the JSON the page
renders (sync/dashboard/static/app.js); docs/dashboard.md describes it.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from sync.dashboard.areas import Areas, Held, Key, moment
from sync.dashboard.words import REASONS, conflict_words, words
from sync.wire import Json, ScanEvent

WINDOW = 60  # minutes of per-minute counts kept (the venue chart)
SPARK = 30  # minutes in a gate's sparkline
FEED = 100  # scans in the live feed
LISTED = 50  # conflicts, revocations and overrides listed


class Minutes:
    """Counts per minute (key -> n) for the last WINDOW minutes."""

    def __init__(self) -> None:
        self.buckets: dict[int, Counter[str]] = {}

    def add(self, t: float, *keys: str) -> None:
        minute = int(t // 60)
        bucket = self.buckets.setdefault(minute, Counter())
        for key in keys:
            bucket[key] += 1
        if len(self.buckets) > WINDOW + 2:
            for old in [m for m in self.buckets if m <= minute - WINDOW - 1]:
                del self.buckets[old]

    def series(self, now: float, key: str, minutes: int) -> list[int]:
        last = int(now // 60)
        return [self.buckets.get(m, Counter())[key] for m in range(last - minutes + 1, last + 1)]

    def totals(self, now: float, minutes: int, prefix: str) -> dict[str, int]:
        """Sum over the last `minutes` of every key starting with `prefix` (the prefix removed)."""
        first = int(now // 60) - minutes + 1
        out: Counter[str] = Counter()
        for minute, bucket in self.buckets.items():
            if minute >= first:
                out.update({k[len(prefix):]: n for k, n in bucket.items() if k.startswith(prefix)})
        return dict(out.most_common())


@dataclass
class GateView:
    """One gate as the dashboard knows it."""

    gate: str
    state: str = "unknown"
    reason: str = ""
    detail: str = ""
    heard: float = 0.0
    clock_offset: float | None = None
    outbox: int = 0
    arbiter: str = ""
    fresh: bool = False  # its status was heard since the dashboard's link last came up
    decisions: dict[str, int] = field(default_factory=dict)
    since_status: Counter[str] = field(default_factory=Counter)  # scans that arrived after its last status
    counters: dict[str, int] = field(default_factory=dict)
    minutes: Minutes = field(default_factory=Minutes)
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=2000))  # admissions' arrival times

    def totals(self) -> tuple[int, int]:
        counts = Counter(self.decisions) + self.since_status
        admitted = counts["ADMIT"]
        return admitted, sum(counts.values()) - admitted

    def to_json(self, now: float, known: bool) -> Json:
        """Its card; with `known` False (see `Model.snapshot`) its state is "unknown", `last_state` what it was."""
        admitted, rejected = self.totals()
        while self.recent and self.recent[0] < now - 60:
            self.recent.popleft()
        known = known and self.fresh
        return {"gate": self.gate, "state": self.state if known else "unknown", "last_state": self.state,
                "known": known, "reason": self.reason, "detail": self.detail, "heard": self.heard,
                "clock_offset": self.clock_offset, "outbox": self.outbox,
                "arbiter": self.arbiter, "admitted": admitted, "rejected": rejected,
                "per_minute": len(self.recent),
                "spark_in": self.minutes.series(now, "in", SPARK), "spark_out": self.minutes.series(now, "out", SPARK),
                "reasons": self.minutes.totals(now, WINDOW, "why:"),
                "dropped": self.counters.get("scans_dropped", 0)}


def reason_of(scan: ScanEvent) -> str:
    return scan.reason or scan.outcome.lower()


class Model:
    """Feed it messages (`scan`, `status`, `arbiter_status`, `stream_item`, `link`); read `snapshot`."""

    def __init__(self, capacity: int = 0, silent_after: float = 30.0) -> None:
        self.capacity = capacity
        self.silent_after = silent_after
        self._lock = threading.Lock()
        self.gates: dict[str, GateView] = {}
        self.venue = Minutes()
        self.feed: deque[Json] = deque(maxlen=FEED)
        self.held: dict[tuple[str, str], str] = {}  # (event, ticket) -> the holder's scan id
        self.conflicts: dict[str, Json] = {}  # by the late scan's id: double entries and list conflicts
        self.areas = Areas()
        self.revocations: deque[Json] = deque(maxlen=LISTED)
        self.overrides: deque[Json] = deque(maxlen=LISTED)
        self.revoked = 0
        self.arbiter: Json = {"state": "unknown", "heard": 0.0, "head": None}
        self.arbiter_fresh = False
        self.link_up = False
        self.link_since = 0.0
        self.broker = ""

    def _gate(self, gate_id: str) -> GateView:
        view = self.gates.get(gate_id)
        if view is None:
            view = self.gates[gate_id] = GateView(gate_id)
        return view

    # -- messages --------------------------------------------------------------------------------------
    def scan(self, scan: ScanEvent, received: float, live: bool = True) -> Json:
        """One decision; returns its feed row.  `live` False: from the history at start (no status delta)."""
        row = {**scan.to_json(), "received": received, "words": words(scan.reason) if scan.reason else ""}
        with self._lock:
            view = self._gate(scan.gate_id)
            if live:
                view.heard = max(view.heard, received)
                view.since_status[scan.outcome] += 1
            keys = ("in",) if scan.admitted else ("out", f"why:{reason_of(scan)}")
            view.minutes.add(received, *keys)
            self.venue.add(received, *keys)
            if scan.admitted:
                view.recent.append(received)
            self.feed.appendleft(row)
        return row

    def status(self, gate_id: str, payload: Json, received: float, retained: bool) -> None:
        """A gate's (retained) status; a retained one was published earlier: its `at` (gate clock) says when."""
        with self._lock:
            view = self._gate(gate_id)
            at = payload.get("at")
            offset = payload.get("clock_offset")
            if retained and isinstance(at, int | float):
                heard = float(at) + (offset if isinstance(offset, int | float) else 0.0)
                view.heard = max(view.heard, min(heard, received))
            else:
                view.heard = max(view.heard, received)
            view.state = str(payload.get("state", "unknown"))
            view.fresh = True
            view.reason = str(payload.get("reason", ""))
            view.detail = str(payload.get("detail", ""))[:200]
            if "clock_offset" in payload:
                view.clock_offset = offset if isinstance(offset, int | float) else None
            if "arbiter" in payload:
                view.arbiter = str(payload["arbiter"])
            outbox = payload.get("outbox")
            if isinstance(outbox, dict):
                view.outbox = sum(n for n in outbox.values() if isinstance(n, int))
            decisions = payload.get("decisions")
            if isinstance(decisions, dict):
                view.decisions = {k: n for k, n in decisions.items() if isinstance(n, int)}
                view.since_status.clear()
            counters = payload.get("counters")
            if isinstance(counters, dict):
                view.counters = {k: n for k, n in counters.items() if isinstance(n, int)}

    def arbiter_status(self, payload: Json, received: float) -> None:
        with self._lock:
            self.arbiter = {"state": str(payload.get("state", "unknown")), "heard": received,
                            "head": payload.get("head"), "detail": str(payload.get("detail", ""))[:200]}
            self.arbiter_fresh = True

    def stream_item(self, item: Json) -> None:
        """One item of the arbiter's stream, in sequence order."""
        kind, key = item["kind"], (item["event"], item.get("ticket", ""))  # a list item names no ticket
        with self._lock:
            if kind == "redemption":
                self.held[key] = item["scan"]
                if str(item["gate"]).startswith("admin:"):
                    self.overrides.appendleft(self._override_row(item, "admit"))
            elif kind == "release":
                if self.held.get(key) == item["scan"]:
                    del self.held[key]
                if item.get("override"):
                    self.overrides.appendleft(self._override_row(item, "unredeem"))
            elif kind == "revocation":
                self.revoked += 1
                self.revocations.appendleft({"event": item["event"], "ticket": item["ticket"],
                                             "by": item.get("by", ""), "admin": item.get("admin") or "",
                                             "reason": item.get("reason", ""), "at": item.get("at"),
                                             "seq": item["seq"]})
            elif kind == "conflict":
                self.conflicts[item["late"]["scan"]] = {
                    "kind": "double", "event": item["event"], "ticket": item["ticket"], "state": item["state"],
                    "first": item["first"], "late": item["late"], "arbiter_at": item.get("arbiter_at"),
                    "seq": item["seq"]}
            elif kind == "pass":
                self._pass(item)
            elif kind == "list":  # a signed list the arbiter holds: its capacity
                self.areas.listed(item)

    def _pass(self, item: Json) -> None:
        """A ticket's new state on a list: the areas' counts, and a list conflict listed like a double entry."""
        before = self.areas.before(item)
        self.areas.apply(item)
        if item.get("conflict") and item["scan"] not in self.conflicts:
            self.conflicts[item["scan"]] = list_conflict(item, before)

    def restore_passes(self, states: list[tuple[Key, Held]]) -> None:
        """The tickets' states kept in the history (a later state already folded wins)."""
        with self._lock:
            for key, held in states:
                self.areas.restore(key, held)

    def _arbiter_json(self) -> Json:
        known = self.link_up and self.arbiter_fresh
        return {**self.arbiter, "state": self.arbiter["state"] if known else "unknown",
                "last_state": self.arbiter["state"], "known": known}

    @staticmethod
    def _override_row(item: Json, action: str) -> Json:
        return {"action": action, "event": item["event"], "ticket": item["ticket"],
                "admin": item.get("admin") or item.get("by", ""), "reason": item.get("reason", ""),
                "at": item.get("arbiter_at"), "seq": item["seq"]}

    def reset_stream(self) -> None:
        """The arbiter's database was replaced: what it holds now comes again from sequence 1."""
        with self._lock:
            self.held.clear()
            self.areas.clear()

    def link(self, up: bool, now: float, broker: str = "") -> None:
        """The dashboard's own link to the broker went up or down.

        While it is down nobody's state is known (a gate may be fine; the dashboard cannot hear it): the
        snapshot says "unknown" for every gate and the arbiter.  Once it is up again, each state comes back
        with its next status message (the retained one the broker sends on subscribing, or a fresh one);
        what was heard before the link went down is not taken for the present.
        """
        with self._lock:
            if up and not self.link_up:
                for view in self.gates.values():
                    view.fresh = False
                self.arbiter_fresh = False
            if up != self.link_up or not self.link_since:
                self.link_up, self.link_since = up, now
            self.broker = broker or self.broker

    # -- reading ------------------------------------------------------------------------------------------
    def snapshot(self, now: float, *, feed: bool = False, counters: dict[str, int] | None = None) -> Json:
        """Everything the page shows (the live feed only with `feed`).

        A gate's and the arbiter's `state` is "unknown" while the dashboard's link is down and, after it
        came back, until their next status (`link`); `last_state` is the state last heard, `heard` when.
        """
        with self._lock:
            gates = [v.to_json(now, self.link_up)
                     for v in sorted(self.gates.values(), key=lambda v: _natural(v.gate))]
            for g in gates:
                if g["state"] == "online" and g["heard"] and now - g["heard"] > self.silent_after:
                    g["state"] = "silent"
            conflicts = sorted(self.conflicts.values(), key=lambda c: (c["state"] != "open", -c["seq"]))
            out: Json = {
                "now": now, "stale": not self.link_up,
                "link": {"up": self.link_up, "since": self.link_since, "broker": self.broker},
                "arbiter": self._arbiter_json(), "gates": gates,
                "venue": {"minutes": [int(now // 60) * 60 - 60 * (WINDOW - 1 - i) for i in range(WINDOW)],
                          "admitted": self.venue.series(now, "in", WINDOW),
                          "rejected": self.venue.series(now, "out", WINDOW),
                          "reasons": self.venue.totals(now, WINDOW, "why:")},
                "capacity": {"issued": self.capacity, "admitted": len(self.held),
                             "double": sum(c["state"] == "open" and c["kind"] == "double" for c in conflicts)},
                "areas": self.areas.counts(), "reason_words": REASONS,
                "conflicts": conflicts[:LISTED], "revocations": list(self.revocations), "revoked": self.revoked,
                "overrides": list(self.overrides), "counters": counters or {},
            }
            if feed:
                out["feed"] = list(self.feed)
        return out


def list_conflict(item: Json, before: Held | None) -> Json:
    """A list conflict's row, shaped like a double entry's (`first`: where the ticket last entered, as the
    arbiter's item says or else as the dashboard saw it; `late`: the entry the gate let through offline),
    with `summary` in words."""
    reason, gate = str(item.get("reason", "")), str(item.get("gate", ""))
    said = item.get("first")
    if isinstance(said, dict) and said.get("gate"):
        first: Json | None = {"gate": str(said["gate"]), "at": said.get("at")}
    else:
        first = {"gate": before.gate, "at": before.at} if before is not None and before.gate else None
    summary = conflict_words(reason, gate, str(first["gate"]) if first is not None else None)
    return {"kind": "list", "event": item["event"], "ticket": item["ticket"], "list": item["list"], "state": "open",
            "reason": reason, "words": words(reason), "summary": summary + " (the gate was offline)",
            "first": first, "late": {"gate": gate, "at": moment(item), "scan": item["scan"]},
            "arbiter_at": item.get("arbiter_at"), "seq": item["seq"]}


def _natural(name: str) -> list[Any]:
    """Sort key: gate-2 before gate-10."""
    parts: list[Any] = []
    digits = ""
    for ch in name + "\0":
        if ch.isdigit():
            digits += ch
            continue
        if digits:
            parts.append((0, int(digits)))
            digits = ""
        parts.append((1, ch))
    return parts
