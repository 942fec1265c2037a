"""`gate boxoffice serve`: the box office as an HTTP JSON service (the API: gate.ownership.openapi, GET /openapi.json).

What a caller may rely on:

* Every route that takes blocks takes a ``qrgate-blocks/1`` message and answers one; each is one
  box office step (gate.ownership.boxoffice): verified, compare-and-set and committed before the
  answer is sent, so a request sent again (after a lost answer, a crash, a kill) gets the same answer.
* The box office's own timer (`tick` seconds) expires reservations and holds; their timeout blocks
  are put in the parties' mailboxes in the same commit, so they reach the parties without their asking.
  With a `publish`er (a broker configured) the same timer sends every raised ownership generation to
  the arbiter's stream until the arbiter confirms it, so every gate refuses the older code on its own.
* ``POST /resale`` holds the ticket and puts the buyer's sealed request for the seller (and any other
  block of the message not addressed to the box office) in the seller's mailbox; ``POST
  /mailbox/{chain}`` relays any sealed message.  The box office stores those blocks as they came:
  it holds no key to open them, so it never learns a resale price.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gate.ownership.block import Message
from gate.ownership.boxoffice import BoxOffice
from gate.ownership.exc import ChainError
from gate.ownership.openapi import BOXOFFICE_API
from gate.ownership.web import Reply, Request, Route, WorkingServer

log = logging.getLogger(__name__)

#: sends raised generations ``(event, ticket id, generation, at)`` to the gates (the arbiter's stream); for each,
#: True once the arbiter confirmed it (gate.wiring builds it from `sync.broker`)
Publisher = Callable[[list[tuple[str, str, int, float]]], list[bool]]


class BoxOfficeServer(WorkingServer):
    """The box office's HTTP server and its timer (the worker); `start()` serves in threads, `stop()` ends both."""

    def __init__(self, office: BoxOffice, *, host: str = "127.0.0.1", port: int = 0, tick: float = 1.0,
                 publish: Publisher | None = None) -> None:
        self.office = office
        self.publish = publish
        self.timer_errors = 0
        super().__init__(name="boxoffice", host=host, port=port, every=tick)

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/openapi.json", lambda r: (200, BOXOFFICE_API)),
            Route("GET", "/hello", lambda r: (200, {"hello": "world"})),
            Route("GET", "/catalog", lambda r: (200, self.office.catalog().to_json())),
            Route("POST", "/purchase", lambda r: self._step(self.office.handle(r.message(), ("purchase_request",)))),
            Route("POST", "/resale", self._resale),
            Route("POST", "/release", lambda r: self._step(self.office.transfer(r.message()))),
            Route("POST", "/payments/notice", lambda r: self._step(self.office.paid(r.message()))),
            Route("GET", "/tickets/{event}/{ticket_id}",
                  lambda r: (200, self.office.status(r.params["event"], r.params["ticket_id"]))),
            Route("POST", "/mailbox/{chain}", lambda r: (200, {"seq": self.office.relay(r.params["chain"],
                                                                                         r.message())})),
            Route("GET", "/mailbox/{chain}", self._mailbox),
        ]

    def work(self) -> None:
        """The timer: expire reservations and holds, send raised generations to the gates."""
        try:
            self.office.expire()
            self._publish()
        except ChainError as exc:  # the file cannot be written now: count, say so, try again next tick
            self.timer_errors += 1
            log.error("box office timer: %s", exc)

    @staticmethod
    def _step(answer: Message) -> Reply:
        return 200, answer.to_json()

    def _resale(self, request: Request) -> Reply:
        message = request.message()
        answer = self.office.handle(message, ("resale_request",))
        identities = tuple(message.identities())
        for chain in sorted({b.to for b in message.blocks if b.to and b.to != self.office.chain}):
            self.office.relay(chain, Message(identities + tuple(message.to(chain))))
        return self._step(answer)

    def _mailbox(self, request: Request) -> Reply:
        found = self.office.mailbox(request.params["chain"], request.number("after"))
        return 200, {"messages": [{"seq": seq, "message": m.to_json()} for seq, m in found]}

    def _publish(self) -> None:
        """Raised generations the arbiter has not confirmed: send them (again) to the gates' stream."""
        rows = self.office.supersessions(unpublished=True) if self.publish else []
        if not rows or self.publish is None:
            return
        items = [(str(r["event"]), str(r["ticket_id"]), int(r["generation"]), float(r["at"])) for r in rows]  # type: ignore[call-overload, arg-type]
        for item, confirmed in zip(items, self.publish(items), strict=True):
            if confirmed:
                self.office.published(*item[:3])
