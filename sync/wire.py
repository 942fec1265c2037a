"""The JSON payloads on the wire, version 1 (docs/mqtt.md shows each with an example).

Every payload is one JSON object (UTF-8) holding ``"v": 1``.  Times are Unix
seconds as numbers: ``at`` is the gate's clock at the scan, ``arbiter_at``
the arbiter's clock (gates have no real-time clock; the arbiter's messages
carry its time).  Decoding validates every field it uses and raises
BadMessage otherwise; a caller may rely on a decoded object holding the
types its annotations say.

Requests (gate -> arbiter) carry an MQTT v5 ResponseTopic and
CorrelationData; the arbiter answers on that topic with the same
CorrelationData.  Claims, releases and revocations are lists so that an
outbox drains in a few messages; an interactive claim is a list of one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sync.exc import BadMessage

if TYPE_CHECKING:  # the decision core costs cryptography to import: only its type is needed here
    from gate.decide import Decision

VERSION = 1
#: what the arbiter answers for one claim or release (docs/mqtt.md, "Answers")
ANSWERS = ("won", "lost", "revoked", "superseded", "released", "refused", "invalid")
STREAM_KINDS = ("redemption", "release", "revocation", "conflict", "generation", "pass", "list")
#: the largest signed list document (encoded) the arbiter puts on the stream (item kind "list"): a catch-up page
#: stays under MAX_PAYLOAD (the arbiter trims a page by size), a bigger list is copied to its gates by hand
MAX_LIST_DOC = 64 * 1024
MAX_ITEMS = 1000
MAX_TEXT = 256
#: a code as shown at a gate: a ticket's text (gate.ticket.MAX_TEXT) plus a holder code's suffix
MAX_CODE = 1100
#: no legitimate payload is larger: gates split a drain into requests of MAX_PAYLOAD // 4 (wire.requests),
#: a catch-up reply holds at most CATCHUP_MAX items (~300 KB at the longest names), a stream batch 500.
#: The broker's max_packet_size (systemd/mosquitto/qrgate.conf.template) is this plus room for the topic
#: and properties; every parser here refuses a larger payload unread (decode), the arbiter before it
#: reaches a parser (sync/arbiter/intake.py)
MAX_PAYLOAD = 1024 * 1024
CATCHUP_MAX = 500

Json = dict[str, Any]


def encode(obj: Json) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode(payload: bytes | bytearray) -> Json:
    """The JSON object of a version-1 payload; BadMessage for anything else (checked before parsing: a
    payload over MAX_PAYLOAD is refused unread)."""
    if len(payload) > MAX_PAYLOAD:
        raise BadMessage(f"{len(payload)} bytes: over the limit of {MAX_PAYLOAD}")
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadMessage("not a JSON object")
    if obj.get("v") != VERSION:
        raise BadMessage(f"unsupported version {obj.get('v')!r} (this gate speaks v{VERSION})")
    return obj


# -- field checks ---------------------------------------------------------------------

def text(d: Json, key: str, default: str | None = None, *, limit: int = MAX_TEXT) -> str:
    value = d.get(key, default)
    if not isinstance(value, str) or len(value) > limit or (default is None and not value):
        raise BadMessage(f"{key!r} must be a non-empty string of at most {limit} characters, not {str(value)[:80]!r}")
    return value


def number(d: Json, key: str, default: float | None = None) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadMessage(f"{key!r} must be a number, not {value!r}")
    return float(value)


#: no integer on the wire is larger (SQLite's own limit); a larger one is a bad message, not a crash
MAX_INT = 2**63 - 1


def integer(d: Json, key: str, default: int | None = None, minimum: int = 0) -> int:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT:
        raise BadMessage(f"{key!r} must be an integer from {minimum} to {MAX_INT}, not {value!r}")
    return value


def flag(d: Json, key: str) -> bool:
    value = d.get(key, False)
    if not isinstance(value, bool):
        raise BadMessage(f"{key!r} must be true or false, not {value!r}")
    return value


def items(d: Json, key: str) -> list[Json]:
    value = d.get(key)
    if not isinstance(value, list) or len(value) > MAX_ITEMS or not all(isinstance(v, dict) for v in value):
        raise BadMessage(f"{key!r} must be a list of at most {MAX_ITEMS} objects")
    return value


def obj(d: Json, key: str) -> Json:
    value = d.get(key)
    if not isinstance(value, dict):
        raise BadMessage(f"{key!r} must be an object, not {value!r}")
    return value


# -- requests ------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """Spend (event, ticket) for scan `scan` at `gate`; `admitted`: the gate already admitted it offline.

    `text` is the code the gate was shown (the signed ticket text, or a holder's QH code): the arbiter
    verifies it (signature, key, event, validity, the claiming gate's events) before it spends anything,
    so a gate's credential alone spends nothing (docs/security.md).
    """

    scan: str
    event: str
    ticket: str
    gate: str
    at: float
    gen: int = 0
    admitted: bool = False
    text: str = ""

    def to_json(self) -> Json:
        return {"scan": self.scan, "event": self.event, "ticket": self.ticket, "gen": self.gen,
                "gate": self.gate, "at": self.at, "admitted": self.admitted, "text": self.text}

    @classmethod
    def from_json(cls, d: Json) -> Claim:
        return cls(text(d, "scan"), text(d, "event"), text(d, "ticket"), text(d, "gate"), number(d, "at"),
                   integer(d, "gen", 0), flag(d, "admitted"), text(d, "text", "", limit=MAX_CODE))


@dataclass(frozen=True)
class Transition:
    """A ticket's move on a check-in list (gate/rules.py): an entry (`direction` "in") or an exit ("out").

    Sent like a claim (the claim request, key "transitions"; docs/mqtt.md).  The arbiter verifies `text`
    as it verifies a claim's code (and that its signed product is `product`), then judges the move against
    its state of (event, ticket, list) with the list version it holds; `admitted`: the gate already let
    the person through offline (a fact: a refusal becomes a conflict).  `version` is the list version the
    gate used, `gen` the ticket's ownership generation.  `void`: this scan let nobody through (the gate
    gave up waiting and refused): whatever the arbiter applied for it is undone and it never applies later.
    """

    scan: str
    event: str
    ticket: str
    gate: str
    at: float
    list: str
    version: int
    direction: str = "in"
    product: str = ""
    admitted: bool = False
    text: str = ""
    gen: int = 0
    void: bool = False

    def to_json(self) -> Json:
        d: Json = {"scan": self.scan, "event": self.event, "ticket": self.ticket, "gen": self.gen, "gate": self.gate,
                   "at": self.at, "list": self.list, "version": self.version, "direction": self.direction,
                   "product": self.product, "admitted": self.admitted, "text": self.text}
        if self.void:
            d["void"] = True
        return d

    @classmethod
    def from_json(cls, d: Json) -> Transition:
        direction = text(d, "direction", "in")
        if direction not in ("in", "out"):
            raise BadMessage(f"direction must be in or out, not {direction!r}")
        t = cls(text(d, "scan"), text(d, "event"), text(d, "ticket"), text(d, "gate"), number(d, "at"),
                text(d, "list"), integer(d, "version", minimum=1), direction, text(d, "product", ""),
                flag(d, "admitted"), text(d, "text", "", limit=MAX_CODE), integer(d, "gen", 0), flag(d, "void"))
        if t.void and t.admitted:
            raise BadMessage("a transition cannot be both admitted and void")
        return t


#: the fields of a ticket's state on a list, as a PassAnswer and a stream item of kind "pass" carry it
PASS_STATE = ("entries", "day", "day_entries", "inside", "last_entry")


def pass_state(d: Json) -> Json:
    """A validated state object ({"entries", "day", "day_entries", "inside", "last_entry"})."""
    integer(d, "entries")
    text(d, "day", "", limit=16)
    integer(d, "day_entries")
    flag(d, "inside")
    number(d, "last_entry")
    return {k: d.get(k, "" if k == "day" else False if k == "inside" else 0) for k in PASS_STATE}


@dataclass(frozen=True)
class PassAnswer:
    """The arbiter's ruling on one Transition (the same scan id always gets the same one).

    `outcome` and `reason` are gate.outcomes codes (ADMIT / exit, already_inside, area_full, ...);
    `conflict`: an offline admission the arbiter would have refused; `seq`: its stream item.  `state` is
    the ticket's state on the list as the arbiter holds it when it answers (not part of the idempotent
    answer: a replay carries the state of its own time); None when there is no state (unknown list).
    """

    scan: str
    outcome: str
    reason: str = ""
    detail: str = ""
    seq: int | None = None
    conflict: bool = False
    state: Json | None = None

    def to_json(self) -> Json:
        # not dataclasses.asdict: it deep-copies every field, a sixth of the arbiter's CPU per transition
        d = {k: v for k, v in vars(self).items() if v not in (None, "", False)}
        if "state" in d:
            d["state"] = dict(d["state"])  # the one mutable field: the answer keeps its own
        return d

    @classmethod
    def from_json(cls, d: Json) -> PassAnswer:
        seq = integer(d, "seq", minimum=1) if "seq" in d else None
        state = pass_state(obj(d, "state")) if "state" in d else None
        return cls(text(d, "scan"), text(d, "outcome"), text(d, "reason", ""), text(d, "detail", ""), seq,
                   flag(d, "conflict"), state)


@dataclass(frozen=True)
class Release:
    """Scan `scan` admitted nobody: drop whatever the arbiter granted it, and never grant it again."""

    scan: str
    event: str
    ticket: str
    gate: str

    def to_json(self) -> Json:
        return {"scan": self.scan, "event": self.event, "ticket": self.ticket, "gate": self.gate}

    @classmethod
    def from_json(cls, d: Json) -> Release:
        return cls(text(d, "scan"), text(d, "event"), text(d, "ticket"), text(d, "gate"))


@dataclass(frozen=True)
class Revocation:
    """Refuse (event, ticket) from now on; event "*" is every event.

    `by` is the MQTT sender; `admin` the person who asked (a dashboard account, the operator of `gate
    revoke`), as in an override.  It is optional: ``""`` (a revocation of an older sender) is left out of the
    payload, and a payload without it is read as ``""``.
    """

    event: str
    ticket: str
    by: str
    reason: str = ""
    at: float = 0.0
    admin: str = ""

    def to_json(self) -> Json:
        d: Json = {"event": self.event, "ticket": self.ticket, "by": self.by, "reason": self.reason, "at": self.at}
        if self.admin:
            d["admin"] = self.admin
        return d

    @classmethod
    def from_json(cls, d: Json) -> Revocation:
        return cls(text(d, "event"), text(d, "ticket"), text(d, "by"), text(d, "reason", ""), number(d, "at", 0.0),
                   text(d, "admin", ""))


@dataclass(frozen=True)
class Supersession:
    """(event, ticket) now belongs to ownership generation `gen`: older generations are refused (docs/ownership.md).

    Sent like a revocation (the revoke request, key "generations"); on the stream as kind "generation".
    """

    event: str
    ticket: str
    gen: int
    by: str
    at: float = 0.0

    def to_json(self) -> Json:
        return {"event": self.event, "ticket": self.ticket, "gen": self.gen, "by": self.by, "at": self.at}

    @classmethod
    def from_json(cls, d: Json) -> Supersession:
        return cls(text(d, "event"), text(d, "ticket"), integer(d, "gen", minimum=1), text(d, "by"),
                   number(d, "at", 0.0))


def request(key: str,
            entries: list[Claim] | list[Release] | list[Revocation] | list[Supersession] | list[Transition]) -> Json:
    """A request payload: {"v": 1, key: [...]} with key claims, releases, revocations or generations."""
    return {"v": VERSION, key: [e.to_json() for e in entries]}


def requests(key: str, entries: Sequence[Claim | Release | Transition], limit: int = MAX_PAYLOAD // 4) -> list[Json]:
    """`request(key, entries)` split into payloads of at most about `limit` bytes each (in order; an entry is
    never split): an outbox drain of holder codes stays well under the broker's and the arbiter's limit."""
    out: list[Json] = []
    chunk: list[Json] = []
    size = 0
    for entry in entries:
        d = entry.to_json()
        n = len(json.dumps(d)) + 2
        if chunk and size + n > limit:
            out.append({"v": VERSION, key: chunk})
            chunk, size = [], 0
        chunk.append(d)
        size += n
    if chunk:
        out.append({"v": VERSION, key: chunk})
    return out


def parse_claims(d: Json) -> list[Claim]:
    return [Claim.from_json(c) for c in items(d, "claims")]


def parse_transitions(d: Json) -> list[Transition]:
    return [Transition.from_json(t) for t in items(d, "transitions")]


def parse_releases(d: Json) -> list[Release]:
    return [Release.from_json(r) for r in items(d, "releases")]


def parse_revocations(d: Json) -> list[Revocation]:
    return [Revocation.from_json(r) for r in items(d, "revocations")]


def parse_supersessions(d: Json) -> list[Supersession]:
    return [Supersession.from_json(g) for g in items(d, "generations")]


def catchup_request(after: int, limit: int) -> Json:
    return {"v": VERSION, "after": after, "limit": limit}


def parse_catchup(d: Json) -> tuple[int, int]:
    return integer(d, "after"), min(integer(d, "limit", CATCHUP_MAX, minimum=1), CATCHUP_MAX)


# -- answers ---------------------------------------------------------------------------

@dataclass(frozen=True)
class First:
    """Who holds a ticket at the arbiter: the gate, its scan time and scan id, the arbiter's time."""

    gate: str
    at: float
    scan: str
    arbiter_at: float = 0.0

    def to_json(self) -> Json:
        return {"gate": self.gate, "at": self.at, "scan": self.scan, "arbiter_at": self.arbiter_at}

    @classmethod
    def from_json(cls, d: Json) -> First:
        return cls(text(d, "gate"), number(d, "at"), text(d, "scan"), number(d, "arbiter_at", 0.0))


@dataclass(frozen=True)
class Answer:
    """The arbiter's answer for one scan id; the same scan id always gets the same answer."""

    scan: str
    answer: str
    seq: int | None = None
    first: First | None = None
    conflict: bool = False
    detail: str = ""

    def to_json(self) -> Json:
        d: Json = {"scan": self.scan, "answer": self.answer}
        if self.seq is not None:
            d["seq"] = self.seq
        if self.first is not None:
            d["first"] = self.first.to_json()
        if self.conflict:
            d["conflict"] = True
        if self.detail:
            d["detail"] = self.detail
        return d

    @classmethod
    def from_json(cls, d: Json) -> Answer:
        answer = text(d, "answer")
        if answer not in ANSWERS:
            raise BadMessage(f"unknown answer {answer!r}")
        seq = integer(d, "seq", minimum=1) if "seq" in d else None
        first = First.from_json(obj(d, "first")) if "first" in d else None
        if answer == "lost" and first is None:
            raise BadMessage("a lost answer must say who holds the ticket ('first')")
        return cls(text(d, "scan"), answer, seq, first, flag(d, "conflict"), text(d, "detail", ""))


def answers_reply(kind: str, answers: Sequence[Answer | PassAnswer], at: float) -> Json:
    return {"v": VERSION, "kind": kind, "at": at, "results": [a.to_json() for a in answers]}


def parse_answers(d: Json) -> list[Answer]:
    if "error" in d:
        raise BadMessage(f"the arbiter refused the request: {text(d, 'error')}")
    return [Answer.from_json(a) for a in items(d, "results")]


def parse_pass_answers(d: Json) -> list[PassAnswer]:
    """The results of a reply to transitions (kind "transition")."""
    if "error" in d:
        raise BadMessage(f"the arbiter refused the request: {text(d, 'error')}")
    return [PassAnswer.from_json(a) for a in items(d, "results")]


def error_reply(message: str) -> Json:
    return {"v": VERSION, "error": message[:MAX_TEXT]}


# -- the stream ------------------------------------------------------------------------

def stream_batch(epoch: str, entries: list[Json]) -> Json:
    return {"v": VERSION, "epoch": epoch, "items": entries}


def conflict_message(item: Json) -> Json | None:
    """The message of a conflict on ``{prefix}/conflict/{event}``, None for an item that is no conflict.

    One shape for both kinds: a double entry (a ``conflict`` item: ``list`` None, ``reason`` "already_used")
    and a list conflict (a ``pass`` item with ``conflict``: a late entry the arbiter would have refused;
    ``list`` its name, ``reason`` the refusal's code, ``detail``, ``state`` always "open", ``first`` the
    ticket's last entry on the list before it, or None).  ``first`` and ``late`` are ``{"gate", "at",
    "scan"}``; ``seq`` is the stream item's."""
    if item["kind"] == "conflict":
        return {"v": VERSION, **item, "list": None, "reason": "already_used"}
    if item["kind"] != "pass" or not item.get("conflict"):
        return None
    return {"v": VERSION, "seq": item["seq"], "kind": "conflict", "state": "open", "event": item["event"],
            "ticket": item["ticket"], "list": item["list"], "reason": item.get("reason", ""),
            "detail": item.get("detail", ""), "first": item.get("first"),
            "late": {"gate": item.get("gate", ""), "at": item.get("at", 0.0), "scan": item["scan"]},
            "arbiter_at": item.get("arbiter_at")}


def catchup_reply(epoch: str, head: int, entries: list[Json], more: bool, at: float) -> Json:
    return {"v": VERSION, "kind": "catchup", "epoch": epoch, "head": head, "at": at, "items": entries,
            "more": more}


def parse_stream(d: Json) -> tuple[str, list[Json]]:
    """(epoch, items in ascending seq order) of a stream batch or catch-up reply."""
    entries = [check_item(i) for i in items(d, "items")]
    return text(d, "epoch"), sorted(entries, key=lambda i: i["seq"])


def check_item(d: Json) -> Json:
    """Validate one stream item (the fields its kind needs) and return it."""
    integer(d, "seq", minimum=1)
    kind = text(d, "kind")
    if kind not in STREAM_KINDS:
        raise BadMessage(f"unknown stream item kind {kind!r}")
    text(d, "event")
    if kind == "list":  # a signed check-in list, as its issuer signed it (the gate verifies it: gate/servedlist.py)
        text(d, "name")
        integer(d, "version", minimum=1)
        try:
            size = len(encode(obj(d, "doc")))
        except ValueError:  # NaN or infinity: no list holds one
            raise BadMessage("a list document that is not plain JSON") from None
        if size > MAX_LIST_DOC:
            raise BadMessage(f"a list document of {size} bytes, over {MAX_LIST_DOC}")
        return d
    text(d, "ticket")
    if kind in ("redemption", "release"):
        text(d, "scan")
        text(d, "gate")
    if kind == "redemption":
        number(d, "at")
        integer(d, "gen", 0)
    if kind == "generation":
        integer(d, "gen", minimum=1)
    if kind == "pass":
        text(d, "list")
        text(d, "scan")
        pass_state(obj(d, "state"))
    if kind == "revocation":
        text(d, "admin", "")  # optional (older arbiters leave it out): the person who revoked
    if kind == "conflict":
        if d.get("state") not in ("open", "void"):
            raise BadMessage(f"conflict state must be 'open' or 'void', not {d.get('state')!r}")
        First.from_json(obj(d, "first"))
        First.from_json(obj(d, "late"))
    return d


# -- the dashboard's payloads: scans (gate -> dashboards) and overrides (admin -> arbiter) ----------
#
# The dashboard's payloads, version 1 (docs/mqtt.md, "Scans" and "Overrides", shows each with an example).
#
# ``{prefix}/scan/{gate}`` (gate -> dashboards, QoS 0, not retained): one
# message per decision, published by the gate right after the decision is
# final.  The fields are those of ``gate.decide.Decision`` (the same names as
# ``gate check --json``) plus ``v`` and ``decided_at`` (the gate's clock when
# the decision was final).  Nothing waits for it: with no broker it is dropped
# and counted (``scans_dropped`` in the gate's status counters).
#
# ``{prefix}/override/{admin}`` (admin -> arbiter, request/response like a
# revocation): ``{"v": 1, "overrides": [...]}`` where each entry is
# ``{"action": "admit" | "unredeem", "event", "ticket", "admin", "reason", "at"}``.
# ``admin`` is the person (audited); the MQTT sender (the topic's last level)
# is recorded as ``by``.  The arbiter answers one result per entry: ``admit`` ->
# ``won`` (with the redemption's ``seq``), ``lost`` (``first`` holds it) or
# ``revoked``; ``unredeem`` -> ``released`` (with the release's ``seq``) or
# ``invalid`` (the ticket is not redeemed).  ``scan`` in a result holds the
# ticket id, as for revocations.

OVERRIDE_ACTIONS = ("admit", "unredeem")
#: a store error's text can be long; the dashboard shows a line of it
MAX_DETAIL = 200


def scan_payload(decision: Decision, decided_at: float) -> Json:
    """The message a gate publishes for one decision."""
    d = decision.to_dict()
    d["detail"] = str(d["detail"])[:MAX_DETAIL]
    return {"v": VERSION, **d, "decided_at": decided_at}


@dataclass(frozen=True)
class ScanEvent:
    """One decision as a dashboard receives it (`parse_scan` validates every field it keeps)."""

    scan_id: str
    gate_id: str
    at: float
    outcome: str
    reason: str
    decided_at: float
    event: str | None = None
    ticket_id: str | None = None
    seat: str | None = None
    generation: int = 0
    first_gate: str | None = None
    first_at: float | None = None
    provisional: bool = False
    detail: str = ""

    @property
    def admitted(self) -> bool:
        return self.outcome == "ADMIT"

    def to_json(self) -> Json:
        return dict(vars(self))  # every field is immutable: no deep copy (asdict's) needed


def _optional_text(d: Json, key: str) -> str | None:
    return None if d.get(key) is None else text(d, key)


def _blank_text(d: Json, key: str) -> str | None:
    """A field that may be absent, null or empty (a seatless ticket's seat is ``""``): None for all three."""
    return None if d.get(key) in (None, "") else text(d, key)


def _optional_number(d: Json, key: str) -> float | None:
    return None if d.get(key) is None else number(d, key)


def parse_scan(d: Json, sender: str) -> ScanEvent:
    """A scan message from gate `sender` (the topic's last level); BadMessage if it names another gate."""
    event = ScanEvent(
        scan_id=text(d, "scan_id"), gate_id=text(d, "gate_id"), at=number(d, "at"), outcome=text(d, "outcome"),
        reason=text(d, "reason", ""), decided_at=number(d, "decided_at", number(d, "at")),
        event=_optional_text(d, "event"), ticket_id=_optional_text(d, "ticket_id"), seat=_blank_text(d, "seat"),
        generation=integer(d, "generation", 0), first_gate=_optional_text(d, "first_gate"),
        first_at=_optional_number(d, "first_at"), provisional=flag(d, "provisional"),
        detail=text(d, "detail", ""))
    if event.gate_id != sender:
        raise BadMessage(f"a scan on gate {sender!r}'s topic names gate {event.gate_id!r}")
    return event


@dataclass(frozen=True)
class Override:
    """An admin's manual override of one ticket: `admit` (count it as used everywhere) or `unredeem`
    (drop its redemption so it can be used again).  `by` is the MQTT sender, `admin` the person."""

    action: str
    event: str
    ticket: str
    by: str
    admin: str
    reason: str = ""
    at: float = 0.0

    def to_json(self) -> Json:
        return {"action": self.action, "event": self.event, "ticket": self.ticket, "admin": self.admin,
                "reason": self.reason, "at": self.at}

    @classmethod
    def from_json(cls, d: Json, by: str) -> Override:
        action = text(d, "action")
        if action not in OVERRIDE_ACTIONS:
            raise BadMessage(f"override action must be one of {', '.join(OVERRIDE_ACTIONS)}, not {action!r}")
        return cls(action, text(d, "event"), text(d, "ticket"), by, text(d, "admin"), text(d, "reason", ""),
                   number(d, "at", 0.0))


def override_request(overrides: list[Override]) -> Json:
    return {"v": VERSION, "overrides": [o.to_json() for o in overrides]}


def parse_overrides(d: Json, sender: str) -> list[Override]:
    return [Override.from_json(o, sender) for o in items(d, "overrides")]
