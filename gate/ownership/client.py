"""Clients of the box office and payment agent services over HTTP (urllib, standard library).

What a caller may rely on: every method returns the service's answer (a Message, a Catalog or
JSON) or raises a ChainError whose `code` is the service's own error code (`Refused` for a
refusal, with the blocks written anyway in `reply`), or `Unreachable` when the service did not
answer.  Every request is idempotent at the service (by its blocks' hashes and transaction), so a
caller may simply send it again after `Unreachable`: with ``patience=S`` the client does that
itself, sending the very same request again for up to S seconds (a box office restarting).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from gate.ownership.block import Block, Message
from gate.ownership.exc import BadSignature, ChainError, Refused, Unreachable
from gate.ownership.protocol import Catalog

TIMEOUT = 10.0


class HttpClient:
    def __init__(self, url: str, *, timeout: float = TIMEOUT, patience: float = 0.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.patience = patience
        self.resent = 0  # requests sent again after no answer

    def get(self, path: str) -> Any:
        return self._call(urllib.request.Request(self.url + path, method="GET"))

    def post(self, path: str, body: object) -> Any:
        data = json.dumps(body).encode()
        return self._call(urllib.request.Request(self.url + path, data=data, method="POST",
                                                 headers={"Content-Type": "application/json"}))

    def _call(self, request: urllib.request.Request) -> Any:
        deadline = time.monotonic() + self.patience
        while True:
            try:
                return self._once(request)
            except Unreachable:
                if time.monotonic() >= deadline:
                    raise
                self.resent += 1
                time.sleep(0.05)

    def _once(self, request: urllib.request.Request) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise Unreachable(f"{self.url}: no answer: {exc}") from None


def _refusal(exc: urllib.error.HTTPError) -> ChainError:
    try:
        body = json.loads(exc.read())
        code, message = str(body["error"]), str(body.get("message", ""))
    except (ValueError, KeyError, TypeError, OSError):
        return Unreachable(f"HTTP {exc.code} without a JSON error")
    reply = Message.loads(json.dumps(body["reply"])) if isinstance(body.get("reply"), dict) else None
    return Refused(code, message, reply)


class BoxOfficeClient(HttpClient):
    """The box office's API (docs/boxoffice-api.md, GET /openapi.json)."""

    def catalog(self, chain: str = "") -> Catalog:
        """The signed catalog, verified; with `chain`, it must also be that box office's (a pinned id)."""
        catalog = Catalog.loads(json.dumps(self.get("/catalog"))).verify()
        if chain and catalog.boxoffice.chain != chain:
            raise BadSignature(f"{self.url} is box office {catalog.boxoffice.chain}, not the {chain} you trust")
        return catalog

    def purchase(self, message: Message) -> Message:
        return self._blocks("/purchase", message)

    def resale(self, message: Message) -> Message:
        return self._blocks("/resale", message)

    def release(self, message: Message) -> Message:
        return self._blocks("/release", message)

    def notice(self, message: Message) -> Message:
        return self._blocks("/payments/notice", message)

    def status(self, event: str, ticket_id: str) -> dict[str, Any]:
        return dict(self.get(f"/tickets/{quote(event, safe='')}/{quote(ticket_id, safe='')}"))

    def deposit(self, recipient: str, message: Message) -> int:
        return int(self.post(f"/mailbox/{recipient}", message.to_json())["seq"])

    def mailbox(self, recipient: str, after: int = 0) -> list[tuple[int, Message]]:
        """The messages waiting after `after` (one page), with their sequence numbers."""
        answer = self.get(f"/mailbox/{recipient}?after={after}")
        return [(int(m["seq"]), Message.loads(json.dumps(m["message"]))) for m in answer["messages"]]

    def _blocks(self, path: str, message: Message) -> Message:
        return Message.loads(json.dumps(self.post(path, message.to_json())))


class AgentClient(HttpClient):
    """A payment agent's API (gate.ownership.agentserver): what a payer needs of it (payment.Checkout) over HTTP."""

    @property
    def identity_block(self) -> Block:
        blocks = Message.loads(json.dumps(self.get("/identity"))).identities()
        if len(blocks) != 1:
            raise Refused("malformed", "the agent's /identity holds no identity block")
        return blocks[0]

    def charge(self, message: Message) -> Message:
        return Message.loads(json.dumps(self.post("/payments", message.to_json())))

    def payment(self, txn: str) -> dict[str, Any]:
        return dict(self.get(f"/payments/{txn}"))
