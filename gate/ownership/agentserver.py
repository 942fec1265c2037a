"""`gate fake-agent serve`: a payment provider as its own HTTP service (today the FAKE agent, which moves no money).

The server needs only the provider interface (gate.ownership.payment.PaymentProvider), so a real
provider's adapter is served the same way.  Routes (JSON; blocks as ``qrgate-blocks/1`` messages):

``GET  /identity``          the agent's identity block
``POST /payments``          the payer's payment block with the payee's intent -> the receipt (the charge is held)
``GET  /payments/{txn}``    ``{"txn", "state": "held"|"settled"|"refunded", "delivered"}`` (no amount)
``POST /settlements``       a box office's settlement message (for a box office that answers later)

After a charge the agent sends its amount-free ``paid_as_invoiced`` notice to the box office's
``POST /payments/notice`` (the webhook: a block of the agent's chain, sealed under the agent and box
office's pair key, so nobody else can forge it), applies the settlement the box office answers, and
puts the payee's confirmation or the payer's refund in that party's mailbox at the box office.  A
delivery thread retries every undelivered charge until it is done (after a crash of either side, too).
"""

from __future__ import annotations

import logging

from gate.ownership.block import Message
from gate.ownership.client import BoxOfficeClient
from gate.ownership.exc import ChainError
from gate.ownership.payment import PaymentProvider
from gate.ownership.web import Reply, Request, Route, WorkingServer

log = logging.getLogger(__name__)


class AgentServer(WorkingServer):
    """A provider's HTTP server and its delivery thread (the worker); `start()` serves, `stop()` ends both."""

    def __init__(self, agent: PaymentProvider, office: BoxOfficeClient, office_chain: str, *,
                 host: str = "127.0.0.1", port: int = 0, retry: float = 0.5) -> None:
        self.agent = agent
        self.office = office
        self.office_chain = office_chain
        self.delivery_errors = 0
        super().__init__(name="fake-agent", host=host, port=port, every=retry)

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/identity", lambda r: (200, Message((self.agent.identity_block,)).to_json())),
            Route("POST", "/payments", self._charge),
            Route("GET", "/payments/{txn}", self._payment),
            Route("POST", "/settlements", lambda r: self._settled(self.agent.settle(r.message()))),
        ]

    def work(self) -> None:
        """Deliver every charge whose notice or outcome has not arrived yet."""
        for txn in self.agent.pending():
            try:
                self.deliver(txn)
            except ChainError as exc:  # the box office is away or refused: count, say so, retry later
                self.delivery_errors += 1
                log.warning("payment agent: delivering %s: %s: %s", txn, getattr(exc, "code", "?"), exc)

    def deliver(self, txn: str) -> None:
        """Notify the box office of a held charge, apply its settlement, hand the outcome to the parties."""
        if self.agent.payment(txn).state == "held":
            self.agent.settle(self.office.notice(self.agent.notice(txn)))
        outcome = self.agent.outcome(txn)
        ours = tuple(outcome.identities())
        for block in outcome.blocks:
            if not block.is_identity and block.to != self.office_chain:  # the box office has its settlement
                self.office.deposit(block.to, Message((*ours, block)))
        self.agent.delivered(txn)

    def _charge(self, request: Request) -> Reply:
        receipt = self.agent.charge(request.message())
        self.wake()
        return 200, receipt.to_json()

    def _payment(self, request: Request) -> Reply:
        c = self.agent.payment(request.params["txn"])
        return 200, {"txn": c.txn, "state": c.state, "delivered": c.delivered}

    def _settled(self, outcome: Message) -> Reply:
        self.wake()
        return 200, outcome.to_json()
