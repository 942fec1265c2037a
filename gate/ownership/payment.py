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

Held payments (the agent as a service, gate.ownership.agentserver): the payee
writes an ``intent`` for the agent (amount, currency, the box office that
decides), which the payer carries along with its ``payment``; `charge` checks
that they match, holds the money and writes a ``payment_receipt`` for the payer
and an amount-free ``paid_as_invoiced`` notice for the box office.  The box
office answers with a ``settlement`` (`settle`): ``transferred`` -> a
``payment_confirmation`` for the payee (the money is the payee's);
``refund`` -> a ``refund`` block for the payer.  A charge is decided once.

The interfaces: `PaymentAgent` (files mode: `pay`), `Checkout` (what a payer's wallet needs online)
and `PaymentProvider` (what the agent's service needs; a real provider's adapter implements it and
passes tests/test_payment_contract.py).  `FakePaymentAgent` is the one adapter that ships.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Protocol

from gate.ownership.block import Block, Message
from gate.ownership.exc import MalformedBlock, Refused, UnknownChain
from gate.ownership.party import Party, Received
from gate.ownership.protocol import APP_PAYMENT
from gate.ownership.store import AGENT_MIGRATIONS, Charge, Charges, Payments, open_db
from gate.sqlite import Database


class PaymentAgent(Protocol):
    """What a wallet needs of a payment service."""

    @property
    def identity_block(self) -> Block: ...

    def pay(self, message: Message) -> Message:
        """Carry out the payment block in `message`; the confirmation and receipt, or a ChainError."""
        ...


class Checkout(Protocol):
    """What a payer's wallet needs of a provider that holds payments (gate.ownership.online): its identity
    and `charge`.  gate.ownership.client.AgentClient is one over HTTP."""

    @property
    def identity_block(self) -> Block: ...

    def charge(self, message: Message) -> Message:
        """Hold the payment of `message` (a payment block with the payee's intent); the receipt, or a ChainError."""
        ...


class PaymentProvider(Checkout, Protocol):
    """A payment service that holds the money until the box office settles: what the agent's service
    (gate.ownership.agentserver) needs of it.  FakePaymentAgent is the one adapter that ships; a real
    provider's adapter implements the same and must pass tests/test_payment_contract.py.

    The contract (each step idempotent: the same request again gets the same answer and changes nothing):

    * `charge`: one charge per transaction; a refused or malformed request raises a ChainError and
      holds nothing.  The answer holds a ``payment_receipt`` for the payer.
    * `notice`: for a held charge, the amount-free ``paid_as_invoiced`` block for the box office (a
      block of the provider's chain, sealed for the box office: it verifies it by back-step against the
      identity it trusts, so nobody else can forge one).
    * `settle`: the box office's ``settlement`` decides a held charge once: ``transferred`` -> a
      ``payment_confirmation`` for the payee (the money is the payee's), ``refund`` -> a ``refund``
      block for the payer.  A second settlement of a decided charge changes nothing (no double refund).
    * `outcome`, `pending`, `delivered`: what the delivery loop hands on until it arrived.
    """

    def trust_boxoffice(self, identity: Block) -> str:
        """Work for this box office (accept intents naming it, take its settlements); its chain id."""
        ...

    def notice(self, txn: str) -> Message:
        """The ``paid_as_invoiced`` notice of a charge (no amount), for its box office; Refused `unknown_deal`."""
        ...

    def settle(self, message: Message) -> Message:
        """Apply the box office's ``settlement``; the outcome (as `outcome`)."""
        ...

    def outcome(self, txn: str) -> Message:
        """The payee's ``payment_confirmation`` or the payer's ``refund`` of a decided charge; none while held."""
        ...

    def pending(self) -> list[str]:
        """The charges whose notice or outcome has not been delivered yet."""
        ...

    def delivered(self, txn: str) -> None:
        """The charge's outcome reached the box office and the parties."""
        ...

    def payment(self, txn: str) -> Charge:
        """The charge of `txn` (state ``held``, ``settled`` or ``refunded``); Refused `unknown_deal`."""
        ...


class FakePaymentAgent:
    """A PaymentAgent and PaymentProvider that confirms every well-formed payment and moves no money.

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

    def trust_boxoffice(self, identity: Block) -> str:
        """Work for this box office: accept intents naming it, send it notices, take its settlements."""
        with self.db.transaction() as tx:
            return self.party.learn(tx, identity, trusted="boxoffice").chain

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

    # held payments ----------------------------------------------------------------------------
    def charge(self, message: Message) -> Message:
        """Hold a payment that matches its payee's intent; the receipt and the notice for the box office."""
        with self.db.transaction() as tx:
            self.party.learn_all(tx, message)
            pay, intent = (self._one(tx, message, kind) for kind in ("payment", "intent"))
            txn = pay.block.txn
            if intent.block.txn != txn or pay.field("payee") != intent.sender.chain:
                raise Refused("mismatch", "the payment does not answer this intent")
            if (pay.field("amount", int), pay.field("currency")) != (intent.field("amount", int),
                                                                    intent.field("currency")):
                raise Refused("wrong_amount", "the payment is not the amount invoiced")
            office = self.party.known(tx, intent.field("boxoffice"))
            if office is None or office.trusted != "boxoffice":
                raise Refused("unknown_boxoffice", "the intent names a box office this agent does not work with")
            charge = Charge(txn, pay.sender.chain, intent.sender.chain, office.chain, pay.field("amount", int),
                            pay.field("currency"), "held", False)
            if pay.fresh and not Charges.capture(tx, charge, self.clock()):
                raise Refused("already_paid", f"transaction {txn} was paid already")
            if pay.fresh:
                self.party.append(tx, to=charge.payer, txn=txn, app=APP_PAYMENT, kind="payment_receipt", payload={
                    "amount": charge.amount, "currency": charge.currency, "payee": charge.payee, "state": "held"})
                self.party.append(tx, to=office.chain, txn=txn, app=APP_PAYMENT, kind="paid_as_invoiced",
                                  payload={"payee": charge.payee, "payer": charge.payer})
            return self._mine(tx, txn, charge.payer)

    def notice(self, txn: str) -> Message:
        """The ``paid_as_invoiced`` notice of a held charge, for the box office (sent again until it answers)."""
        with self.db.transaction() as tx:
            charge = Charges.get(tx, txn)
            if charge is None:
                raise Refused("unknown_deal", f"no charge {txn} here")
            return self._mine(tx, txn, charge.boxoffice)

    def settle(self, message: Message) -> Message:
        """The box office's settlement of a held charge -> confirmation for the payee, or a refund for the payer.

        The answer holds the blocks for payer and payee (the same on a redelivery).
        """
        with self.db.transaction() as tx:
            self.party.learn_all(tx, message)
            rec = self._one(tx, message, "settlement")
            charge = Charges.get(tx, rec.block.txn)
            if charge is None or rec.sender.chain != charge.boxoffice:
                raise Refused("unknown_deal", "no charge of this box office with this transaction")
            outcome = rec.field("outcome")
            if outcome not in ("transferred", "refund"):
                raise MalformedBlock(f"settlement outcome {outcome!r}")
            if Charges.decide(tx, charge.txn, "settled" if outcome == "transferred" else "refunded", self.clock()):
                common = {"amount": charge.amount, "currency": charge.currency}
                if outcome == "transferred":
                    self.party.append(tx, to=charge.payee, txn=charge.txn, app=APP_PAYMENT,
                                      kind="payment_confirmation", payload={**common, "payer": charge.payer})
                else:
                    self.party.append(tx, to=charge.payer, txn=charge.txn, app=APP_PAYMENT, kind="refund",
                                      payload={**common, "why": rec.field("why")})
        return self.outcome(charge.txn)

    def outcome(self, txn: str) -> Message:
        """The confirmation (to the payee) or refund (to the payer) of a decided charge; no blocks while held."""
        with self.db.transaction() as tx:
            blocks = [b for b in self.party.blocks(tx, txn) if b.chain == self.party.chain
                      and b.kind in ("payment_confirmation", "refund")]
        return Message((self.party.identity_block, *blocks))

    def pending(self) -> list[str]:
        """Charges whose notice or outcome has not reached the box office and the parties yet."""
        with self.db.transaction() as tx:
            return Charges.pending(tx)

    def delivered(self, txn: str) -> None:
        with self.db.transaction() as tx:
            Charges.delivered(tx, txn)

    def payment(self, txn: str) -> Charge:
        with self.db.transaction() as tx:
            charge = Charges.get(tx, txn)
        if charge is None:
            raise Refused("unknown_deal", f"no charge {txn} here")
        return charge

    def charges(self) -> list[dict[str, object]]:
        return self.db.rows("SELECT txn, payer, payee, amount, currency, state, delivered FROM charges ORDER BY at")

    def _one(self, tx: sqlite3.Connection, message: Message, kind: str) -> Received:
        wanted = message.to(self.party.chain, kind)
        if len(wanted) != 1:
            raise MalformedBlock(f"expected one {kind} block for this agent, found {len(wanted)}")
        return self.party.receive(tx, wanted[0])

    def _mine(self, tx: sqlite3.Connection, txn: str, to: str) -> Message:
        blocks = [b for b in self.party.blocks(tx, txn) if b.chain == self.party.chain and b.to == to]
        return Message((self.party.identity_block, *blocks))
