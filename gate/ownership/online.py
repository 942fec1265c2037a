"""A wallet that talks to a box office and a payment agent over HTTP (the holder's app, without its page).

Each method is one step of docs/ownership.md with the message carried by HTTP instead of a file:
the wallet (gate.ownership.wallet) writes and verifies every block, the box office's mailbox brings
what arrives while the wallet is away (`sync`).  Every step may be repeated after an `Unreachable`:
the services answer a request sent again with the same answer.
"""

from __future__ import annotations

from gate.ownership.block import Message
from gate.ownership.client import BoxOfficeClient
from gate.ownership.exc import ChainError, ChainStoreError, Refused
from gate.ownership.party import Received
from gate.ownership.payment import PaymentProvider
from gate.ownership.wallet import Wallet


class OnlineWallet:
    """`wallet` with its box office and payment agent; `after` is the mailbox position read so far."""

    def __init__(self, wallet: Wallet, office: BoxOfficeClient, agent: PaymentProvider) -> None:
        self.wallet = wallet
        self.office = office
        self.agent = agent
        self.after = 0
        self.inbox: list[Message] = []  # every message the mailbox brought, in order
        self.skipped = 0  # mailbox messages that did not verify here (counted, never applied)

    @property
    def chain(self) -> str:
        return self.wallet.chain

    def trust(self, boxoffice: str = "") -> str:
        """Trust the box office's signed catalog (with `boxoffice`: only if it is that chain) and the agent."""
        chain = self.wallet.trust(self.office.catalog(boxoffice))
        self.wallet.trust(self.agent.identity_block)
        return chain

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
        asks = [b for b in request.blocks if b.to == self.chain and b.kind == "resale_request"]
        self.office.deposit(asks[0].chain, invoice)
        return invoice

    def gift(self, request: Message) -> Message:
        """Give the ticket of `request` away: the release goes to the box office, which hands it over."""
        answer = self.office.release(self.wallet.gift(request))
        self.wallet.accept(answer)
        return answer

    def sync(self) -> list[Received]:
        """Fetch and apply every message waiting in this wallet's mailbox; the blocks applied."""
        done: list[Received] = []
        while True:
            found, after = self.office.mailbox(self.chain, self.after)
            for message in found:
                self.inbox.append(message)
                try:
                    done += self.wallet.accept(message)
                except ChainStoreError:
                    raise
                except ChainError:  # not for this wallet, or forged: it changes nothing here
                    self.skipped += 1
            if after == self.after:
                return done
            self.after = after

    def requests(self) -> list[Message]:
        """The resale requests other wallets sent this one (through the mailbox), oldest first."""
        return [m for m in self.inbox if any(b.to == self.chain and b.kind == "resale_request" for b in m.blocks)]

    def bills(self) -> list[Message]:
        """The invoices that reached this wallet through the mailbox, oldest first."""
        return [m for m in self.inbox if any(b.to == self.chain and b.kind == "invoice" for b in m.blocks)]

    def state(self, txn: str) -> str:
        """The state of one of this wallet's deals as buyer (``owned``, ``refunded``, ``timeout``, ...)."""
        for deal in self.wallet.deals():
            if deal["txn"] == txn and deal["role"] == "buyer":
                return str(deal["state"])
        raise Refused("unknown_deal", f"no deal {txn} as buyer in this wallet")

