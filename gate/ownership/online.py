"""A wallet that talks to a box office and a payment agent over HTTP (the holder's app; its page: webpage.py).

Each method is one step of docs/ownership.md with the message carried by HTTP instead of a file:
the wallet (gate.ownership.wallet) writes and verifies every block, the box office's mailbox brings
what arrives while the wallet is away (`sync`), and the wallet's file keeps every mailbox message it
applied (`Service.keep`), so a later process (the CLI, the page) finds the requests and bills there.
Every step may be repeated after an `Unreachable`: the services answer a request sent again with the
same answer (and a client with ``patience`` sends it again itself).
"""

from __future__ import annotations

from gate.ownership.block import Message
from gate.ownership.client import AgentClient, BoxOfficeClient
from gate.ownership.exc import ChainError, ChainStoreError, Refused
from gate.ownership.party import Received
from gate.ownership.payment import Checkout
from gate.ownership.store import Service
from gate.ownership.wallet import Wallet


class OnlineWallet:
    """`wallet` with its box office and payment agent."""

    def __init__(self, wallet: Wallet, office: BoxOfficeClient, agent: Checkout, boxoffice: str = "") -> None:
        self.wallet = wallet
        self.office = office
        self.agent = agent
        self.boxoffice = boxoffice  # the pinned chain id ('' : whichever box office answers at the URL)
        self.skipped = 0  # mailbox messages that did not verify here (counted, never applied)

    @classmethod
    def connect(cls, wallet: Wallet, boxoffice_url: str, boxoffice: str, agent_url: str) -> OnlineWallet:
        """Trust the box office at the URL (only if its signed catalog is chain `boxoffice`) and the agent,
        and remember both in the wallet's file."""
        online = cls(wallet, BoxOfficeClient(boxoffice_url), AgentClient(agent_url))
        online.trust(boxoffice)
        with wallet.db.transaction() as tx:
            Service.connect(tx, boxoffice_url, boxoffice, agent_url)
        return online

    @classmethod
    def of(cls, wallet: Wallet, *, patience: float = 0.0) -> OnlineWallet:
        """The wallet's remembered box office and agent; Refused `not_connected` if it works with files only."""
        with wallet.db.transaction() as tx:
            service = Service.get(tx)
        if service is None:
            raise Refused("not_connected", "this wallet has no box office yet: gate wallet connect URL ...")
        return cls(wallet, BoxOfficeClient(service[0], patience=patience), AgentClient(service[2], patience=patience),
                   service[1])

    @property
    def chain(self) -> str:
        return self.wallet.chain

    def trust(self, boxoffice: str = "") -> str:
        """Trust the box office's signed catalog (with `boxoffice`: only if it is that chain) and the agent."""
        self.boxoffice = boxoffice or self.boxoffice
        chain = self.refresh()
        self.wallet.trust(self.agent.identity_block)
        return chain

    def refresh(self) -> str:
        """Read the box office's signed catalog again (what is on sale now); its chain id."""
        return self.wallet.trust(self.office.catalog(self.boxoffice))

    # the steps -------------------------------------------------------------------------------------------
    def buy(self, event: str, ticket_id: str, *, mode: str = "rotating") -> Message:
        """Ask for a listed ticket: the reservation, payment request and intent (accepted here)."""
        reply = self.office.purchase(self.wallet.buy(event, ticket_id, mode=mode))
        self.wallet.accept(reply)
        return reply

    def pay(self, bill: Message) -> Message:
        """Pay a payment request or invoice through the agent (it holds the money until the box office settles)."""
        receipt = self.agent.charge(self.wallet.charge(bill))
        self.wallet.accept(receipt)
        return receipt

    def ask(self, event: str, ticket_id: str, seller: str) -> tuple[Message, Message]:
        """Ask to buy (or be given) a ticket from its holder: (the request sent, the box office's hold)."""
        request = self.wallet.buy(event, ticket_id, seller=seller)
        hold = self.office.resale(request)
        self.wallet.accept(hold)
        return request, hold

    def sell(self, request: Message, amount: int, currency: str) -> Message:
        """Invoice the buyer of `request` through its mailbox (sealed: the box office cannot read the price)."""
        invoice = self.wallet.sell(request, amount, currency)
        self.office.deposit(_asker(request, self.chain), invoice)
        return invoice

    def gift(self, request: Message) -> Message:
        """Give the ticket of `request` away: the release goes to the box office, which hands it over."""
        answer = self.office.release(self.wallet.gift(request))
        self.wallet.accept(answer)
        return answer

    def sync(self) -> list[Received]:
        """Fetch and apply every message waiting in this wallet's mailbox; the blocks applied."""
        done: list[Received] = []
        while found := self.office.mailbox(self.chain, self._after()):
            for seq, message in found:
                try:
                    done += self.wallet.accept(message)
                except ChainStoreError:
                    raise
                except ChainError:  # not for this wallet, or forged: it changes nothing here
                    self.skipped += 1
                with self.wallet.db.transaction() as tx:
                    Service.keep(tx, seq, message.dumps(), self.wallet.clock())
        return done

    # what the mailbox brought ----------------------------------------------------------------------------
    @property
    def inbox(self) -> list[Message]:
        """Every message the mailbox brought, oldest first."""
        with self.wallet.db.transaction() as tx:
            return [Message.loads(text) for text in Service.inbox(tx)]

    def requests(self) -> list[Message]:
        """The resale requests other wallets sent this one, oldest first."""
        return [m for m in self.inbox if any(b.to == self.chain and b.kind == "resale_request" for b in m.blocks)]

    def request_for(self, event: str, ticket_id: str) -> Message:
        """The newest request for a ticket this wallet has not answered for good (Wallet.answered: one whose
        answer is under way comes again, and gets the same answer); Refused `no_request` if none waits."""
        answered = self.wallet.answered()
        for message in reversed(self.requests()):
            ask = next(b for b in message.blocks if b.to == self.chain and b.kind == "resale_request")
            if ask.txn not in answered and self.wallet.about(ask) == (event, ticket_id):
                return message
        raise Refused("no_request", f"nobody has asked for {event}/{ticket_id}: nothing to sell or give")

    def open_requests(self) -> list[tuple[str, str]]:
        """(event, ticket id) of every request waiting for an answer from this wallet."""
        return sorted({(event, ticket_id) for event, ticket_id, _asker in self.open_asks()})

    def open_asks(self) -> list[tuple[str, str, str]]:
        """(event, ticket id, the asking wallet's chain) of every request waiting for an answer, oldest first."""
        answered = self.wallet.answered()
        asks = [b for m in self.requests() for b in m.blocks if b.to == self.chain and b.kind == "resale_request"]
        return [(*self.wallet.about(b), b.chain) for b in asks if b.txn not in answered]

    def open_bills(self) -> list[tuple[str, str]]:
        """(event, ticket id) of every invoice waiting to be paid (or paid, its receipt not here: Wallet.charge)."""
        billed = self._payable()
        bills = [b for m in self.bills() for b in m.blocks if b.to == self.chain and b.kind == "invoice"]
        return sorted({self.wallet.about(b) for b in bills if b.txn in billed})

    def bills(self) -> list[Message]:
        """The invoices that reached this wallet through the mailbox, oldest first."""
        return [m for m in self.inbox if any(b.to == self.chain and b.kind == "invoice" for b in m.blocks)]

    def bill_for(self, event: str, ticket_id: str) -> Message:
        """The newest unpaid invoice for a ticket (or one paid whose receipt never came: paying it again sends
        the same payment); Refused `no_bill` if none waits."""
        open_deals = self._payable()
        for message in reversed(self.bills()):
            bill = next(b for b in message.blocks if b.to == self.chain and b.kind == "invoice")
            if bill.txn in open_deals and self.wallet.about(bill) == (event, ticket_id):
                return message
        raise Refused("no_bill", f"no unpaid invoice for {event}/{ticket_id} has arrived")

    def state(self, txn: str) -> str:
        """The state of one of this wallet's deals as buyer (``owned``, ``refunded``, ``timeout``, ...)."""
        for deal in self.wallet.deals():
            if deal["txn"] == txn and deal["role"] == "buyer":
                return str(deal["state"])
        raise Refused("unknown_deal", f"no deal {txn} as buyer in this wallet")

    def _payable(self) -> set[str]:
        return {str(d["txn"]) for d in self.wallet.deals() if d["role"] == "buyer" and d["state"] in ("billed", "paying")}

    def _after(self) -> int:
        with self.wallet.db.transaction() as tx:
            return Service.after(tx)


def _asker(request: Message, me: str) -> str:
    asks = [b for b in request.blocks if b.to == me and b.kind == "resale_request"]
    if len(asks) != 1:
        raise Refused("malformed", f"expected one resale request for this wallet, found {len(asks)}")
    return asks[0].chain
