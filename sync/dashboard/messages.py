"""The dashboard's payloads, version 1 (docs/mqtt.md, "Scans" and "Overrides", shows each with an example).

``{prefix}/scan/{gate}`` (gate -> dashboards, QoS 0, not retained): one
message per decision, published by the gate right after the decision is
final.  The fields are those of ``gate.decide.Decision`` (the same names as
``gate check --json``) plus ``v`` and ``decided_at`` (the gate's clock when
the decision was final).  Nothing waits for it: with no broker it is dropped
and counted (``scans_dropped`` in the gate's status counters).

``{prefix}/override/{admin}`` (admin -> arbiter, request/response like a
revocation): ``{"v": 1, "overrides": [...]}`` where each entry is
``{"action": "admit" | "unredeem", "event", "ticket", "admin", "reason", "at"}``.
``admin`` is the person (audited); the MQTT sender (the topic's last level)
is recorded as ``by``.  The arbiter answers one result per entry: ``admit`` ->
``won`` (with the redemption's ``seq``), ``lost`` (``first`` holds it) or
``revoked``; ``unredeem`` -> ``released`` (with the release's ``seq``) or
``invalid`` (the ticket is not redeemed).  ``scan`` in a result holds the
ticket id, as for revocations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gate.decide import Decision
from sync import wire
from sync.exc import BadMessage
from sync.wire import Json, flag, integer, number, text

OVERRIDE_ACTIONS = ("admit", "unredeem")
#: a store error's text can be long; the dashboard shows a line of it
MAX_DETAIL = 200


def scan_payload(decision: Decision, decided_at: float) -> Json:
    """The message a gate publishes for one decision."""
    d = decision.to_dict()
    d["detail"] = str(d["detail"])[:MAX_DETAIL]
    return {"v": wire.VERSION, **d, "decided_at": decided_at}


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
        return asdict(self)


def _optional_text(d: Json, key: str) -> str | None:
    return None if d.get(key) is None else text(d, key)


def _optional_number(d: Json, key: str) -> float | None:
    return None if d.get(key) is None else number(d, key)


def parse_scan(d: Json, sender: str) -> ScanEvent:
    """A scan message from gate `sender` (the topic's last level); BadMessage if it names another gate."""
    event = ScanEvent(
        scan_id=text(d, "scan_id"), gate_id=text(d, "gate_id"), at=number(d, "at"), outcome=text(d, "outcome"),
        reason=text(d, "reason", ""), decided_at=number(d, "decided_at", number(d, "at")),
        event=_optional_text(d, "event"), ticket_id=_optional_text(d, "ticket_id"), seat=_optional_text(d, "seat"),
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
    return {"v": wire.VERSION, "overrides": [o.to_json() for o in overrides]}


def parse_overrides(d: Json, sender: str) -> list[Override]:
    return [Override.from_json(o, sender) for o in wire.items(d, "overrides")]
