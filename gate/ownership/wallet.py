"""The holder's wallet: its chain, the tickets it holds, and each step of buying, selling and showing one.

Each method takes the Message that arrived (if any) and returns the Message
to hand on; each runs in one ``BEGIN IMMEDIATE`` transaction of the wallet's
file, and a refused step raises a ChainError whose `code` says why and
changes nothing.  Blocks from the box office are accepted only from a box
office this wallet trusts (`trust` its catalog), payment confirmations only
from a trusted agent: any other chain is `wrong_chain`.

Buyer:  `buy` -> (box office) -> `accept` / `pay` -> ... -> `accept` the ownership.  A buyer pays a
        seller's invoice only once the box office's hold for that resale is here (else `no_hold`),
        so a loser of a double sale never pays.
Seller: `sell` (invoice) or `gift` -> `release` after the agent's confirmation.
Holder: `code` is the QR text for now (gate.holder).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable

from gate.backstep import anchor_of, code_salt, new_seed
from gate.exc import TicketFormatError
from gate.holder import MODES, Code, HolderTerms, code_for, present, terms_of
from gate.ownership.block import Block, Message
from gate.ownership.exc import MalformedBlock, Refused, UnknownChain, WrongChain
from gate.ownership.party import Party, Received
from gate.ownership.payment import PaymentAgent
from gate.ownership.protocol import APP_PAYMENT, APP_RESALE, APP_TICKET, Catalog, CodeRequest, new_txn
from gate.ownership.store import WALLET_MIGRATIONS, Held, Holdings, WalletDeal, open_db
from gate.sqlite import Database
from gate.ticket import Ticket, parse

SETTLED = ("owned", "refunded")  # a buyer's deal in one of these states is over: nothing reopens it
FROM_BOXOFFICE = ("reservation", "payment_request", "hold", "ownership", "timeout", "superseded")


class Wallet:
    """A holder's wallet on its file (create once with `Wallet.create`)."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.party = Party(db, clock)
        self.clock = clock

    @classmethod
    def create(cls, path: str, name: str, *, clock: Callable[[], float] = time.time) -> Wallet:
        db = open_db(path, WALLET_MIGRATIONS)
        Party.create(db, name, "wallet", clock=clock)
        return cls(db, clock)

    @classmethod
    def open(cls, path: str, *, clock: Callable[[], float] = time.time) -> Wallet:
        return cls(open_db(path, WALLET_MIGRATIONS), clock)

    @property
    def chain(self) -> str:
        return self.party.chain

    def identity(self) -> Message:
        return Message((self.party.identity_block,))

    def trust(self, source: Catalog | Block) -> str:
        """Trust a box office (its catalog) or a payment agent; just know a wallet.  The chain id."""
        with self.db.transaction() as tx:
            if isinstance(source, Catalog):
                bo = self.party.learn(tx, source.verify().boxoffice, trusted="boxoffice").chain
                for item in source.listings:
                    Holdings.remember(tx, item, bo)
                return bo
            role = source.identity().role
            return self.party.learn(tx, source, trusted="" if role == "wallet" else role).chain

    # buying --------------------------------------------------------------------------------
    def buy(self, event: str, ticket_id: str, *, seller: str = "", mode: str = "rotating") -> Message:
        """Ask the box office for a listed ticket, or (with `seller`) to buy it from its holder."""
        with self.db.transaction() as tx:
            found = Holdings.listing(tx, event, ticket_id)
            if found is None:
                raise Refused("unknown_ticket", f"{event}/{ticket_id} is in no trusted catalog: trust one first")
            item, bo = found
            seed = new_seed()
            code = CodeRequest(anchor_of(seed, code_salt(event, ticket_id), item.slots), MODES[mode])
            txn, ask = new_txn(), {"event": event, "ticket_id": ticket_id}
            if seller and self.party.known(tx, seller) is None:
                raise UnknownChain(f"seller {seller} is unknown: trust their identity file first")
            blocks = [self.party.append(tx, to=bo, txn=txn, app=APP_TICKET,
                                        kind="resale_request" if seller else "purchase_request",
                                        payload={**ask, "code": code.to_json(), **({"seller": seller} if seller else {})})]
            if seller:
                blocks.append(self.party.append(tx, to=seller, txn=txn, app=APP_RESALE, kind="resale_request",
                                                payload={**ask, "boxoffice": bo}))
            deal = WalletDeal(txn, "buyer", event, ticket_id, seller, bo, seed, MODES[mode], 0, "", "requested")
            Holdings.put_deal(tx, deal, self.clock())
        return Message((self.party.identity_block, *blocks))

    def accept(self, message: Message) -> list[Received]:
        """Verify, open and apply every block of `message` addressed to this wallet."""
        with self.db.transaction() as tx:
            self.party.learn_all(tx, message)
            done = []
            for block in message.to(self.chain):
                rec = self.party.receive(tx, block)
                if rec.fresh:
                    self._apply(tx, rec)
                done.append(rec)
            return done

    def pay(self, message: Message, agent: PaymentAgent) -> Message:
        """Pay the payment request or invoice in `message` through `agent` (files mode); its answer (for the payee)."""
        reply = agent.pay(self.charge(message, agent.identity_block))
        self.accept(reply)  # the receipt: only blocks addressed here are applied
        return reply

    def charge(self, message: Message, agent: Block | None = None) -> Message:
        """The message for the payment agent that pays the bill in `message`: the payee's intent (if it came
        with the bill, it names the agent) and this wallet's payment block.  Refused if the bill is paid, timed
        out, or (a resale) the box office holds no resale for this wallet.  A bill paid before whose receipt never
        arrived (deal ``paying``) gets the same payment block again, so the agent charges it once.
        """
        self.accept(message)
        bills = [b for b in message.to(self.chain) if b.kind in ("payment_request", "invoice")]
        if len(bills) != 1:
            raise MalformedBlock(f"expected one payment request or invoice, found {len(bills)}")
        intents = [b for b in message.blocks if b.kind == "intent" and b.chain == bills[0].chain]
        with self.db.transaction() as tx:
            deal = self._payable(tx, bills[0].txn)
            payee = self.party.known(tx, bills[0].chain)
            assert payee is not None  # accept() received the bill from it
            chain = self._agent(tx, agent, intents)
            written = [b for b in self.party.blocks(tx, deal.txn) if b.chain == self.chain and b.kind == "payment"
                       and b.to == chain] if deal.state == "paying" else []
            if written:  # paid before, and its answer never came (a wallet killed): the very same payment again
                payment = written[-1]
            else:
                payment = self.party.append(tx, to=chain, txn=deal.txn, app=APP_PAYMENT, kind="payment", payload={
                    "amount": deal.amount, "currency": deal.currency, "payee": payee.chain})
            Holdings.set_deal(tx, deal.txn, "buyer", self.clock(), state="paying")
        return Message((self.party.identity_block, Block.of_identity(payee.identity, 0), *intents[:1], payment))

    def _payable(self, tx: sqlite3.Connection, txn: str) -> WalletDeal:
        deal = self._deal(tx, txn, "buyer")
        if deal.state in ("paid", "owned", "refunded"):
            raise Refused("already_paid", f"{deal.ticket_id} is paid already")
        if deal.state == "timeout":
            raise Refused("timed_out", "the box office let this reservation or hold expire: do not pay")
        if deal.other and not any(b.kind == "hold" and b.chain == deal.boxoffice
                                  for b in self.party.blocks(tx, deal.txn)):
            raise Refused("no_hold", "the box office holds no resale of this ticket for you: accept its hold "
                                     "first (another buyer may have it)")
        return deal

    def _agent(self, tx: sqlite3.Connection, agent: Block | None, intents: list[Block]) -> str:
        """The trusted agent to pay through: the one the payee's intent names, else `agent`."""
        if intents:
            known = self.party.known(tx, intents[0].to)
            if known is None or known.trusted != "agent":
                raise WrongChain("the bill names a payment agent this wallet does not trust")
            return known.chain
        if agent is None:
            raise MalformedBlock("the bill carries no payment intent: name the payment agent")
        return self.party.learn(tx, agent).chain

    # selling -------------------------------------------------------------------------------
    def sell(self, message: Message, amount: int, currency: str) -> Message:
        """Invoice the buyer whose resale_request is in `message` (the price stays between the two of you)."""
        return self._answer_request(message, "invoice", amount=amount, currency=currency)

    def gift(self, message: Message) -> Message:
        """Give the ticket of the resale_request in `message` away: a release to the box office, no payment."""
        return self._answer_request(message, "gift")

    def release(self, message: Message) -> Message:
        """After the agent's payment_confirmation in `message`: release the ticket to the buyer."""
        self.accept(message)
        paid = message.to(self.chain, "payment_confirmation")
        if len(paid) != 1:
            raise MalformedBlock(f"expected one payment confirmation, found {len(paid)}")
        with self.db.transaction() as tx:
            deal = self._deal(tx, paid[0].txn, "seller")
            if deal.state not in ("paid", "released"):
                raise Refused("not_paid", f"{deal.ticket_id} is not paid (state {deal.state})")
            return Message((self.party.identity_block, self._release(tx, deal, "sale")))

    # showing -------------------------------------------------------------------------------
    def code(self, event: str, ticket_id: str, now: float | None = None) -> tuple[str, Code, HolderTerms]:
        """The QR text to show at `now`, its code and the ticket's terms; Refused unless held here."""
        with self.db.transaction() as tx:
            held = Holdings.ticket(tx, event, ticket_id)
        if held is None or held.state != "held":
            raise Refused("not_holder", f"this wallet does not hold {event}/{ticket_id}")
        ticket = parse(held.text).ticket
        terms = terms_of(ticket)
        assert terms is not None  # checked when the ownership block was accepted
        code = code_for(held.seed, ticket, terms, self.clock() if now is None else now)
        return present(held.text, code), code, terms

    def about(self, block: Block) -> tuple[str, str]:
        """(event, ticket id) of a block this wallet wrote or opened; ("", "") for one it has not."""
        rows = self.db.rows("SELECT payload FROM blocks WHERE hash = ?", (block.hash,))
        payload = json.loads(str(rows[0]["payload"])) if rows else {}
        return str(payload.get("event", "")), str(payload.get("ticket_id", ""))

    def shown(self) -> list[dict[str, object]]:
        """The tickets held here with what the box office's catalog says of them (title, venue, seat, window)."""
        return self.db.rows("SELECT t.event, t.ticket_id, t.generation, coalesce(c.title, '') AS title,"
                            " coalesce(c.venue, '') AS venue, coalesce(c.seat, '') AS seat, c.valid_from, c.valid_until"
                            " FROM tickets t LEFT JOIN catalog c USING (event, ticket_id) WHERE t.state = 'held'"
                            " ORDER BY c.valid_from, t.event, t.ticket_id")

    def on_sale(self, now: float) -> list[dict[str, object]]:
        """The trusted catalogs' tickets still available and not yet over."""
        return self.db.rows("SELECT event, ticket_id, title, venue, seat, price, currency, valid_from, valid_until"
                            " FROM catalog WHERE state = 'available' AND valid_until > ? ORDER BY valid_from, event,"
                            " ticket_id", (now,))

    def given_up(self) -> list[dict[str, object]]:
        """The tickets this wallet held and holds no longer, with the catalog's words and how each went: ``how``
        is ``sold`` or ``given`` (its newest answer as seller) or '' (none known), with ``amount``, ``currency``
        and ``to`` (the other wallet's name, '' if unknown)."""
        gone = self.db.rows("SELECT t.event, t.ticket_id, coalesce(c.title, '') AS title, coalesce(c.venue, '') AS venue,"
                            " coalesce(c.seat, '') AS seat, c.valid_from, c.valid_until FROM tickets t LEFT JOIN catalog c"
                            " USING (event, ticket_id) WHERE t.state = 'gone' ORDER BY c.valid_from, t.event, t.ticket_id")
        answers: dict[tuple[object, object], dict[str, object]] = {}
        for d in self.db.rows("SELECT d.event, d.ticket_id, d.amount, d.currency, d.state, coalesce(p.identity, '')"
                              " AS identity FROM deals d LEFT JOIN parties p ON p.chain = d.other"
                              " WHERE d.role = 'seller' AND d.state != 'timeout' ORDER BY d.updated"):
            name = json.loads(str(d["identity"])).get("name", "") if d["identity"] else ""
            answers[(d["event"], d["ticket_id"])] = {"how": "sold" if d["amount"] else "given", "amount": d["amount"],
                                                     "currency": d["currency"], "to": name}
        return [{**row, **answers.get((row["event"], row["ticket_id"]),
                                      {"how": "", "amount": 0, "currency": "", "to": ""})} for row in gone]

    def people(self) -> list[dict[str, str]]:
        """The other wallets this one knows (from their identity files): ``{chain, name}``, by name."""
        rows = self.db.rows("SELECT chain, identity FROM parties WHERE role = 'wallet' AND chain != ?", (self.chain,))
        return sorted(({"chain": str(r["chain"]), "name": str(json.loads(str(r["identity"])).get("name", ""))}
                       for r in rows), key=lambda p: (p["name"], p["chain"]))

    def owed(self) -> list[dict[str, object]]:
        """The deals this wallet was billed for and has not paid: event, ticket_id, amount, currency, ``to`` (the
        seller's name; '' for the box office)."""
        rows = self.db.rows("SELECT d.event, d.ticket_id, d.amount, d.currency, coalesce(p.identity, '') AS identity"
                            " FROM deals d LEFT JOIN parties p ON p.chain = d.other AND p.role = 'wallet'"
                            " WHERE d.role = 'buyer' AND d.state = 'billed' ORDER BY d.updated")
        return [{"event": r["event"], "ticket_id": r["ticket_id"], "amount": r["amount"], "currency": r["currency"],
                 "to": json.loads(str(r["identity"])).get("name", "") if r["identity"] else ""} for r in rows]

    def listed(self, event: str, ticket_id: str) -> dict[str, object] | None:
        """What the trusted catalog says of one ticket (title, venue, seat, state, window), or None."""
        rows = self.db.rows("SELECT event, ticket_id, title, venue, seat, state, valid_from, valid_until FROM catalog"
                            " WHERE event = ? AND ticket_id = ?", (event, ticket_id))
        return rows[0] if rows else None

    def catalog_sold(self, now: float) -> list[dict[str, object]]:
        """The trusted catalogs' tickets someone holds (not on sale) and not yet over: a holder may be asked."""
        return self.db.rows("SELECT event, ticket_id FROM catalog WHERE state = 'sold' AND valid_until > ?"
                            " ORDER BY valid_from, event, ticket_id", (now,))

    def tickets(self) -> list[dict[str, object]]:
        return self.db.rows("SELECT event, ticket_id, generation, state, txn FROM tickets ORDER BY event, ticket_id")

    def answered(self) -> set[str]:
        """The resale requests this wallet has answered for good: paid, timed out, or the ticket handed over.

        An answer still under way (``invoiced`` or ``released``, and neither a timeout nor a superseded
        block of the box office for it here) is not in it: `sell` or `gift` may send it again, and sends the
        same invoice or release (a wallet killed before its answer left, or before it heard back).
        """
        rows = self.db.rows("SELECT txn FROM deals d WHERE role = 'seller' AND (state NOT IN ('invoiced', 'released')"
                            " OR EXISTS (SELECT 1 FROM blocks b WHERE b.txn = d.txn AND b.recipient = ?"
                            " AND b.kind IN ('timeout', 'superseded')))", (self.chain,))
        return {str(r["txn"]) for r in rows}

    def deals(self) -> list[dict[str, object]]:
        return self.db.rows("SELECT txn, role, event, ticket_id, amount, currency, state FROM deals ORDER BY updated")

    # helpers -------------------------------------------------------------------------------
    def _deal(self, tx: sqlite3.Connection, txn: str, role: str) -> WalletDeal:
        deal = Holdings.deal(tx, txn, role)
        if deal is None:
            raise Refused("unknown_deal", f"no deal {txn} as {role} in this wallet")
        return deal

    def _answer_request(self, message: Message, how: str, *, amount: int = 0, currency: str = "") -> Message:
        with self.db.transaction() as tx:
            self.party.learn_all(tx, message)
            asks = message.to(self.chain, "resale_request")
            if len(asks) != 1:
                raise MalformedBlock(f"expected one resale request for this wallet, found {len(asks)}")
            rec = self.party.receive(tx, asks[0])
            if (before := Holdings.deal(tx, rec.block.txn, "seller")) is not None:  # answered: the same answer again
                if (before.amount, before.currency) != (amount, currency):
                    was = f"invoiced at {before.amount} {before.currency}" if before.currency else "given away"
                    raise Refused("answered", f"{before.event}/{before.ticket_id}: this request was {was} already;"
                                  " that answer stands")
                return Message((self.party.identity_block, *[b for b in self.party.blocks(tx, rec.block.txn)
                                                             if b.chain == self.chain and b.to != self.chain]))
            event, ticket_id, bo = rec.field("event"), rec.field("ticket_id"), rec.field("boxoffice")
            held = Holdings.ticket(tx, event, ticket_id)
            if held is None or held.state != "held":
                raise Refused("not_holder", f"this wallet does not hold {event}/{ticket_id}")
            office = self.party.known(tx, bo)
            if office is None or office.trusted != "boxoffice":
                raise WrongChain(f"the request names box office {bo}, which this wallet does not trust")
            deal = WalletDeal(rec.block.txn, "seller", event, ticket_id, rec.sender.chain, bo, None, 0, amount,
                                  currency, "invoiced" if how == "invoice" else "released")
            Holdings.put_deal(tx, deal, self.clock())
            if how == "gift":
                return Message((self.party.identity_block, self._release(tx, deal, "gift")))
            invoice = self.party.append(tx, to=deal.other, txn=deal.txn, app=APP_RESALE, kind="invoice", payload={
                "event": event, "ticket_id": ticket_id, "amount": amount, "currency": currency})
            intents = [self.party.append(tx, to=agent.chain, txn=deal.txn, app=APP_PAYMENT, kind="intent", payload={
                "event": event, "ticket_id": ticket_id, "amount": amount, "currency": currency, "boxoffice": bo})
                for agent in self.party.trusted(tx, "agent")[:1]]  # the buyer carries it to the agent
            return Message((self.party.identity_block, invoice, *intents))

    def _release(self, tx: sqlite3.Connection, deal: WalletDeal, how: str) -> Block:
        held = Holdings.ticket(tx, deal.event, deal.ticket_id)
        if held is None or held.state != "held":
            raise Refused("not_holder", f"this wallet no longer holds {deal.event}/{deal.ticket_id}")
        Holdings.set_deal(tx, deal.txn, "seller", self.clock(), state="released")
        return self.party.append(tx, to=deal.boxoffice, txn=deal.txn, app=APP_TICKET, kind="release", payload={
            "event": deal.event, "ticket_id": deal.ticket_id, "buyer": deal.other, "generation": held.generation,
            "how": how})

    def _apply(self, tx: sqlite3.Connection, rec: Received) -> None:
        kind, txn, now = rec.block.kind, rec.block.txn, self.clock()
        if kind in FROM_BOXOFFICE and rec.sender.trusted != "boxoffice":
            raise WrongChain(f"a {kind} block must come from a trusted box office, not {rec.sender.identity.name}")
        if kind == "payment_confirmation" and rec.sender.trusted != "agent":
            raise WrongChain(f"{rec.sender.identity.name} is not a payment agent this wallet trusts")
        if kind == "ownership":
            self._own(tx, rec)
        elif kind == "payment_request" or kind == "invoice":
            deal = self._deal(tx, txn, "buyer")
            if kind == "invoice" and rec.sender.chain != deal.other:
                raise WrongChain("an invoice must come from the seller this wallet asked")
            Holdings.set_deal(tx, txn, "buyer", now, amount=rec.field("amount", int), currency=rec.field("currency"))
            if deal.state in ("requested", "reserved"):  # a bill never reopens a deal that timed out or is paid
                Holdings.set_deal(tx, txn, "buyer", now, state="billed")
        elif kind in ("reservation", "hold") and (mine := Holdings.deal(tx, txn, "buyer")) and mine.state == "requested":
            Holdings.set_deal(tx, txn, "buyer", now, state="reserved")
        elif kind == "payment_receipt" and (mine := Holdings.deal(tx, txn, "buyer")) and mine.state not in SETTLED:
            Holdings.set_deal(tx, txn, "buyer", now, state="paid")
        elif kind == "refund" and (mine := Holdings.deal(tx, txn, "buyer")) and mine.state != "owned":
            if rec.sender.trusted != "agent":
                raise WrongChain(f"{rec.sender.identity.name} is not a payment agent this wallet trusts")
            Holdings.set_deal(tx, txn, "buyer", now, state="refunded")
        elif kind == "payment_confirmation":
            self._paid(tx, rec)
        elif kind == "timeout":
            for role in ("buyer", "seller"):
                if (mine := Holdings.deal(tx, txn, role)) and mine.state not in SETTLED:
                    Holdings.set_deal(tx, txn, role, now, state="timeout")
        elif kind == "superseded":
            Holdings.let_go(tx, rec.field("event"), rec.field("ticket_id"), rec.field("generation", int))

    def _paid(self, tx: sqlite3.Connection, rec: Received) -> None:
        deal = self._deal(tx, rec.block.txn, "seller")
        if rec.field("amount", int) < deal.amount or rec.field("currency") != deal.currency:
            raise Refused("wrong_amount", f"paid {rec.payload.get('amount')}, invoiced {deal.amount}")
        Holdings.set_deal(tx, deal.txn, "seller", self.clock(), state="paid")

    def _own(self, tx: sqlite3.Connection, rec: Received) -> None:
        deal = self._deal(tx, rec.block.txn, "buyer")
        try:
            ticket = parse(rec.field("ticket")).ticket
            terms = terms_of(ticket)
        except TicketFormatError as exc:
            raise MalformedBlock(f"ownership block: {exc}") from None
        if not self._is_mine(ticket, terms, deal, rec):
            raise Refused("bad_ownership", "the signed ticket does not carry this wallet's code chain")
        assert deal.seed is not None
        Holdings.hold_ticket(tx, Held(ticket.event, ticket.ticket_id, ticket.generation, rec.field("ticket"),
                                     deal.seed, deal.txn, "held"), self.clock())
        Holdings.set_deal(tx, deal.txn, "buyer", self.clock(), state="owned")

    def _is_mine(self, ticket: Ticket, terms: HolderTerms | None, deal: WalletDeal, rec: Received) -> bool:
        if terms is None or deal.seed is None:
            return False
        anchor = anchor_of(deal.seed, code_salt(ticket.event, ticket.ticket_id), terms.slots)
        return (ticket.event, ticket.ticket_id, ticket.generation, terms.anchor, terms.mode) == (
            deal.event, deal.ticket_id, rec.field("generation", int), anchor, deal.mode
        ) and rec.field("holder") == self.chain
