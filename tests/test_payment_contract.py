"""The contract a payment provider keeps (gate.ownership.payment.PaymentProvider), checked against every provider.

Each test runs against the FAKE agent in this process and against the same agent behind its HTTP service
(gate.wiring.agent_server on a loopback port, with the box office's own HTTP server for its webhook),
reached with the client a payer's wallet uses (gate.ownership.client.AgentClient).  A real provider's
adapter gets a `Provider` here (how to charge, how its settlement is driven, where its outcome arrives)
and must pass the same tests.

The deal is a resale, Alice to Bob, so the payee is a wallet: its confirmation and the payer's refund
travel to them (through the box office's mailboxes over HTTP).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_fixtures import World, standard_world
from office_fixtures import wait_for

from gate.ownership.block import Block, Message
from gate.ownership.client import AgentClient, BoxOfficeClient, HttpClient
from gate.ownership.exc import ChainError, MalformedBlock, Refused
from gate.ownership.officeserver import BoxOfficeServer
from gate.ownership.payment import Checkout
from gate.ownership.protocol import APP_PAYMENT
from gate.ownership.wallet import Wallet
from gate.wiring import agent_server

PRICE = 4000


class Provider:
    """The FAKE agent in this process: the payer calls `charge` on it, the test plays its delivery loop."""

    name = "in-process"

    def __init__(self, world: World) -> None:
        self.world = world

    @property
    def checkout(self) -> Checkout:
        return self.world.agent

    def state(self, txn: str) -> str:
        return self.world.agent.payment(txn).state

    def deliver(self, txn: str) -> None:
        """Notice to the box office, its settlement back, the outcome ready (what the delivery loop does)."""
        agent = self.world.agent
        agent.settle(self.world.office.paid(agent.notice(txn)))
        agent.delivered(txn)

    def outcome(self, txn: str) -> list[Block]:
        return [b for b in self.world.agent.outcome(txn).blocks if not b.is_identity]

    def notice(self, txn: str) -> Message:
        return self.world.agent.notice(txn)

    def settle_again(self, settlement: Message) -> Message:
        """A settlement delivered (again); the provider's answer (the outcome)."""
        return self.world.agent.settle(settlement)

    def close(self) -> None:
        pass


class HttpProvider(Provider):
    """The same agent behind its HTTP service, the box office behind its own; the payer uses AgentClient."""

    name = "http"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.office = BoxOfficeServer(world.office, tick=0.05).start()
        self.server = agent_server(world.agent, self.office.url, host="127.0.0.1", port=0).start()
        self.client = AgentClient(self.server.url)

    @property
    def checkout(self) -> Checkout:
        return self.client

    def state(self, txn: str) -> str:
        return str(self.client.payment(txn)["state"])

    def deliver(self, txn: str) -> None:
        wait_for(lambda: self.client.payment(txn)["delivered"])  # the service's own loop did it

    def outcome(self, txn: str) -> list[Block]:
        """What reached the payer's and payee's mailboxes at the box office from the provider."""
        office, agent = BoxOfficeClient(self.office.url), self.client.identity_block.chain
        return [b for w in self.world.wallets.values() for _seq, m in office.mailbox(w.chain) for b in m.blocks
                if b.chain == agent and b.txn == txn and b.kind in ("payment_confirmation", "refund")]

    def notice(self, txn: str) -> Message:
        """The notice as the box office received it over the webhook."""
        rows = self.world.office.db.rows("SELECT block FROM blocks WHERE kind = 'paid_as_invoiced' AND txn = ?", (txn,))
        assert len(rows) == 1, rows
        return Message((self.client.identity_block, Block.from_json(json.loads(str(rows[0]["block"])))))

    def settle_again(self, settlement: Message) -> Message:
        return Message.loads(json.dumps(HttpClient(self.server.url).post("/settlements", settlement.to_json())))

    def close(self) -> None:
        self.server.stop()
        self.office.stop()


@pytest.fixture(params=[Provider, HttpProvider], ids=lambda p: p.name)
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provider]:
    for world in standard_world(tmp_path):
        p = request.param(world)
        try:
            yield p
        finally:
            p.close()


def resale(p: Provider) -> tuple[Wallet, Wallet, Message, Message]:
    """Alice holds 9f2 and invoices Bob; (alice, bob, her invoice, Bob's message for the provider)."""
    world = p.world
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    request = world.hold(alice, bob)
    invoice = alice.sell(request, PRICE, "EUR")
    return alice, bob, invoice, bob.charge(invoice)


def by_hand(world: World, who: Wallet, to: str, txn: str, kind: str, **payload: object) -> Message:
    """A block `who` writes itself, outside the wallet's steps (what a payer or forger could send)."""
    with who.db.transaction() as tx:
        block = who.party.append(tx, to=to, txn=txn, app=APP_PAYMENT, kind=kind, payload=payload)
    return Message((who.party.identity_block, block))


def kinds(blocks: list[Block] | tuple[Block, ...]) -> list[str]:
    return [b.kind for b in blocks if not b.is_identity]


def test_a_charge_sent_twice_gets_the_same_answer_and_is_taken_once(provider: Provider) -> None:
    alice, bob, _invoice, payment = resale(provider)
    txn = payment.blocks[-1].txn
    agent = provider.checkout.identity_block.chain
    second = Message((*payment.identities(), *[b for b in payment.blocks if b.kind == "intent"],
                      *by_hand(provider.world, bob, agent, txn, "payment", amount=PRICE, currency="EUR",
                               payee=alice.chain).blocks[1:]))  # another payment block, the same transaction
    first = provider.checkout.charge(payment)
    again = provider.checkout.charge(payment)  # a lost answer: the very same request sent again
    assert first.dumps() == again.dumps() and kinds(first.blocks) == ["payment_receipt"]
    assert provider.state(txn) in ("held", "settled")  # (a service may have settled it already)
    with pytest.raises(Refused) as twice:
        provider.checkout.charge(second)
    assert twice.value.code == "already_paid"
    provider.deliver(txn)
    assert provider.state(txn) == "settled"
    assert kinds(provider.outcome(txn)) == ["payment_confirmation"]  # the payee is paid once
    assert provider.checkout.charge(payment).dumps() == first.dumps()  # still the same answer, still one charge


def test_a_charge_that_was_taken_can_be_refunded_once(provider: Provider) -> None:
    world = provider.world
    _alice, bob, _invoice, payment = resale(provider)
    txn = payment.blocks[-1].txn
    world.clock.advance(world.office.reservation + 1)  # the hold ran out before the money came: refund due
    bob.accept(provider.checkout.charge(payment))
    provider.deliver(txn)
    assert provider.state(txn) == "refunded"
    refunds = provider.outcome(txn)
    assert kinds(refunds) == ["refund"] and refunds[0].to == bob.chain
    bob.accept(Message((provider.checkout.identity_block, refunds[0])))
    assert [d["state"] for d in bob.deals() if d["txn"] == txn and d["role"] == "buyer"] == ["refunded"]
    # the box office's settlement delivered again, then a contrary one: neither refunds again nor pays
    assert kinds(provider.settle_again(world.office.paid(provider.notice(txn))).blocks) == ["refund"]
    agent = provider.checkout.identity_block.chain
    with world.office.db.transaction() as tx:
        contrary = world.office.party.append(tx, to=agent, txn=txn, app=APP_PAYMENT, kind="settlement",
                                             payload={"outcome": "transferred", "why": ""})
    assert kinds(provider.settle_again(Message((world.office.party.identity_block, contrary))).blocks) == ["refund"]
    assert provider.state(txn) == "refunded"
    assert kinds(provider.outcome(txn)) == ["refund"]


def test_the_notice_is_signed_amount_free_and_verifies_only_with_the_providers_identity(provider: Provider) -> None:
    world = provider.world
    alice, bob, _invoice, payment = resale(provider)
    txn = payment.blocks[-1].txn
    provider.checkout.charge(payment)
    provider.deliver(txn)
    notice = provider.notice(txn)
    identity = provider.checkout.identity_block
    (block,) = [b for b in notice.blocks if not b.is_identity]
    assert (block.kind, block.chain, block.to) == ("paid_as_invoiced", identity.chain, world.office.chain)
    assert [b.hash for b in notice.identities()] == [identity.hash]
    opened = world.office.db.rows("SELECT payload FROM blocks WHERE hash = ?", (block.hash,))
    assert json.loads(str(opened[0]["payload"])) == {"payee": alice.chain, "payer": bob.chain}  # no amount
    settled = world.office.paid(notice)  # it verifies against the identity the box office trusts (again: same)
    assert kinds(settled.blocks) == ["settlement"] and world.office.paid(notice).dumps() == settled.dumps()
    body = bytearray(block.body)
    body[-1] ^= 1  # the notice altered on the way
    altered = Block(block.chain, block.index, block.value, block.prev, block.txn, block.app, block.kind, block.to,
                    block.at, block.nonce, bytes(body))
    with pytest.raises(ChainError):
        world.office.paid(Message((identity, altered)))
    with pytest.raises(ChainError) as not_the_provider:  # the same notice from anyone but the provider
        world.office.paid(by_hand(world, bob, world.office.chain, txn, "paid_as_invoiced", payee=alice.chain,
                                  payer=bob.chain))
    assert not_the_provider.value.code == "wrong_chain"


@pytest.mark.parametrize("garbage", ["empty", "not_blocks", "no_intent", "another_deal", "wrong_amount",
                                     "unknown_boxoffice"])
def test_a_refused_request_holds_nothing_and_the_real_one_still_goes_through(provider: Provider,
                                                                            garbage: str) -> None:
    world = provider.world
    alice, bob, _invoice, payment = resale(provider)
    txn = payment.blocks[-1].txn
    agent = provider.checkout.identity_block.chain
    pays = [b for b in payment.blocks if b.kind == "payment"]
    intent = [b for b in payment.blocks if b.kind == "intent"]
    ids = tuple(payment.identities())
    terms = {"event": "show7", "ticket_id": "9f2", "currency": "EUR"}
    if garbage == "not_blocks":  # not even a message: over the wire, the body; in process, the text it is read from
        with pytest.raises(ChainError) as refused:
            if isinstance(provider, HttpProvider):
                HttpClient(provider.server.url).post("/payments", {"garbage": [1, 2, 3]})
            else:
                provider.checkout.charge(Message.loads(json.dumps({"garbage": [1, 2, 3]})))
        assert isinstance(refused.value, Refused) and refused.value.code == "malformed" \
            if isinstance(provider, HttpProvider) else isinstance(refused.value, MalformedBlock)
    else:
        bad = {
            "empty": Message(()),
            "no_intent": Message((*ids, *pays)),
            "another_deal": Message((*ids, *by_hand(world, alice, agent, "0" * 32, "intent", amount=PRICE,
                                                    boxoffice=world.office.chain, **terms).blocks[1:], *pays)),
            "wrong_amount": Message((*ids, *intent, *by_hand(world, bob, agent, txn, "payment", amount=PRICE - 1,
                                                             currency="EUR", payee=alice.chain).blocks[1:])),
            "unknown_boxoffice": Message((*ids, *by_hand(world, alice, agent, txn, "intent", amount=PRICE,
                                                         boxoffice="0" * 32, **terms).blocks[1:], *pays)),
        }[garbage]
        with pytest.raises(ChainError):
            provider.checkout.charge(bad)
    with pytest.raises(Refused) as nothing:
        provider.state(txn)
    assert nothing.value.code == "unknown_deal"  # nothing was held
    bob.accept(provider.checkout.charge(payment))  # the real request still goes through, once
    provider.deliver(txn)
    assert provider.state(txn) == "settled" and kinds(provider.outcome(txn)) == ["payment_confirmation"]
