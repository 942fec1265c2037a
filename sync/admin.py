"""The admin-request client: revocations, raised ownership generations and overrides, asked of the arbiter.

An admin request is one MQTT v5 request/response on ``{prefix}/revoke/{sender}``
or ``{prefix}/override/{sender}`` (docs/mqtt.md); with the provisioned broker
ACL only the admin (dashboard) credential may send them.  `gate revoke` and
`gate supersede` use a short-lived link (`AdminClient.connected`), the
dashboard its own long-lived one.

What a caller may rely on: no method raises for a missing broker or a silent
arbiter; the `AdminResult` says so (``unreachable``, ``timeout``), and for a
reply it cannot read, ``error``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sync import wire
from sync.exc import BadMessage
from sync.link import Broker, Credentials, Link
from sync.topics import Topics

REQUEST_TIMEOUT = 5.0
#: what an AdminResult says when the arbiter gave no usable answer
NO_ANSWER = ("unreachable", "timeout", "error")


@dataclass(frozen=True)
class AdminResult:
    """What became of an admin's request: `ok`, the arbiter's answer (or why there is none), details."""

    ok: bool
    answer: str
    detail: str = ""
    seq: int | None = None

    @property
    def answered(self) -> bool:
        """The arbiter answered (whatever it said)."""
        return self.answer not in NO_ANSWER

    def to_json(self) -> wire.Json:
        return {"ok": self.ok, "answer": self.answer, "detail": self.detail, "seq": self.seq}


class AdminClient:
    """Admin requests over `link` (which must have the sender's reply topic) as `sender`."""

    def __init__(self, link: Link, topics: Topics, sender: str, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self.link = link
        self.topics = topics
        self.sender = sender
        self.timeout = timeout

    @classmethod
    @contextmanager
    def connected(cls, broker: Broker, topics: Topics, sender: str, *, credentials: Credentials | None = None,
                  wait: float = 3.0, purpose: str = "admin") -> Iterator[AdminClient]:
        """A client on its own short-lived link (its client id names `purpose`), connected for up to `wait` s."""
        link = Link(broker, f"{sender}-{purpose}-{os.getpid()}", subscriptions=[], reply_topic=topics.reply(sender),
                    on_message=lambda _msg: None, credentials=credentials)
        link.start()
        try:
            link.wait_ready(wait)
            yield cls(link, topics, sender)
        finally:
            link.stop()

    def revoke(self, event: str | None, ticket: str, reason: str = "", admin: str = "") -> AdminResult:
        """Put a revocation on every gate's stream (event None or "*": every event); ok once the arbiter has it.
        `admin` is the person (on the stream with the revocation, as with an override); "" leaves it out."""
        revocation = wire.Revocation(event or "*", ticket, self.sender, reason, admin=admin)
        return self.ask("revoke", wire.request("revocations", [revocation]), "revoked")

    def supersede(self, event: str, ticket: str, generation: int, at: float = 0.0) -> AdminResult:
        """Put a raised ownership generation on every gate's stream (docs/ownership.md)."""
        item = wire.Supersession(event, ticket, generation, self.sender, at)
        return self.ask("revoke", wire.request("generations", [item]), "revoked")

    def override(self, action: str, event: str, ticket: str, reason: str, admin: str) -> AdminResult:
        """An admin's `admit` or `unredeem` of one ticket (docs/dashboard.md); `admin` is the person."""
        request = wire.override_request([wire.Override(action, event, ticket, self.sender, admin, reason)])
        return self.ask("override", request, "won" if action == "admit" else "released")

    def ask(self, kind: str, payload: wire.Json, success: str) -> AdminResult:
        """One request; `ok` when the first answer is `success`."""
        if not self.link.ready:
            return AdminResult(False, "unreachable", f"no connection to the broker {self.link.broker}")
        reply = self.link.request(self.topics.request(kind, self.sender), payload, self.timeout)
        if reply is None:
            return AdminResult(False, "timeout", f"the arbiter did not answer within {self.timeout:.0f} s")
        try:
            answers = wire.parse_answers(reply)
        except BadMessage as exc:
            return AdminResult(False, "error", str(exc))
        if not answers:
            return AdminResult(False, "error", "the arbiter answered nothing")
        a = answers[0]
        detail = a.detail or (f"held by {a.first.gate} since {a.first.at:.3f}" if a.first else "")
        return AdminResult(a.answer == success, a.answer, detail, a.seq)
