"""Ownership flows end to end on real files: purchase, resale, gift, timeout, double sale, forgeries."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_fixtures import SECRET_PRICE, SECRET_PRICE_TEXTS, World, listing, race, standard_world, traces

from gate.holder import code_for, present, terms_of
from gate.outcomes import Outcome, Reason
from gate.ownership.block import Block, Message
from gate.ownership.exc import BadBackStep, BadSeal, ChainError, ForgedIdentity, Refused, Replayed, WrongChain
from gate.ownership.party import Party
from gate.ownership.payment import FakePaymentAgent
from gate.ownership.protocol import APP_PAYMENT, APP_TICKET
from gate.ownership.store import Holdings
from gate.ownership.wallet import Wallet
from gate.ticket import parse


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from standard_world(tmp_path)


def holder(world: World, ticket_id: str = "9f2") -> tuple[str, int]:
    row = next(r for r in world.office.holders() if r["ticket_id"] == ticket_id)
    return str(row["holder"]), int(row["generation"])  # type: ignore[call-overload]


def test_purchase_makes_the_buyer_the_holder_at_generation_1(world: World) -> None:
    alice = world.wallet("alice")
    request = alice.buy("show7", "9f2")
    reply = world.office.handle(request)
    assert [b.kind for b in reply.blocks] == ["identity", "reservation", "payment_request", "intent"]
    assert holder(world) == ("", 0)  # reserved, not sold
    paid = alice.pay(reply, world.agent)
    owned = world.office.confirm(paid)
    assert "ownership" in [b.kind for b in owned.blocks]
    alice.accept(owned)
    assert holder(world) == (alice.chain, 1)
    assert [(t["ticket_id"], t["generation"], t["state"]) for t in alice.tickets()] == [("9f2", 1, "held")]
    assert world.scan(alice).outcome is Outcome.ADMIT
    # every step is a block in the right chains, and each owner's chain links and steps back
    assert alice.party.check_own_chain() == 3  # identity, purchase_request, payment
    assert world.office.party.check_own_chain() == 5  # identity, reservation, payment_request, intent, ownership
    assert world.agent.party.check_own_chain() == 3  # identity, confirmation, receipt


def test_resale_alice_to_bob_raises_the_generation_and_hides_the_price(world: World) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    world.resale(alice, bob, price=SECRET_PRICE)
    assert holder(world) == (bob.chain, 2)
    assert [t["state"] for t in alice.tickets()] == ["gone"]
    assert [(t["generation"], t["state"]) for t in bob.tickets()] == [(2, "held")]
    assert world.office.supersessions()[0]["generation"] == 2
    # the box office never saw the price: not in any payload it opened, nor anywhere in its files (its WAL too)
    assert traces(SECRET_PRICE_TEXTS, world.root / "boxoffice.db") == []
    assert traces(SECRET_PRICE_TEXTS, world.root / "alice.db") and traces(SECRET_PRICE_TEXTS, world.root / "bob.db")
    assert str(SECRET_PRICE) in str(alice.deals()) and str(SECRET_PRICE) in str(bob.deals())
    invoice = next(b for b in _all_blocks(bob) if b.kind == "invoice")
    with pytest.raises(ChainError) as refused:  # addressed to Bob, sealed with the Alice-Bob key
        _open_as(world.office.party, invoice)
    assert refused.value.code == "not_for_me"


def test_the_whole_alice_to_bob_story_through_the_gate(world: World) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    alice_code = alice.code("show7", "9f2")[0]  # Alice keeps a copy of her code
    world.resale(alice, bob, price=4000)
    world.publish_generations()  # the arbiter's stream brings generation 2 to the gate
    bob_code = bob.code("show7", "9f2")[0]
    gate = world.gate()
    old = gate.decide(alice_code)
    assert (old.outcome, old.reason, old.generation) == (Outcome.REVOKED, Reason.SUPERSEDED, 1)
    assert gate.decide(bob_code).outcome is Outcome.ADMIT
    assert gate.decide(bob_code).outcome is Outcome.ALREADY_USED
    world.clock.advance(30)
    assert gate.decide(alice_code).reason is Reason.STALE_CODE  # her copy is a screenshot by now
    with pytest.raises(Refused) as gone:  # her wallet shows no code for a ticket it gave up
        alice.code("show7", "9f2")
    assert gone.value.code == "not_holder"
    # a doctored wallet that kept the seed makes a fresh generation-1 code: still superseded
    with alice.db.transaction() as tx:
        kept = Holdings.ticket(tx, "show7", "9f2")
    assert kept is not None
    ticket = parse(kept.text).ticket
    terms = terms_of(ticket)
    assert terms is not None
    fresh = present(kept.text, code_for(kept.seed, ticket, terms, world.clock()))
    assert (gate.decide(fresh).outcome, gate.decide(fresh).reason) == (Outcome.REVOKED, Reason.SUPERSEDED)


def test_gift_hands_over_without_any_payment(world: World) -> None:
    alice, carol = world.wallet("alice"), world.wallet("carol")
    world.purchase(alice)
    world.gift(alice, carol)
    assert holder(world) == (carol.chain, 2)
    assert not [d for d in carol.deals() if d["amount"]]
    world.publish_generations()
    assert world.scan(carol).outcome is Outcome.ADMIT


def test_a_second_resale_raises_the_generation_again(world: World) -> None:
    alice, bob, carol = world.wallet("alice"), world.wallet("bob"), world.wallet("carol")
    world.purchase(alice)
    world.resale(alice, bob, 4000)
    world.resale(bob, carol, 5000)
    assert holder(world) == (carol.chain, 3)


def test_an_unpaid_reservation_times_out_and_a_late_payment_is_refused(world: World) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    reply = world.office.handle(alice.buy("show7", "9f2"))
    alice.accept(reply)
    world.clock.advance(601)
    timeouts = world.office.expire()
    assert [(b.kind, b.to) for b in timeouts.blocks if not b.is_identity] == [("timeout", alice.chain)]
    assert holder(world) == ("", 0)
    paid = alice.pay(reply, world.agent)  # she has not read the timeout: she pays, too late
    with pytest.raises(Refused) as late:
        world.office.confirm(paid)
    assert late.value.code == "reservation_expired"
    assert isinstance(late.value.reply, Message)
    assert "refund due" in str([world.office.db.rows("SELECT payload FROM blocks WHERE kind = 'timeout'")])
    alice.accept(timeouts)
    assert [d["state"] for d in alice.deals()] == ["timeout"]
    world.purchase(bob)  # the seat was free again
    assert holder(world) == (bob.chain, 1)


def _charge_and_settle(world: World, buyer: Wallet, bill: Message) -> Message:
    """Pay through the agent that holds the money, and let the box office settle it (as the agent's webhook does)."""
    receipt = world.agent.charge(buyer.charge(bill))
    buyer.accept(receipt)
    txn = next(b.txn for b in receipt.blocks if not b.is_identity)
    outcome = world.agent.settle(world.office.paid(world.agent.notice(txn)))
    for wallet in world.wallets.values():
        wallet.accept(outcome)
    return outcome


def test_a_resale_paid_after_its_hold_expired_is_refunded_and_the_seller_gets_nothing(world: World) -> None:
    # This replaces test_a_resale_hold_times_out_and_the_seller_keeps_the_ticket, which asserted that Bob
    # could pay Alice after the hold had expired, Alice keep the ticket, and the money stay with her.  Now the
    # agent holds Bob's money until the box office settles: a hold that expired means a refund, so the
    # seller keeps the ticket but not the money.
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    request = bob.buy("show7", "9f2", seller=alice.chain)
    bob.accept(world.office.handle(request))
    world.clock.advance(601)
    sent = world.office.expire()
    assert sorted(b.to for b in sent.blocks if b.kind == "timeout") == sorted([alice.chain, bob.chain])
    invoice = alice.sell(request, 4000, "EUR")
    outcome = _charge_and_settle(world, bob, invoice)  # Bob has not read the timeout yet: he pays
    assert [b.kind for b in outcome.blocks if not b.is_identity] == ["refund"]
    assert holder(world) == (alice.chain, 1)
    assert [(d["role"], d["state"]) for d in bob.deals()] == [("buyer", "refunded")]
    assert [d["state"] for d in alice.deals() if d["role"] == "seller"] == ["invoiced"]  # no money for her
    assert [c["state"] for c in world.agent.charges()] == ["refunded"]
    carol = world.wallet("carol")  # a buyer who has read the timeout does not pay at all
    late = carol.buy("show7", "9f2", seller=alice.chain)
    carol.accept(world.office.handle(late))
    world.clock.advance(601)
    carol.accept(world.office.expire())
    with pytest.raises(Refused) as timed_out:
        carol.charge(alice.sell(late, 4000, "EUR"))
    assert timed_out.value.code == "timed_out"


def test_a_buyer_who_paid_gets_the_ticket_though_the_seller_never_releases(world: World) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    request = world.hold(alice, bob)
    outcome = _charge_and_settle(world, bob, alice.sell(request, 4000, "EUR"))  # and Alice does nothing more
    assert [b.kind for b in outcome.blocks if not b.is_identity] == ["payment_confirmation"]
    assert holder(world) == (bob.chain, 2)
    owned = world.office.mailbox(bob.chain)[-1][1]  # the ownership block waits in Bob's mailbox
    bob.accept(owned)
    alice.accept(world.office.mailbox(alice.chain)[-1][1])
    assert [(t["generation"], t["state"]) for t in bob.tickets()] == [(2, "held")]
    assert [t["state"] for t in alice.tickets()] == ["gone"]
    assert [d["state"] for d in alice.deals() if d["role"] == "seller"] == ["paid"]
    with pytest.raises(Refused) as twice:  # the same transaction cannot be charged twice
        world.agent.charge(bob.charge(alice.sell(request, 4000, "EUR")))
    assert twice.value.code == "already_paid"


def test_an_answer_or_payment_under_way_is_sent_again_the_same_and_counts_once(world: World) -> None:
    """A wallet killed before its invoice, release or payment left (tests/test_boxoffice_wallet_crash.py) may
    send it again: the very same blocks, so the buyer is invoiced once and charged once."""
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    request = world.hold(alice, bob)
    invoice = alice.sell(request, 4000, "EUR")
    assert alice.answered() == set()  # invoiced, not over: the request may be answered again
    assert alice.sell(request, 4000, "EUR").dumps() == invoice.dumps()
    with pytest.raises(Refused) as other_price:
        alice.sell(request, 3000, "EUR")
    assert other_price.value.code == "answered"
    payment = bob.charge(invoice)
    assert bob.charge(invoice).dumps() == payment.dumps()  # no receipt yet: the same payment block again
    bob.accept(world.agent.charge(payment))
    with pytest.raises(Refused) as paid:
        bob.charge(invoice)
    assert paid.value.code == "already_paid"
    world.agent.settle(world.office.paid(world.agent.notice(request.blocks[-1].txn)))
    alice.accept(world.office.mailbox(alice.chain)[-1][1])  # superseded: the answer is over
    assert alice.answered() == {request.blocks[-1].txn}
    assert [c["state"] for c in world.agent.charges()] == ["settled"]


def test_a_late_purchase_payment_is_refunded(world: World) -> None:
    alice = world.wallet("alice")
    reply = world.office.handle(alice.buy("show7", "9f2"))
    alice.accept(reply)
    world.clock.advance(601)
    world.office.expire()
    outcome = _charge_and_settle(world, alice, reply)
    assert [b.kind for b in outcome.blocks if not b.is_identity] == ["refund"]
    assert [d["state"] for d in alice.deals()] == ["refunded"]
    assert holder(world) == ("", 0)


def test_double_sale_two_buyers_at_once_exactly_one_succeeds(world: World) -> None:
    alice = world.wallet("alice")
    world.purchase(alice)
    buyers = [world.wallet(f"buyer{i}") for i in range(6)]
    requests = [b.buy("show7", "9f2", seller=alice.chain) for b in buyers]
    offices = [world.office_again() for _ in buyers]  # one connection each, as separate processes
    results = race(len(buyers), lambda i: offices[i].handle(requests[i]))
    winners = [i for i, r in enumerate(results) if isinstance(r, Message)]
    assert len(winners) == 1 and sorted(r for r in results if isinstance(r, str)) == ["on_hold"] * 5
    loser = next(i for i in range(len(buyers)) if i not in winners)
    with pytest.raises(Refused) as unpaid:  # Alice invoices a loser too: the loser's wallet will not pay
        buyers[loser].pay(alice.sell(requests[loser], 100, "EUR"), world.agent)
    assert unpaid.value.code == "no_hold"
    other = next(i for i in range(len(buyers)) if i not in winners and i != loser)
    loser_gift = alice.gift(requests[other])  # she gives it to another loser instead
    with pytest.raises(Refused) as refused:
        world.office.transfer(loser_gift)
    assert refused.value.code == "unknown_deal"
    win = winners[0]
    buyers[win].accept(results[win])  # type: ignore[arg-type]
    world.office.transfer(alice.release(buyers[win].pay(alice.sell(requests[win], 100, "EUR"), world.agent)))
    assert holder(world) == (buyers[win].chain, 2)


def test_concurrent_transfers_of_one_release_bump_the_generation_once(world: World) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    request = bob.buy("show7", "9f2", seller=alice.chain)
    bob.accept(world.office.handle(request))
    release = alice.release(bob.pay(alice.sell(request, 4000, "EUR"), world.agent))
    offices = [world.office_again() for _ in range(4)]
    answers: list[Message] = []
    barrier = threading.Barrier(len(offices))

    def attempt(office: object) -> None:
        barrier.wait()
        answers.append(office.transfer(release))  # type: ignore[attr-defined]
    threads = [threading.Thread(target=attempt, args=(o,)) for o in offices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({m.dumps() for m in answers}) == 1  # the same answer to each: idempotent by block hash
    assert holder(world) == (bob.chain, 2)


def test_concurrent_purchases_of_one_seat_exactly_one_reservation(world: World) -> None:
    wallets = [world.wallet(f"w{i}") for i in range(5)]
    requests = [w.buy("show7", "a11") for w in wallets]
    offices = [world.office_again() for _ in wallets]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(wallets))

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            offices[i].handle(requests[i])
            outcomes.append("reserved")
        except Refused as exc:
            outcomes.append(exc.code)
    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(wallets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["not_available"] * 4 + ["reserved"]


def test_a_forged_identity_is_refused(world: World) -> None:
    alice, mallory = world.wallet("alice"), world.wallet("mallory")
    world.purchase(alice)
    # Mallory writes a request "from Alice's chain" with a value she had to guess
    real = alice.buy("show7", "a11")
    block = next(b for b in real.blocks if b.kind == "purchase_request")
    forged = dataclasses.replace(block, value=bytes(16).hex())
    with pytest.raises(BadBackStep):  # Alice has blocks verified there: not the anchor any more
        world.office.handle(Message((alice.party.identity_block, forged)))
    # a first contact that cannot step back to its anchor is a forged identity
    stranger = world.wallet("stranger")
    first = next(b for b in stranger.buy("show7", "a11").blocks if not b.is_identity)
    with pytest.raises(ForgedIdentity) as forged_id:
        world.office.handle(Message((stranger.party.identity_block, dataclasses.replace(first, value="00" * 16))))
    assert forged_id.value.code == "forged_identity"
    # an identity block whose content is not its chain id (Mallory's anchor under Alice's id)
    mine = mallory.party.identity_block
    doctored = dataclasses.replace(mine, chain=alice.chain)
    with pytest.raises(ForgedIdentity):
        world.office.handle(Message((doctored,)))


def test_a_block_from_the_wrong_chain_is_refused(world: World) -> None:
    alice, bob, mallory = world.wallet("alice"), world.wallet("bob"), world.wallet("mallory")
    world.purchase(alice)
    request = bob.buy("show7", "9f2", seller=alice.chain)
    world.office.handle(request)
    # a genuine release, but from Mallory's chain, not the holder's
    with mallory.db.transaction() as tx:
        fake = mallory.party.append(tx, to=world.office.chain, txn=request.blocks[1].txn, app=APP_TICKET,
                                    kind="release", payload={"event": "show7", "ticket_id": "9f2",
                                                             "buyer": bob.chain, "generation": 1, "how": "gift"})
    with pytest.raises(WrongChain) as wrong:
        world.office.transfer(Message((mallory.party.identity_block, fake)))
    assert wrong.value.code == "wrong_chain"
    # a genuine block of Bob's chain relabelled as Alice's: its value is not in Alice's chain
    moved = dataclasses.replace(bob.buy("show7", "a11").blocks[1], chain=alice.chain)  # Bob's block 3
    with pytest.raises(BadBackStep):
        world.office.handle(Message((moved,)))
    # an "ownership" block from a wallet, not the trusted box office: the wallet refuses it
    with mallory.db.transaction() as tx:
        own = mallory.party.append(tx, to=bob.chain, txn=request.blocks[1].txn, app=APP_TICKET, kind="ownership",
                                   payload={"event": "show7", "ticket_id": "9f2"})
    with pytest.raises(WrongChain):
        bob.accept(Message((mallory.party.identity_block, own)))
    # a payment confirmation from a chain the box office does not trust as an agent
    reply = world.office.handle(bob.buy("show7", "a11"))
    with mallory.db.transaction() as tx:
        conf = mallory.party.append(tx, to=world.office.chain, txn=reply.blocks[1].txn, app="qrgate.payment",
                                    kind="payment_confirmation", payload={"amount": 2500, "currency": "EUR"})
    with pytest.raises(WrongChain):
        world.office.confirm(Message((mallory.party.identity_block, conf)))


def test_a_replayed_old_back_step_value_is_refused_and_a_redelivery_is_harmless(world: World) -> None:
    alice = world.wallet("alice")
    request = alice.buy("show7", "9f2")
    reply = world.office.handle(request)
    assert world.office.handle(request).dumps() == reply.dumps()  # the same block again: the same answer
    block = next(b for b in request.blocks if not b.is_identity)
    replayed = dataclasses.replace(block, txn="11" * 16)  # old index and value, new content
    with pytest.raises(Replayed) as refused:
        world.office.handle(Message((alice.party.identity_block, replayed)))
    assert refused.value.code == "replayed"
    tampered = dataclasses.replace(alice.buy("show7", "a11").blocks[1], kind="resale_request")
    with pytest.raises(BadSeal):  # the header is authenticated by the seal
        world.office.handle(Message((tampered,)))


def test_a_step_that_is_refused_changes_nothing(world: World) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    with pytest.raises(Refused) as taken:
        world.office.handle(bob.buy("show7", "9f2"))
    assert taken.value.code == "not_available"
    with pytest.raises(Refused) as not_held:
        world.office.handle(alice.buy("show7", "a11", seller=bob.chain))
    assert not_held.value.code == "not_holder"
    assert holder(world) == (alice.chain, 1)


def _all_blocks(wallet: Wallet) -> list[Block]:
    import json
    return [Block.from_json(json.loads(str(r["block"]))) for r in wallet.db.rows("SELECT block FROM blocks")]


def _open_as(party: Party, block: Block) -> object:
    with party.db.transaction() as tx:
        return party.receive(tx, block)


# -- a ticket whose validity window has ended (a gate would refuse it as expired) ------------------------------
END = 1_800_000_000 + 86_400  # the end of the standard listings' window


def test_a_ticket_whose_window_has_ended_is_neither_listed_nor_reserved_nor_held(world: World) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    world.clock.advance(END - world.clock())
    with pytest.raises(ValueError, match="validity window has ended"):
        world.office.add(dataclasses.replace(listing("old", "1A"), valid_until=END))
    for request in (bob.buy("show7", "a11"), bob.buy("show7", "9f2", seller=alice.chain)):
        with pytest.raises(Refused) as refused:
            world.office.handle(request)
        assert refused.value.code == "ended"
    assert [x.state for x in world.office.catalog().listings] == ["ended", "ended"]


def test_a_purchase_paid_after_the_window_ended_is_refunded(world: World) -> None:
    alice = world.wallet("alice")
    world.clock.advance(END - 30 - world.clock())
    reply = world.office.handle(alice.buy("show7", "9f2"))  # reserved 30 s before the end, for 600 s
    alice.accept(reply)
    world.clock.advance(60)
    outcome = _charge_and_settle(world, alice, reply)
    assert [b.kind for b in outcome.blocks if not b.is_identity] == ["refund"]
    assert [d["state"] for d in alice.deals()] == ["refunded"]
    assert holder(world) == ("", 0) and [c["state"] for c in world.agent.charges()] == ["refunded"]


def test_a_resale_paid_or_released_after_the_window_ended_does_not_move_the_ticket(world: World) -> None:
    alice, bob, carol = world.wallet("alice"), world.wallet("bob"), world.wallet("carol")
    world.purchase(alice)
    world.clock.advance(END - 30 - world.clock())
    request = world.hold(alice, bob)
    invoice = alice.sell(request, 4000, "EUR")
    world.clock.advance(60)
    outcome = _charge_and_settle(world, bob, invoice)  # paid after the end: refunded, Alice keeps nothing
    assert [b.kind for b in outcome.blocks if not b.is_identity] == ["refund"]
    assert holder(world) == (alice.chain, 1)
    assert [c["state"] for c in world.agent.charges()] == ["refunded"]
    world.clock.advance(-60)  # a gift asked for before the end, released after it
    gift = carol.buy("show7", "9f2", seller=alice.chain)
    carol.accept(world.office.handle(gift))
    world.clock.advance(60)
    with pytest.raises(Refused) as refused:
        world.office.transfer(alice.gift(gift))
    assert refused.value.code == "ended"
    assert holder(world) == (alice.chain, 1)


def test_only_the_trusted_agent_can_say_paid_a_buyer_or_another_agent_cannot(world: World, tmp_path: Path) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    request = bob.buy("show7", "9f2", seller=alice.chain)
    bob.accept(world.office.handle(request))
    txn = request.blocks[-1].txn
    with bob.db.transaction() as tx:  # Bob writes the webhook's block himself, sealed for the box office
        forged = bob.party.append(tx, to=world.office.chain, txn=txn, app=APP_PAYMENT, kind="paid_as_invoiced",
                                  payload={"payee": alice.chain, "payer": bob.chain})
    with pytest.raises(WrongChain):
        world.office.paid(Message((bob.party.identity_block, forged)))
    rogue = FakePaymentAgent.open(str(tmp_path / "rogue.db"), create=True, clock=world.clock)  # not trusted
    rogue.trust_boxoffice(world.office.party.identity_block)
    with rogue.db.transaction() as tx:
        fake = rogue.party.append(tx, to=world.office.chain, txn=txn, app=APP_PAYMENT, kind="paid_as_invoiced",
                                  payload={"payee": alice.chain, "payer": bob.chain})
    with pytest.raises(WrongChain):
        world.office.paid(Message((rogue.party.identity_block, fake)))
    assert holder(world) == (alice.chain, 1)  # nothing moved
