"""Fixtures for the ownership tests (tests/test_chain_*.py): real SQLite files, real keys, a settable clock.

`World` holds a box office, a fake payment agent, wallets and a gate, all on
files under tmp_path and one clock the test moves.  The flow helpers run each
step the way the CLI does (message out of one party, into the next).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gate.decide import Decider, Decision
from gate.keys import IssuerKey, Keyring
from gate.ownership.block import Message
from gate.ownership.boxoffice import BoxOffice
from gate.ownership.exc import Refused
from gate.ownership.party import Party
from gate.ownership.payment import FakePaymentAgent
from gate.ownership.protocol import Catalog, Listing
from gate.ownership.store import BOXOFFICE_MIGRATIONS, open_db
from gate.ownership.wallet import Wallet
from gate.store import Store
from gate.verify import Verifier

T0 = 1_800_000_000.0
SLOT = 15
DAY_SLOTS = 5760  # 24 h of 15 s slots


class Clock:
    """A clock the test sets: `clock()` is now, `clock.advance(s)` moves it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RealClock(Clock):
    """The real time (for the browser test, where the page rotates on its own)."""

    def __call__(self) -> float:
        return time.time()


def race(count: int, attempt: Callable[[int], object]) -> list[object]:
    """Run attempt(0..count-1) in threads released at once; each one's result, or the code it was refused with."""
    results: list[object] = [None] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = attempt(i)
        except Refused as exc:
            results[i] = exc.code
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def listing(ticket_id: str = "9f2", seat: str = "12B", price: int = 2500, *, slot: int = SLOT,
            slots: int = DAY_SLOTS, start: float = T0) -> Listing:
    return Listing("show7", ticket_id, seat, price, "EUR", int(start), int(start) + slot * slots, slot, slots)


@dataclass
class World:
    root: Path
    clock: Clock
    key: IssuerKey
    office: BoxOffice
    agent: FakePaymentAgent
    store: Store
    wallets: dict[str, Wallet] = field(default_factory=dict)

    def wallet(self, name: str) -> Wallet:
        """A new wallet that trusts the box office's catalog and the agent, and knows every other wallet."""
        wallet = Wallet.create(str(self.root / f"{name}.db"), name, clock=self.clock)
        wallet.trust(Catalog.loads(self.office.catalog().dumps()))
        wallet.trust(self.agent.identity_block)
        for other in self.wallets.values():
            other.trust(wallet.party.identity_block)
            wallet.trust(other.party.identity_block)
        self.wallets[name] = wallet
        return wallet

    def office_again(self) -> BoxOffice:
        """A second BoxOffice on the same file (its own connection), as another process would have."""
        db = open_db(self.root / "boxoffice.db", BOXOFFICE_MIGRATIONS)
        return BoxOffice(db, self.key.sign, reservation=self.office.reservation, clock=self.clock)

    def gate(self, gate_id: str = "gate-1") -> Decider:
        verifier = Verifier(Keyring([self.key.verify_key()]), clock=self.clock)
        return Decider(verifier, self.store, gate_id, clock=self.clock)

    def scan(self, wallet: Wallet, ticket_id: str = "9f2", gate_id: str = "gate-1") -> Decision:
        text, _code, _terms = wallet.code("show7", ticket_id)
        return self.gate(gate_id).decide(text)

    def publish_generations(self) -> None:
        """What the sync stream carries to every gate: each raised generation, into the gate store."""
        for row in self.office.supersessions():
            self.store.supersede(str(row["event"]), str(row["ticket_id"]), int(row["generation"]),  # type: ignore[call-overload]
                                 at=self.clock(), by="boxoffice")

    # the flows, step by step -------------------------------------------------------------------
    def purchase(self, wallet: Wallet, ticket_id: str = "9f2", *, mode: str = "rotating") -> Message:
        reply = self.office.handle(wallet.buy("show7", ticket_id, mode=mode))
        wallet.accept(reply)
        owned = self.office.confirm(wallet.pay(reply, self.agent))
        wallet.accept(owned)
        return owned

    def hold(self, seller: Wallet, buyer: Wallet, ticket_id: str = "9f2") -> Message:
        """The buyer asks the seller for the ticket and the box office holds it for them; the request."""
        request = buyer.buy("show7", ticket_id, seller=seller.chain)
        holds = self.office.handle(request)
        buyer.accept(holds)
        seller.accept(holds)
        return request

    def resale(self, seller: Wallet, buyer: Wallet, price: int, ticket_id: str = "9f2") -> Message:
        request = self.hold(seller, buyer, ticket_id)
        invoice = seller.sell(request, price, "EUR")
        paid = buyer.pay(invoice, self.agent)
        owned = self.office.transfer(seller.release(paid))
        buyer.accept(owned)
        seller.accept(owned)
        return owned

    def gift(self, giver: Wallet, receiver: Wallet, ticket_id: str = "9f2") -> Message:
        request = receiver.buy("show7", ticket_id, seller=giver.chain)
        receiver.accept(self.office.handle(request))
        owned = self.office.transfer(giver.gift(request))
        receiver.accept(owned)
        giver.accept(owned)
        return owned


#: a resale price no hex digest, signature or timestamp in a file contains by chance (a short one like 4321
#: turns up in the box office's hex-encoded sealed blocks now and then)
SECRET_PRICE = 738_291_645
SECRET_PRICE_TEXTS = ("738291645", "7382916.45")  # in minor units (JSON) and as the CLI writes it


def traces(needles: tuple[str, ...], *places: Path) -> list[str]:
    """Where any of `needles` occurs in `places` (files, or folders searched whole): in each file's raw bytes,
    a database's -wal, -shm and -journal beside it included (a database open in WAL mode holds its recent
    rows there), and in every cell of every table of each database, read back through SQLite."""
    files = sorted({f for p in places for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()}
                   | {Path(f"{p}{tail}") for p in places if p.is_file() for tail in ("-wal", "-shm", "-journal")
                      if Path(f"{p}{tail}").is_file()})
    found = [f"{f.name}: bytes" for f in files for n in needles if n.encode() in f.read_bytes()]
    for f in files:
        if f.read_bytes()[:16] == b"SQLite format 3\0":
            found += [f"{f.name}: {where}" for where in _cells_with(f, needles)]
    return found


def _cells_with(path: Path, needles: tuple[str, ...]) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [f"table {t}" for t in tables for row in db.execute(f'SELECT * FROM "{t}"') for cell in row
                for n in needles if n in (cell.decode("latin-1") if isinstance(cell, bytes) else str(cell))]


def make_world(root: Path, *tickets: Listing, clock: Clock | None = None) -> World:
    clock = clock or Clock()
    key = IssuerKey("0a1b2c3d", "hmac", "show7", bytes(range(32)), 0.0)
    db = open_db(root / "boxoffice.db", BOXOFFICE_MIGRATIONS)
    Party.create(db, "box office", "boxoffice", clock=clock)
    office = BoxOffice(db, key.sign, reservation=600, clock=clock)
    agent = FakePaymentAgent.open(str(root / "agent.db"), create=True, clock=clock)
    office.trust_agent(agent.identity_block)
    agent.trust_boxoffice(office.party.identity_block)
    for item in tickets or (listing(),):
        office.add(item)
    return World(root, clock, key, office, agent, Store.open(root / "gate.db"))


def standard_world(tmp_path: Path) -> Iterator[World]:
    """For a test module's `world` fixture: tickets 9f2 (12B) and a11 (12C) on sale, 24 h of 15 s slots."""
    w = make_world(tmp_path, listing("9f2", "12B"), listing("a11", "12C"))
    yield w
    w.store.close()
