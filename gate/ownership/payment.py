"""Payment agents: the pluggable interface, and a fake one that moves no money (demo and tests only).

A payer's wallet hands an agent a Message holding the payer's identity block,
the payee's identity block and one ``payment`` block (application
``qrgate.payment``, sealed for the agent: amount, currency, payee; the block's
txn is the payment reference).  The agent answers with a Message holding its
identity block, a ``payment_confirmation`` sealed for the payee and a
``payment_receipt`` sealed for the payer, both with the same txn.  The payee
(the box office for a purchase, the seller for a resale) verifies the
confirmation by back-step against the agent's anchor, so nobody else can
forge one; for a resale the box office never sees the amount.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from gate.ownership.block import Block, Message
from gate.ownership.exc import MalformedBlock, Refused, UnknownChain
from gate.ownership.party import Party
from gate.ownership.protocol import APP_PAYMENT
from gate.ownership.store import AGENT_MIGRATIONS, Payments, open_db
from gate.sqlite import Database


class PaymentAgent(Protocol):
    """What a wallet needs of a payment service."""

    @property
    def identity_block(self) -> Block: ...

    def pay(self, message: Message) -> Message:
        """Carry out the payment block in `message`; the confirmation and receipt, or a ChainError."""
        ...


class FakePaymentAgent:
    """A PaymentAgent that confirms every well-formed payment and moves no money.

    For the demo and the tests only: it is chosen by name (``--fake-agent``),
    never as a fallback.  It keeps a real chain, so its confirmations verify
    exactly like a real agent's would.  One payment per (txn, payer).
    """

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.party = Party(db, clock)
        self.clock = clock

    @classmethod
    def open(cls, path: str, *, create: bool = False, clock: Callable[[], float] = time.time) -> FakePaymentAgent:
        db = open_db(path, AGENT_MIGRATIONS)
        if create and not db.conn.execute("SELECT 1 FROM self").fetchone():
            Party.create(db, "fake-payment-agent", "agent", clock=clock)
        return cls(db, clock)

    @property
    def identity_block(self) -> Block:
        return self.party.identity_block

    def pay(self, message: Message) -> Message:
        with self.db.transaction() as tx:
            self.party.learn_all(tx, message)
            wanted = message.to(self.party.chain, "payment")
            if len(wanted) != 1:
                raise MalformedBlock(f"expected one payment block for this agent, found {len(wanted)}")
            rec = self.party.receive(tx, wanted[0])
            txn = rec.block.txn
            if rec.fresh:
                payee, amount, currency = rec.field("payee"), rec.field("amount", int), rec.field("currency")
                if self.party.known(tx, payee) is None:
                    raise UnknownChain("the payee's identity block must come with the payment")
                if amount <= 0:
                    raise Refused("bad_amount", f"cannot pay {amount}")
                if not Payments.record(tx, txn, rec.sender.chain, payee, amount, currency, self.clock()):
                    raise Refused("already_paid", f"transaction {txn} was paid already")
                common = {"amount": amount, "currency": currency}
                for to, kind, extra in ((payee, "payment_confirmation", {"payer": rec.sender.chain}),
                                        (rec.sender.chain, "payment_receipt", {"payee": payee})):
                    self.party.append(tx, to=to, txn=txn, app=APP_PAYMENT, kind=kind, payload={**common, **extra})
            mine = [b for b in self.party.blocks(tx, txn) if b.chain == self.party.chain]
        return Message((self.party.identity_block, *mine))
