"""`gate boxoffice serve` and `gate fake-agent serve` as real processes on loopback ports: the API, the
timer, mailboxes, held payments, and the resale price that never reaches the box office."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chain_fixtures import race
from office_fixtures import EVENT, Theatre, run_gate, theatre, wait_for

from gate.ownership.block import Message
from gate.ownership.client import HttpClient
from gate.ownership.exc import BadSignature, Refused
from gate.ownership.online import OnlineWallet
from gate.ownership.protocol import Catalog


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Theatre]:
    yield from theatre(tmp_path, "9f2", "a11")


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[Theatre]:
    """Reservations and holds that last 1.5 s."""
    yield from theatre(tmp_path, "9f2", reservation=1.5)


def raw(url: str, *, method: str = "GET", body: bytes | None = None, host: str = "") -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def status(site: Theatre, ticket_id: str = "9f2") -> dict[str, object]:
    return site.bo.status(EVENT, ticket_id)


def buy_and_pay(site: Theatre, w: OnlineWallet, ticket_id: str = "9f2") -> str:
    reply = w.buy(EVENT, ticket_id)
    receipt = w.pay(reply)
    txn = next(b.txn for b in receipt.blocks if not b.is_identity)
    synced(w, txn, "owned")
    return txn


def synced(w: OnlineWallet, txn: str, state: str) -> None:
    """Wait until the wallet's mailbox has brought its deal `txn` to `state`."""
    wait_for(lambda: (w.sync(), w.state(txn))[1] == state)


# -- the API and its description ----------------------------------------------------------------------------
def test_the_openapi_description_matches_the_real_routes(site: Theatre, tmp_path: Path) -> None:
    from gate.ownership.boxoffice import BoxOffice
    from gate.ownership.officeserver import BoxOfficeServer

    code, spec = raw(site.bo.url + "/openapi.json")
    assert code == 200 and spec["openapi"] == "3.1.0"
    described = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}  # type: ignore[attr-defined]
    server = BoxOfficeServer(BoxOffice.open(str(site.root / "bo" / "boxoffice.db"), lambda t: ""), port=0)
    try:
        assert described == {(r.method, r.path) for r in server.routes()}
    finally:
        server.server.server_close()
    for method, path in sorted(described):  # and the running server answers every one of them
        url = site.bo.url + re.sub(r"\{\w+\}", "x", path)
        answered, body = raw(url, method=method, body=b"{}" if method == "POST" else None)
        assert body.get("error") not in ("not_found", "method_not_allowed"), (method, path, answered, body)
    # and what the server answers has the described shape (status, catalog, errors)
    schemas = spec["components"]["schemas"]  # type: ignore[index]
    conforms(raw(site.bo.url + f"/tickets/{EVENT}/9f2")[1], schemas["Status"], exact=True)
    conforms(raw(site.bo.url + "/catalog")[1], schemas["Catalog"])
    for url in (site.bo.url + "/tickets/show7/nope", site.bo.url + "/mailbox/abc?after=x"):
        conforms(raw(url)[1], schemas["Error"])


JSON_TYPES = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}


def conforms(value: dict[str, object], schema: dict[str, Any], *, exact: bool = False) -> None:
    """`value` has the schema's required keys and its described properties have their types (with `exact`,
    no other keys: the description lists every field)."""
    props = schema.get("properties", {})
    assert set(schema.get("required", ())) <= set(value), (schema, value)
    if exact:
        assert set(value) == set(props), (set(value) ^ set(props))
    for key, prop in props.items():
        if key in value and "type" in prop:
            kind = JSON_TYPES[prop["type"]]
            assert isinstance(value[key], kind) and not (kind is int and isinstance(value[key], bool)), (key, value)


def test_bad_requests_get_clear_errors(site: Theatre) -> None:
    url = site.bo.url
    assert raw(url + "/catalog", host="evil.example:80")[0] == 421  # DNS rebinding: not our Host
    code, body = raw(url + "/purchase", method="POST", body=b"not json")
    assert (code, body["error"]) == (400, "malformed")
    code, body = raw(url + "/purchase", method="POST", body=b"x" * 300_000)
    assert (code, body["error"]) == (413, "too_large")
    assert raw(url + "/nowhere")[1]["error"] == "not_found"
    assert raw(url + "/tickets/show7/nope")[1]["error"] == "unknown_ticket"
    assert raw(url + "/mailbox/abc?after=x")[1]["error"] == "malformed"


def test_the_catalog_is_signed_and_a_fake_theatre_is_refused(site: Theatre) -> None:
    catalog = site.bo.catalog(site.chain)
    assert [x.ticket_id for x in catalog.listings] == ["9f2", "a11"]
    doctored = json.loads(catalog.dumps())
    doctored["tickets"][0]["price"] = 1
    with pytest.raises(BadSignature):
        Catalog.loads(json.dumps(doctored)).verify()
    with pytest.raises(BadSignature):  # a genuine catalog, but not of the box office this wallet pinned
        site.bo.catalog("0" * 32)


# -- purchase, timer, late payment ----------------------------------------------------------------------------
def test_purchase_over_http_makes_the_buyer_the_holder(site: Theatre) -> None:
    alice = site.wallet("alice")
    txn = buy_and_pay(site, alice)
    assert status(site)["holder"] == alice.chain and status(site)["generation"] == 1
    assert site.agent is not None
    wait_for(lambda: _agent_state(site, txn) == ("settled", True))
    code = alice.wallet.code(EVENT, "9f2")[0]
    run_gate(site.root, "bo", "keys", "export", "--event", EVENT, "--out", "ring.json")
    run_gate(site.root, "gate", "keys", "import", "ring.json")
    assert run_gate(site.root, "gate", "check", code).stdout.startswith("ADMIT")
    with pytest.raises(Refused) as taken:  # the seat is sold: a second buyer is refused, and pays nothing
        site.wallet("bob").buy(EVENT, "9f2")
    assert taken.value.code == "not_available"


def _agent_state(site: Theatre, txn: str) -> tuple[str, bool]:
    assert site.agent is not None
    from gate.ownership.client import AgentClient

    answer = AgentClient(site.agent.url).payment(txn)
    return str(answer["state"]), bool(answer["delivered"])


def test_the_server_expires_a_reservation_and_refunds_a_late_payment(quick: Theatre) -> None:
    alice = quick.wallet("alice")
    reply = alice.buy(EVENT, "9f2")
    assert status(quick)["state"] == "reserved"
    wait_for(lambda: status(quick)["state"] == "available")  # the box office's own timer, nobody asked
    receipt = alice.pay(reply)  # she has not looked at her mailbox: she pays, too late
    txn = next(b.txn for b in receipt.blocks if not b.is_identity)
    synced(alice, txn, "refunded")
    kinds = [b.kind for m in alice.inbox for b in m.blocks if not b.is_identity]
    assert "timeout" in kinds and "refund" in kinds
    assert _agent_state(quick, txn) == ("refunded", True)
    assert status(quick)["holder"] == ""


# -- resale and gift through mailboxes ------------------------------------------------------------------------
def resell(site: Theatre, seller: OnlineWallet, buyer: OnlineWallet, cents: int) -> str:
    request, hold = buyer.ask(EVENT, "9f2", seller.chain)
    assert "hold" in [b.kind for b in hold.blocks]
    wait_for(lambda: seller.sync() is not None and seller.requests())
    seller.sell(seller.requests()[-1], cents, "EUR")
    wait_for(lambda: buyer.sync() is not None and buyer.bills())
    buyer.pay(buyer.bills()[-1])
    txn = request.blocks[-1].txn
    synced(buyer, txn, "owned")
    return txn


@pytest.fixture
def loud(tmp_path: Path) -> Iterator[Theatre]:
    """A box office that logs every request (debug level), so its log has something to search."""
    yield from theatre(tmp_path, "9f2", "a11", verbose=True)


def test_resale_over_http_the_seller_need_not_release_and_the_price_stays_hidden(
        loud: Theatre, monkeypatch: pytest.MonkeyPatch) -> None:
    site = loud
    answers: list[bytes] = []  # every answer the box office gives the wallets, as it came
    once = HttpClient._once

    def recorded(client: HttpClient, request: urllib.request.Request) -> object:
        answer = once(client, request)
        if client.url == site.bo.url:
            answers.append(json.dumps(answer).encode())
        return answer
    monkeypatch.setattr(HttpClient, "_once", recorded)
    alice, bob = site.wallet("alice"), site.wallet("bob")
    buy_and_pay(site, alice)
    txn = resell(site, alice, bob, 432177)  # 4321.77 EUR; Alice never releases: the payment moves the ticket
    assert (status(site)["holder"], status(site)["generation"]) == (bob.chain, 2)
    wait_for(lambda: alice.sync() is not None and [t["state"] for t in alice.wallet.tickets()] == ["gone"])
    wait_for(lambda: alice.sync() is not None and any(
        d["state"] == "paid" for d in alice.wallet.deals() if d["txn"] == txn))
    assert [(t["generation"], t["state"]) for t in bob.wallet.tickets()] == [(2, "held")]
    # the price appears nowhere on the box office's side: its files (WAL too), its log, its answers
    bo = site.root / "bo"
    files = [p for p in bo.iterdir() if p.name.startswith("boxoffice.db")] + [site.root / "bo.log"]
    assert any(p.name.endswith("-wal") for p in files)
    assert_no_price(files, 432177)
    with sqlite3.connect(bo / "boxoffice.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert_no_price(files, 432177)
    assert b'"POST /resale HTTP/1.1" 200' in (site.root / "bo.log").read_bytes()  # the log is searched, not empty
    kinds = set(re.findall(rb'"kind": "(\w+)"', b"".join(answers)))
    assert {b"hold", b"invoice", b"ownership", b"superseded"} <= kinds, kinds  # the answers of every step
    for answer in answers:
        assert_no_price_text(answer, 432177, "an answer of the box office")
    assert "4321.77" in str(alice.wallet.deals()) or "432177" in str(alice.wallet.deals())


def assert_no_price(files: list[Path], cents: int) -> None:
    for path in files:
        if path.exists():
            assert_no_price_text(path.read_bytes(), cents, str(path))


def assert_no_price_text(data: bytes, cents: int, where: str) -> None:
    """The price as a number or an amount, anywhere but inside a run of base64 (ciphertext can hold any digits)."""
    euros = f"{cents // 100}.{cents % 100:02d}".encode()
    assert euros not in data, where
    assert not re.search(rb"(?<![A-Za-z0-9+/])" + str(cents).encode() + rb"(?![A-Za-z0-9+/=])", data), where


def test_a_resale_paid_after_the_hold_expired_is_refunded(quick: Theatre) -> None:
    alice, bob = quick.wallet("alice"), quick.wallet("bob")
    buy_and_pay(quick, alice)
    request, _hold = bob.ask(EVENT, "9f2", alice.chain)
    wait_for(lambda: alice.sync() is not None and alice.requests())
    alice.sell(alice.requests()[-1], 4000, "EUR")
    wait_for(lambda: status(quick)["on_hold"] is False)  # the hold ran out on the server's timer
    invoice = next(m for _seq, m in quick.bo.mailbox(bob.chain) if any(b.kind == "invoice" for b in m.blocks))
    bob.pay(invoice)  # Bob pays without reading the timeout
    txn = request.blocks[-1].txn
    synced(bob, txn, "refunded")
    assert (status(quick)["holder"], status(quick)["generation"]) == (alice.chain, 1)
    assert _agent_state(quick, txn) == ("refunded", True)


def test_gift_over_http(site: Theatre) -> None:
    alice, carol = site.wallet("alice"), site.wallet("carol")
    buy_and_pay(site, alice)
    request, _hold = carol.ask(EVENT, "9f2", alice.chain)
    wait_for(lambda: alice.sync() is not None and alice.requests())
    alice.gift(alice.requests()[-1])
    synced(carol, request.blocks[-1].txn, "owned")
    assert (status(site)["holder"], status(site)["generation"]) == (carol.chain, 2)


def test_a_message_for_the_mailbox_must_be_for_a_known_party(site: Theatre) -> None:
    alice = site.wallet("alice")
    with pytest.raises(Refused) as unknown:
        site.bo.deposit("0" * 32, Message((alice.wallet.party.identity_block,)))
    assert unknown.value.code == "malformed"  # it holds no block for that party


# -- many buyers at once --------------------------------------------------------------------------------------
@pytest.fixture
def ten_seats(tmp_path: Path) -> Iterator[Theatre]:
    yield from theatre(tmp_path, *[f"s{i}" for i in range(10)])


def test_fifty_buyers_race_for_ten_seats_over_http(ten_seats: Theatre) -> None:
    buyers = [ten_seats.wallet(f"buyer{i}") for i in range(50)]
    results = race(len(buyers), lambda i: buyers[i].pay(buyers[i].buy(EVENT, f"s{i % 10}")) and "paid")  # 5 a seat
    assert sorted(results) == ["not_available"] * 40 + ["paid"] * 10
    winners = [b for b, r in zip(buyers, results, strict=True) if r == "paid"]
    for w in winners:
        wait_for(lambda w=w: (w.sync(), [t["state"] for t in w.wallet.tickets()])[1] == ["held"])  # type: ignore[misc]
    holders = {str(status(ten_seats, f"s{i}")["holder"]) for i in range(10)}
    assert holders == {w.chain for w in winners}  # ten seats, ten owners, one each
    with sqlite3.connect(ten_seats.root / "agent" / "fake-agent.db") as db:
        charged = {payer for (payer,) in db.execute("SELECT payer FROM charges")}
    assert charged == holders  # no payment taken from a refused buyer


def test_a_ticket_whose_window_has_ended_is_not_sold_over_http(site: Theatre) -> None:
    """(A payment or release arriving after the end: test_chain_flows.py's *_after_the_window_ended_*.)"""
    site.list("late", valid_until=int(time.time()) + 2)
    alice = site.wallet("alice")
    buy_and_pay(site, alice)
    wait_for(lambda: status(site, "late")["ended"])
    assert {x.ticket_id: x.state for x in site.bo.catalog(site.chain).listings}["late"] == "ended"
    with pytest.raises(Refused) as bought:
        alice.buy(EVENT, "late")
    assert bought.value.code == "ended"
    code, body = raw(site.bo.url + "/purchase", method="POST",
                     body=alice.wallet.buy(EVENT, "late").dumps().encode())
    assert (code, body["error"]) == (409, "ended")
    assert status(site, "late")["state"] == "available" and status(site, "9f2")["holder"] == alice.chain


def test_every_step_sent_twice_over_http_gets_the_same_answer_and_does_it_once(site: Theatre) -> None:
    assert site.agent is not None
    alice, carol = site.wallet("alice"), site.wallet("carol")

    def twice(url: str, message: Message) -> dict[str, object]:
        first, again = (raw(url, method="POST", body=message.dumps().encode()) for _ in range(2))
        assert first == again and first[0] == 200, (url, first, again)
        return first[1]
    reply = Message.loads(json.dumps(twice(site.bo.url + "/purchase", alice.wallet.buy(EVENT, "9f2"))))
    alice.wallet.accept(reply)
    receipt = Message.loads(json.dumps(twice(site.agent.url + "/payments", alice.wallet.charge(reply))))
    alice.wallet.accept(receipt)
    txn = next(b.txn for b in receipt.blocks if not b.is_identity)
    synced(alice, txn, "owned")
    request = carol.wallet.buy(EVENT, "9f2", seller=alice.chain)
    carol.wallet.accept(Message.loads(json.dumps(twice(site.bo.url + "/resale", request))))
    wait_for(lambda: alice.sync() is not None and alice.requests())
    gift = alice.wallet.gift(alice.requests()[-1])
    twice(site.bo.url + "/release", gift)
    relayed = next(m for _seq, m in site.bo.mailbox(alice.chain) if any(b.to == alice.chain for b in m.blocks))
    assert twice(site.bo.url + f"/mailbox/{alice.chain}", relayed) == twice(
        site.bo.url + f"/mailbox/{alice.chain}", relayed)  # kept once: the same seq
    synced(carol, request.blocks[-1].txn, "owned")
    assert (status(site)["holder"], status(site)["generation"]) == (carol.chain, 2)  # one hand-over, not two
    with sqlite3.connect(site.root / "agent" / "fake-agent.db") as db:
        assert db.execute("SELECT count(*) FROM charges").fetchone() == (1,)  # one charge, not two
