"""The box office: sells tickets, knows who holds each one now, and hands them over on resale.

Each step takes a Message (the blocks a wallet or agent sent) and returns the
Message to send back; each is one ``BEGIN IMMEDIATE`` transaction in which
the incoming block is verified (gate.ownership.party), the ticket row is
compare-and-set (gate.ownership.store) and the answering blocks are
appended to the box office's own chain.  A refused step raises a ChainError
whose `code` says why and changes nothing.  A message delivered twice gets
the same answer again (idempotent by block hash).

Flows (docs/ownership.md draws them):

* purchase: `handle` a purchase_request -> reservation + payment_request;
  `confirm` the agent's payment_confirmation -> ownership (generation 1).
* resale and gift: `handle` a resale_request naming the seller -> hold (to
  buyer and seller); `transfer` the seller's release -> ownership for the
  buyer (generation + 1), superseded for the seller.  The price never
  reaches the box office: the release says only "sale" or "gift".
* payment through an agent that holds the money (gate.ownership.payment): `handle` also writes an
  ``intent`` for the agent (the price, carried by the buyer); the agent's amount-free
  ``paid_as_invoiced`` notice goes to `paid`, which sells or hands over the ticket on it (the
  seller's release is not needed: a seller who never releases cannot keep the money) and answers
  the agent with a ``settlement``: ``transferred`` (pay the payee) or ``refund`` (too late, or
  the ticket moved).  So a buyer who paid ends with the ticket or a refund.
* `expire`: reservations and holds past their time -> timeout blocks.
* mailboxes: every block this box office writes is also put, in the same commit, in its
  recipient's mailbox; `relay` puts there the sealed blocks one party sends another (the box
  office cannot open them); `mailbox` reads one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable

from gate.holder import MODE_PAPER, with_terms
from gate.ownership.block import Block, Message
from gate.ownership.exc import MalformedBlock, Refused, UnknownChain, WrongChain
from gate.ownership.party import Party, Received
from gate.ownership.protocol import APP_PAYMENT, APP_TICKET, Catalog, CodeRequest, Listing, sign_status
from gate.ownership.store import BOXOFFICE_MIGRATIONS, LISTING, Deal, Holding, Inventory, Mailbox, open_db
from gate.sqlite import Database
from gate.ticket import Ticket

Signer = Callable[[Ticket], str]
REQUESTS = ("purchase_request", "resale_request")
MAILBOX_LIMIT = 500  # messages kept for one party: a flood of relays cannot fill the disk
MAILBOX_PAGE = 50


class BoxOffice:
    """The box office service on its file; `sign` mints the signed ticket text (gate.keys.IssuerKey.sign)."""

    def __init__(self, db: Database, sign: Signer, *, reservation: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.party = Party(db, clock)
        self.sign = sign
        self.reservation = reservation
        self.clock = clock

    @classmethod
    def open(cls, path: str, sign: Signer, **options: object) -> BoxOffice:
        return cls(open_db(path, BOXOFFICE_MIGRATIONS), sign, **options)  # type: ignore[arg-type]

    @property
    def chain(self) -> str:
        return self.party.chain

    # set-up ------------------------------------------------------------------------------------
    def trust_agent(self, identity: Block) -> str:
        """Accept payment confirmations from this payment agent's chain."""
        with self.db.transaction() as tx:
            return self.party.learn(tx, identity, trusted="agent").chain

    def add(self, item: Listing, *, paper: bool = False) -> bool:
        """Put a ticket on sale; False if its id is listed already.  `paper`: its holder may take a static
        paper code (for a holder without a phone); every other ticket's code rotates, whatever a buyer asks:
        a paper code never expires, so a holder could sell one screenshot many times (docs/security.md)."""
        if item.slots < 1 or item.valid_from <= 0 or item.valid_until <= item.valid_from:
            raise ValueError("a listed ticket needs a validity window (its holder code runs over it)")
        if self.clock() >= item.valid_until:  # it would be sold, then INVALID expired at every gate
            raise ValueError(f"{item.event}/{item.ticket_id}: its validity window has ended: nothing to sell")
        with self.db.transaction() as tx:
            added = Inventory.add(tx, item)
            if added and paper:
                Inventory.allow_paper(tx, item.event, item.ticket_id)
            return added

    @staticmethod
    def _code_fits(tx: sqlite3.Connection, item: Listing, code: CodeRequest) -> None:
        """Refuse now, not at signing, a code chain that does not fit the ticket, or a paper code the box
        office has not allowed for it."""
        item.terms(code)
        if code.mode == MODE_PAPER and not Inventory.paper_allowed(tx, item.event, item.ticket_id):
            raise Refused("no_paper", f"{item.event}/{item.ticket_id} is sold with a rotating code only: a static "
                          "paper code is the box office's decision (`gate boxoffice add --paper`)")

    def catalog(self) -> Catalog:
        """Every listing (state ``ended`` once its validity window is over), signed with the box office's key."""
        now = self.clock()
        rows = self.db.rows(f"SELECT {LISTING} FROM tickets ORDER BY event, ticket_id")
        items = tuple(Listing(**{**r, "state": "ended" if now >= int(r["valid_until"]) else r["state"]})  # type: ignore[arg-type, call-overload]
                      for r in rows)
        draft = Catalog(self.party.identity_block, items, int(now))
        return Catalog(draft.boxoffice, items, draft.at, self.party.sign(draft.signed_part()))

    def status(self, event: str, ticket_id: str) -> dict[str, object]:
        """Who holds a ticket now (the gate's online check); Refused `unknown_ticket` if it is not listed.

        Signed with the box office's key, like the catalog (gate.ownership.protocol.sign_status): the signature
        covers every field, among them its identity block, the ticket, the generation and the time (``at``),
        so a gate that pinned this box office's chain id takes no answer from anyone else, for another
        ticket, or from long ago (`verify_status`)."""
        with self.db.transaction() as tx:
            held = Inventory.listing(tx, event, ticket_id)
        if held is None:
            raise Refused("unknown_ticket", f"{event}/{ticket_id} is not listed")
        item, now = held.listing, self.clock()
        answer = {"event": event, "ticket_id": ticket_id, "seat": item.seat, "state": item.state,
                  "holder": held.holder, "generation": held.generation, "on_hold": bool(held.pending),
                  "valid_from": item.valid_from, "valid_until": item.valid_until, "ended": now >= item.valid_until}
        return sign_status(answer, self.party.identity_block, int(now), self.party.sign)

    def holders(self) -> list[dict[str, object]]:
        return self.db.rows("SELECT event, ticket_id, seat, state, holder, generation, pending FROM tickets"
                            " ORDER BY event, ticket_id")

    def supersessions(self, *, unpublished: bool = False) -> list[dict[str, object]]:
        """Raised generations the gates must hear of (gate.store.Store.supersede), oldest first; with
        `unpublished`, only those the arbiter has not confirmed yet."""
        return self.db.rows("SELECT event, ticket_id, generation, at FROM supersessions"
                            f"{' WHERE published = 0' if unpublished else ''} ORDER BY at")

    def published(self, event: str, ticket_id: str, generation: int) -> None:
        with self.db.transaction() as tx:
            Inventory.published(tx, event, ticket_id, generation)

    # steps ---------------------------------------------------------------------------------------
    def handle(self, message: Message, kinds: tuple[str, ...] = REQUESTS) -> Message:
        """A purchase_request or resale_request -> reservation + payment_request (+ intent), or holds."""
        self.expire()
        with self.db.transaction() as tx:
            rec = self._receive(tx, message, kinds)
            if rec.fresh and rec.block.kind == "purchase_request":
                self._reserve(tx, rec)
            elif rec.fresh:
                self._hold(tx, rec)
            return self._answer(tx, rec)

    def confirm(self, message: Message) -> Message:
        """A payment agent's payment_confirmation of a reservation -> ownership for the buyer.

        A payment after the reservation expired, or after the ticket's validity window ended, is recorded
        (deal state ``late``, a timeout block saying a refund is due) and refused: `reservation_expired`.
        """
        self.expire()
        with self.db.transaction() as tx:
            rec = self._receive(tx, message, ("payment_confirmation",))
            if rec.sender.trusted != "agent":
                raise WrongChain(f"{rec.sender.identity.name} is not a payment agent this box office trusts")
            deal = self._deal(tx, rec.block.txn, "purchase")
            if rec.fresh:
                self._settle(tx, rec, deal)
            answer = self._answer(tx, rec)
            late = self._deal(tx, deal.txn, "purchase").state == "late"
        if late:
            raise Refused("reservation_expired", f"payment for {deal.ticket_id} came too late: refund due", answer)
        return answer

    def transfer(self, message: Message) -> Message:
        """The holder's release of a held ticket -> ownership for the buyer, superseded for the seller
        (Refused `ended` once the ticket's validity window is over)."""
        self.expire()
        with self.db.transaction() as tx:
            rec = self._receive(tx, message, ("release",))
            deal = self._deal(tx, rec.block.txn, "resale")
            if rec.sender.chain != deal.seller:
                raise WrongChain(f"a release must come from the holder's chain, not {rec.sender.identity.name}'s")
            if rec.fresh:
                self._hand_over(tx, rec, deal)
            return self._answer(tx, rec)

    def paid(self, message: Message) -> Message:
        """A trusted agent's ``paid_as_invoiced`` notice (no amount) -> the ticket moves, or a refund.

        The answer holds a ``settlement`` block for the agent: ``transferred`` once the buyer holds
        the ticket, ``refund`` when the reservation or hold ran out, the ticket's validity window ended,
        the ticket moved or the payee is not the one selling.  A notice delivered again gets the same answer.
        """
        self.expire()
        with self.db.transaction() as tx:
            rec = self._receive(tx, message, ("paid_as_invoiced",))
            if rec.sender.trusted != "agent":
                raise WrongChain(f"{rec.sender.identity.name} is not a payment agent this box office trusts")
            deal = Inventory.deal(tx, rec.block.txn)
            if rec.fresh:
                outcome, why = self._on_payment(tx, deal, rec.field("payee")) if deal else ("refund", "unknown deal")
                self.party.append(tx, to=rec.sender.chain, txn=rec.block.txn, app=APP_PAYMENT, kind="settlement",
                                  payload={"outcome": outcome, "why": why})
            mine = [b for b in self.party.blocks(tx, rec.block.txn) if b.chain == self.chain
                    and b.to == rec.sender.chain and b.kind == "settlement"]
            return Message((self.party.identity_block, *mine))

    def relay(self, recipient: str, message: Message) -> int:
        """Keep `message` (sealed blocks from one party for another) in `recipient`'s mailbox, unread; its seq.

        The recipient must be a party this box office knows (else `unknown_chain`), and the message must hold a
        block addressed to it; a full mailbox refuses (`mailbox_full`).  The same message is kept once.
        """
        if not message.to(recipient):
            raise MalformedBlock(f"the message holds no block addressed to {recipient}")
        with self.db.transaction() as tx:
            if self.party.known(tx, recipient) is None:
                raise UnknownChain(f"no party {recipient} is known to this box office")
            if Mailbox.waiting(tx, recipient) >= MAILBOX_LIMIT:
                raise Refused("mailbox_full", f"{MAILBOX_LIMIT} messages wait for {recipient} already")
            return self._deposit(tx, recipient, message)

    def mailbox(self, recipient: str, after: int = 0) -> list[tuple[int, Message]]:
        """The messages waiting for `recipient` after sequence number `after` (at most a page), with their numbers."""
        rows = self.db.rows("SELECT seq, message FROM mailbox WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?",
                            (recipient, after, MAILBOX_PAGE))
        return [(int(r["seq"]), Message.loads(str(r["message"]))) for r in rows]  # type: ignore[call-overload]

    def expire(self) -> Message:
        """Free every reservation and hold past its time; timeout blocks to the parties of each."""
        now = self.clock()
        blocks: list[Block] = []
        with self.db.transaction() as tx:
            for deal in Inventory.due(tx, now):
                Inventory.release_pending(tx, deal)
                Inventory.set_state(tx, deal.txn, "expired", now)
                for party in filter(None, (deal.buyer, deal.seller)):
                    blocks.append(self._write(tx, party, deal, "timeout", why="not paid in time: released"))
        return Message((self.party.identity_block, *blocks)) if blocks else Message(())

    # helpers -------------------------------------------------------------------------------------
    def _receive(self, tx: sqlite3.Connection, message: Message, kinds: tuple[str, ...]) -> Received:
        self.party.learn_all(tx, message)
        wanted = [b for b in message.to(self.chain) if b.kind in kinds]
        if len(wanted) != 1:
            raise MalformedBlock(f"expected one {' or '.join(kinds)} block for this box office, found {len(wanted)}")
        return self.party.receive(tx, wanted[0])

    def _answer(self, tx: sqlite3.Connection, rec: Received) -> Message:
        """Every block this box office wrote in `rec`'s transaction: the answer, the same on a redelivery."""
        mine = [b for b in self.party.blocks(tx, rec.block.txn) if b.chain == self.chain]
        return Message((self.party.identity_block, *mine))

    def _deal(self, tx: sqlite3.Connection, txn: str, kind: str) -> Deal:
        deal = Inventory.deal(tx, txn)
        if deal is None or deal.kind != kind:
            raise Refused("unknown_deal", f"no {kind} with transaction {txn} here")
        return deal

    def _settle(self, tx: sqlite3.Connection, rec: Received, deal: Deal) -> None:
        if rec.field("amount", int) != deal.amount or rec.field("currency") != deal.currency:
            raise Refused("wrong_amount", f"paid {rec.payload.get('amount')}, the price is {deal.amount}")
        if deal.state == "done":
            raise Refused("already_paid", f"{deal.ticket_id} was paid for already: refund this payment")
        if deal.state == "open" and self._ended(tx, deal):  # a gate would refuse it as expired
            Inventory.release_pending(tx, deal)
        elif deal.state == "open" and Inventory.sell(tx, deal):
            self._own(tx, deal)
            return
        Inventory.set_state(tx, deal.txn, "late", self.clock())
        self._write(tx, deal.buyer, deal, "timeout", why="paid after the reservation expired: refund due")

    def _on_payment(self, tx: sqlite3.Connection, deal: Deal, payee: str) -> tuple[str, str]:
        """Move the ticket of a paid deal, if it still can; (settlement outcome, why)."""
        seller = deal.seller or self.chain
        if payee != seller:
            return "refund", "the payee is not the one selling this ticket"
        if deal.state == "done":
            return "transferred", "the buyer holds the ticket"
        if deal.state == "open" and self._ended(tx, deal):
            Inventory.release_pending(tx, deal)
            Inventory.set_state(tx, deal.txn, "late", self.clock())
            self._write(tx, deal.buyer, deal, "timeout", why="paid after the ticket's validity window ended: refunded")
            return "refund", "the ticket's validity window has ended"
        moved = deal.state == "open" and (Inventory.sell(tx, deal) if deal.kind == "purchase" else
                                           Inventory.hand_over(tx, deal))
        if moved:
            self._moved(tx, deal)
            return "transferred", "the buyer holds the ticket"
        Inventory.set_state(tx, deal.txn, "late", self.clock())
        self._write(tx, deal.buyer, deal, "timeout", why="paid after the reservation or hold expired: refunded")
        return "refund", "the reservation or hold had expired, or the ticket moved"

    def _reserve(self, tx: sqlite3.Connection, rec: Received) -> None:
        held = self._listed(tx, rec)
        item, now = held.listing, self.clock()
        code = CodeRequest.from_json(rec.payload.get("code"))
        self._code_fits(tx, item, code)
        if not Inventory.take(tx, item.event, item.ticket_id, rec.block.txn, now + self.reservation):
            raise Refused("not_available", f"{item.event}/{item.ticket_id} is reserved or sold")
        deal = Deal(rec.block.txn, "purchase", item.event, item.ticket_id, rec.sender.chain, "", 0, "open",
                        now + self.reservation, item.price, item.currency, code)
        self._open(tx, deal)
        self._write(tx, deal.buyer, deal, "reservation", seat=item.seat, expires=deal.expires)
        self._write(tx, deal.buyer, deal, "payment_request", amount=deal.amount, currency=deal.currency,
                    payee=self.chain)
        for agent in self.party.trusted(tx, "agent")[:1]:  # the buyer carries it to the agent with the payment
            self._write(tx, agent.chain, deal, "intent", app=APP_PAYMENT, amount=deal.amount, currency=deal.currency,
                        boxoffice=self.chain)

    def _hold(self, tx: sqlite3.Connection, rec: Received) -> None:
        held, seller, now = self._listed(tx, rec), rec.field("seller"), self.clock()
        code = CodeRequest.from_json(rec.payload.get("code"))
        self._code_fits(tx, held.listing, code)
        if held.holder != seller or held.listing.state != "sold":
            raise Refused("not_holder", f"the named seller does not hold {held.listing.ticket_id}")
        if seller == rec.sender.chain:
            raise Refused("own_ticket", "the buyer already holds this ticket")
        if not Inventory.hold(tx, held, seller, rec.block.txn, now + self.reservation):
            raise Refused("on_hold", f"another sale of {held.listing.ticket_id} is under way")
        deal = Deal(rec.block.txn, "resale", held.listing.event, held.listing.ticket_id, rec.sender.chain,
                        seller, held.generation, "open", now + self.reservation, 0, "", code)
        self._open(tx, deal)
        for party in (deal.buyer, seller):
            self._write(tx, party, deal, "hold", buyer=deal.buyer, seller=seller, generation=held.generation,
                        expires=deal.expires)

    def _hand_over(self, tx: sqlite3.Connection, rec: Received, deal: Deal) -> None:
        if (rec.field("event"), rec.field("ticket_id"), rec.field("buyer"), rec.field("generation", int)) != (
                deal.event, deal.ticket_id, deal.buyer, deal.generation):
            raise Refused("mismatch", "the release does not name the held ticket, buyer and generation")
        if self._ended(tx, deal):
            raise Refused("ended", f"{deal.event}/{deal.ticket_id}: its validity window has ended")
        if deal.state != "open" or not Inventory.hand_over(tx, deal):
            raise Refused("not_holder", f"the hold on {deal.ticket_id} expired or the seller no longer holds it")
        self._moved(tx, deal)

    def _listed(self, tx: sqlite3.Connection, rec: Received) -> Holding:
        held = Inventory.listing(tx, rec.field("event"), rec.field("ticket_id"))
        if held is None:
            raise Refused("unknown_ticket", f"{rec.payload.get('event')}/{rec.payload.get('ticket_id')} is not listed")
        if self.clock() >= held.listing.valid_until:  # a gate would refuse it as expired
            raise Refused("ended", f"{held.listing.event}/{held.listing.ticket_id}: its validity window has ended")
        return held

    def _ended(self, tx: sqlite3.Connection, deal: Deal) -> bool:
        """Whether the deal's ticket is past its validity window (a gate would refuse it as expired)."""
        held = Inventory.listing(tx, deal.event, deal.ticket_id)
        return held is None or self.clock() >= held.listing.valid_until

    def _open(self, tx: sqlite3.Connection, deal: Deal) -> None:
        if not Inventory.open_deal(tx, deal, self.clock()):
            raise Refused("txn_reused", f"transaction {deal.txn} is already in use")

    def _moved(self, tx: sqlite3.Connection, deal: Deal) -> None:
        """After the compare-and-set: ownership for the buyer, and for a resale superseded for the seller."""
        self._own(tx, deal)
        if deal.kind == "resale":
            self._write(tx, deal.seller, deal, "superseded", generation=deal.generation + 1)

    def _own(self, tx: sqlite3.Connection, deal: Deal) -> None:
        """Sign the ticket for the new holder and write the ownership block (after the compare-and-set)."""
        held = Inventory.listing(tx, deal.event, deal.ticket_id)
        assert held is not None and held.holder == deal.buyer
        item = held.listing
        ticket = Ticket(event=item.event, ticket_id=item.ticket_id, seat=item.seat, valid_from=item.valid_from,
                        valid_until=item.valid_until, generation=held.generation)
        text = self.sign(with_terms(ticket, item.terms(deal.code)))
        Inventory.set_state(tx, deal.txn, "done", self.clock())
        if held.generation > 1:
            Inventory.supersede(tx, item.event, item.ticket_id, held.generation, self.clock())
        self._write(tx, deal.buyer, deal, "ownership", seat=item.seat, generation=held.generation,
                    holder=deal.buyer, ticket=text)

    def _write(self, tx: sqlite3.Connection, to: str, deal: Deal, kind: str, *, app: str = APP_TICKET,
               **fields: object) -> Block:
        """Append a block for `to` and put it in `to`'s mailbox, in the caller's transaction."""
        payload = {"event": deal.event, "ticket_id": deal.ticket_id, **fields}
        block = self.party.append(tx, to=to, txn=deal.txn, app=app, kind=kind, payload=payload)
        self._deposit(tx, to, Message((self.party.identity_block, block)))
        return block

    def _deposit(self, tx: sqlite3.Connection, recipient: str, message: Message) -> int:
        text = json.dumps(message.to_json(), sort_keys=True)
        return Mailbox.put(tx, recipient, text, hashlib.sha256(text.encode()).hexdigest(), self.clock())
