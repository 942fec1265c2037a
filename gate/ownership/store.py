"""Every write to the files of the ownership parties: box office, wallets, payment agents.

One module writes each of these SQLite files (docs/architecture.md): the tables
every party has (its own chain, the chains it knows, the blocks it wrote or
opened: `Chains`), the box office's inventory and deals (`Inventory`), a
wallet's catalog, deals and tickets (`Holdings`) and a payment agent's payments
(`Payments`).  Reads that need no transaction of their own stay with their
callers.  Every function runs inside the caller's ``BEGIN IMMEDIATE``
transaction (`Database.transaction()`, gate/sqlite.py), so a block is written
in the same commit as the state change it carries.

The double-sale guard is in `Inventory.take`, `sell`, `hold` and `hand_over`:
each is one UPDATE that compare-and-sets the ticket row on (state, holder,
generation, pending deal), so of two concurrent attempts on one ticket exactly
one matches a row and the other sees a count of 0.

A wallet's file holds the code seed of each ticket (and only it holds it): the
file is created 0600 in a 0700 folder, and nothing derived from the seed leaves
the wallet but the anchor (in requests) and one back-step value per shown code.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.ownership.exc import ChainStoreError
from gate.ownership.protocol import CodeRequest, Listing
from gate.sqlite import Database, Migration


def open_db(path: str | Path, migrations: list[Migration], *, busy_timeout: float = 10.0) -> Database:
    """A party's file (0600 in a 0700 folder), migrated; every sqlite3/OS error becomes ChainStoreError."""
    return Database.open(path, migrations, error=ChainStoreError, what="party's file", busy_timeout=busy_timeout,
                         private=True)


#: tables every party has: its own chain, the chains it knows, the blocks it wrote or opened
PARTY_MIGRATION: Migration = (1, "party: own chain, known chains, blocks", (
    """CREATE TABLE self (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        chain TEXT NOT NULL,
        seed BLOB NOT NULL,
        dh_private BLOB NOT NULL,
        identity TEXT NOT NULL,
        next_index INTEGER NOT NULL,
        head TEXT NOT NULL
    )""",
    """CREATE TABLE parties (
        chain TEXT PRIMARY KEY,
        identity TEXT NOT NULL,
        role TEXT NOT NULL,
        trusted TEXT NOT NULL DEFAULT '',
        anchor BLOB NOT NULL,
        last_index INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    """CREATE TABLE blocks (
        hash TEXT PRIMARY KEY,
        chain TEXT NOT NULL,
        idx INTEGER NOT NULL,
        value BLOB NOT NULL,
        txn TEXT NOT NULL,
        app TEXT NOT NULL,
        kind TEXT NOT NULL,
        recipient TEXT NOT NULL,
        block TEXT NOT NULL,
        payload TEXT NOT NULL,
        stored_at REAL NOT NULL,
        UNIQUE (chain, idx)
    )""",
    "CREATE INDEX blocks_txn ON blocks (txn)",
))
BOXOFFICE_MIGRATIONS: list[Migration] = [PARTY_MIGRATION, (2, "box office: inventory, deals, supersessions", (
    """CREATE TABLE tickets (
        event TEXT NOT NULL, ticket_id TEXT NOT NULL, seat TEXT NOT NULL,
        price INTEGER NOT NULL, currency TEXT NOT NULL,
        valid_from INTEGER NOT NULL, valid_until INTEGER NOT NULL, slot INTEGER NOT NULL, slots INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'available' CHECK (state IN ('available', 'reserved', 'sold')),
        holder TEXT NOT NULL DEFAULT '', generation INTEGER NOT NULL DEFAULT 0,
        pending TEXT NOT NULL DEFAULT '', pending_until REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (event, ticket_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE deals (
        txn TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('purchase', 'resale')),
        event TEXT NOT NULL, ticket_id TEXT NOT NULL,
        buyer TEXT NOT NULL, seller TEXT NOT NULL DEFAULT '',
        generation INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'done', 'expired', 'late')),
        expires REAL NOT NULL, amount INTEGER NOT NULL DEFAULT 0, currency TEXT NOT NULL DEFAULT '',
        code TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX deals_open ON deals (state, expires)",
    """CREATE TABLE supersessions (
        event TEXT NOT NULL, ticket_id TEXT NOT NULL, generation INTEGER NOT NULL,
        at REAL NOT NULL, published INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (event, ticket_id, generation)
    ) WITHOUT ROWID""",
)), (3, "box office: mailboxes (blocks waiting for a party, relayed sealed)", (
    """CREATE TABLE mailbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient TEXT NOT NULL,
        digest TEXT NOT NULL,
        message TEXT NOT NULL,
        at REAL NOT NULL,
        UNIQUE (recipient, digest)
    )""",
)), (4, "box office: the event's title and venue, for the holder's page", (
    "ALTER TABLE tickets ADD COLUMN title TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE tickets ADD COLUMN venue TEXT NOT NULL DEFAULT ''",
)), (5, "box office: the tickets it lets a holder take as a static paper code (its decision, not the buyer's)", (
    """CREATE TABLE paper (
        event TEXT NOT NULL, ticket_id TEXT NOT NULL,
        PRIMARY KEY (event, ticket_id)
    ) WITHOUT ROWID""",
))]
WALLET_MIGRATIONS: list[Migration] = [PARTY_MIGRATION, (2, "wallet: catalog, deals, tickets", (
    """CREATE TABLE catalog (
        event TEXT NOT NULL, ticket_id TEXT NOT NULL, seat TEXT NOT NULL,
        price INTEGER NOT NULL, currency TEXT NOT NULL,
        valid_from INTEGER NOT NULL, valid_until INTEGER NOT NULL, slot INTEGER NOT NULL, slots INTEGER NOT NULL,
        state TEXT NOT NULL, boxoffice TEXT NOT NULL,
        PRIMARY KEY (event, ticket_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE deals (
        txn TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('buyer', 'seller')),
        event TEXT NOT NULL, ticket_id TEXT NOT NULL,
        other TEXT NOT NULL DEFAULT '', boxoffice TEXT NOT NULL,
        seed BLOB, mode INTEGER NOT NULL DEFAULT 0,
        amount INTEGER NOT NULL DEFAULT 0, currency TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL, updated REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE tickets (
        event TEXT NOT NULL, ticket_id TEXT NOT NULL,
        generation INTEGER NOT NULL, text TEXT NOT NULL, seed BLOB NOT NULL, txn TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('held', 'gone')), at REAL NOT NULL,
        PRIMARY KEY (event, ticket_id)
    ) WITHOUT ROWID""",
)), (3, "wallet: its box office and agent over HTTP, the mailbox read so far", (
    """CREATE TABLE service (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        boxoffice_url TEXT NOT NULL, boxoffice TEXT NOT NULL, agent_url TEXT NOT NULL
    )""",
    """CREATE TABLE inbox (
        seq INTEGER PRIMARY KEY,
        message TEXT NOT NULL,
        at REAL NOT NULL
    )""",
    "ALTER TABLE catalog ADD COLUMN title TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE catalog ADD COLUMN venue TEXT NOT NULL DEFAULT ''",
))]
AGENT_MIGRATIONS: list[Migration] = [PARTY_MIGRATION, (2, "fake agent: payments", (
    """CREATE TABLE payments (
        txn TEXT NOT NULL, payer TEXT NOT NULL, payee TEXT NOT NULL,
        amount INTEGER NOT NULL, currency TEXT NOT NULL, at REAL NOT NULL,
        PRIMARY KEY (txn, payer)
    ) WITHOUT ROWID""",
)), (3, "fake agent: charges held until the box office settles them", (
    """CREATE TABLE charges (
        txn TEXT PRIMARY KEY,
        payer TEXT NOT NULL, payee TEXT NOT NULL, boxoffice TEXT NOT NULL,
        amount INTEGER NOT NULL, currency TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('held', 'settled', 'refunded')),
        delivered INTEGER NOT NULL DEFAULT 0,
        at REAL NOT NULL, updated REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX charges_pending ON charges (state, delivered)",
))]


#: the columns of a Listing, in its field order (box office tickets and a wallet's catalog)
LISTING = "event, ticket_id, seat, price, currency, valid_from, valid_until, slot, slots, state, title, venue"


class Chains:
    """The tables every party has: `self` (its own chain), `parties` (chains it knows), `blocks`."""

    @staticmethod
    def create_self(tx: sqlite3.Connection, chain: str, seed: bytes, dh_private: bytes, identity: str,
                    head: str) -> None:
        tx.execute("INSERT INTO self VALUES (1, ?, ?, ?, ?, 1, ?)", (chain, seed, dh_private, identity, head))

    @staticmethod
    def advance(tx: sqlite3.Connection, next_index: int, head: str) -> None:
        """The own chain's next free index and the hash of its newest block."""
        tx.execute("UPDATE self SET next_index = ?, head = ?", (next_index, head))

    @staticmethod
    def learn(tx: sqlite3.Connection, chain: str, identity: str, role: str, anchor: bytes, trusted: str = "") -> None:
        """Know a chain (once); `trusted` names a role it is trusted in."""
        tx.execute("INSERT INTO parties (chain, identity, role, anchor) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                   (chain, identity, role, anchor))
        if trusted:
            tx.execute("UPDATE parties SET trusted = ? WHERE chain = ?", (trusted, chain))

    @staticmethod
    def verified(tx: sqlite3.Connection, chain: str, index: int) -> None:
        """A block of `chain` at `index` was verified here."""
        tx.execute("UPDATE parties SET last_index = max(last_index, ?) WHERE chain = ?", (index, chain))

    @staticmethod
    def store_block(tx: sqlite3.Connection, row: tuple[Any, ...]) -> None:
        """(hash, chain, idx, value, txn, app, kind, recipient, block, payload, stored_at)"""
        tx.execute("INSERT INTO blocks (hash, chain, idx, value, txn, app, kind, recipient, block, payload, stored_at)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)


@dataclass(frozen=True)
class Deal:
    """A purchase or a resale in progress (or finished)."""

    txn: str
    kind: str
    event: str
    ticket_id: str
    buyer: str
    seller: str
    generation: int  # the generation being handed over (0 for a purchase)
    state: str
    expires: float
    amount: int
    currency: str
    code: CodeRequest


@dataclass(frozen=True)
class Holding:
    """Who holds a ticket now."""

    listing: Listing
    holder: str
    generation: int
    pending: str
    pending_until: float


class Inventory:
    """The box office's tickets (with their current holder), deals and supersessions."""

    @staticmethod
    def listing(tx: sqlite3.Connection, event: str, ticket_id: str) -> Holding | None:
        row = tx.execute(f"SELECT {LISTING}, holder, generation, pending, pending_until FROM tickets"
                         " WHERE event = ? AND ticket_id = ?", (event, ticket_id)).fetchone()
        return Holding(Listing(*row[:12]), *row[12:]) if row else None

    @staticmethod
    def allow_paper(tx: sqlite3.Connection, event: str, ticket_id: str) -> None:
        tx.execute("INSERT INTO paper VALUES (?, ?) ON CONFLICT DO NOTHING", (event, ticket_id))

    @staticmethod
    def paper_allowed(tx: sqlite3.Connection, event: str, ticket_id: str) -> bool:
        return tx.execute("SELECT 1 FROM paper WHERE event = ? AND ticket_id = ?", (event, ticket_id)).fetchone() \
            is not None

    @staticmethod
    def add(tx: sqlite3.Connection, item: Listing) -> bool:
        return bool(tx.execute("INSERT INTO tickets (event, ticket_id, seat, price, currency, valid_from, valid_until,"
                               " slot, slots, title, venue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                               " ON CONFLICT DO NOTHING",
                               (item.event, item.ticket_id, item.seat, item.price, item.currency, item.valid_from,
                                item.valid_until, item.slot, item.slots, item.title, item.venue)).rowcount)

    @staticmethod
    def take(tx: sqlite3.Connection, event: str, ticket_id: str, txn: str, until: float) -> bool:
        """Reserve an available ticket for a purchase: compare-and-set available -> reserved."""
        return tx.execute("UPDATE tickets SET state = 'reserved', pending = ?, pending_until = ?"
                          " WHERE event = ? AND ticket_id = ? AND state = 'available'",
                          (txn, until, event, ticket_id)).rowcount == 1

    @staticmethod
    def sell(tx: sqlite3.Connection, deal: Deal) -> bool:
        """Reserved by this purchase -> sold to its buyer, generation 1 (compare-and-set)."""
        return tx.execute("UPDATE tickets SET state = 'sold', holder = ?, generation = generation + 1, pending = '',"
                          " pending_until = 0 WHERE event = ? AND ticket_id = ? AND state = 'reserved' AND pending = ?",
                          (deal.buyer, deal.event, deal.ticket_id, deal.txn)).rowcount == 1

    @staticmethod
    def hold(tx: sqlite3.Connection, held: Holding, seller: str, txn: str, until: float) -> bool:
        """Hold a sold ticket for one resale: compare-and-set on (holder, generation, no deal pending)."""
        return tx.execute("UPDATE tickets SET pending = ?, pending_until = ? WHERE event = ? AND ticket_id = ?"
                          " AND state = 'sold' AND holder = ? AND generation = ? AND pending = ''",
                          (txn, until, held.listing.event, held.listing.ticket_id, seller, held.generation)).rowcount == 1

    @staticmethod
    def hand_over(tx: sqlite3.Connection, deal: Deal) -> bool:
        """The held ticket to the buyer with the generation raised (compare-and-set on holder, generation, deal)."""
        return tx.execute("UPDATE tickets SET holder = ?, generation = generation + 1, pending = '', pending_until = 0"
                          " WHERE event = ? AND ticket_id = ? AND state = 'sold' AND holder = ? AND generation = ?"
                          " AND pending = ?", (deal.buyer, deal.event, deal.ticket_id, deal.seller, deal.generation,
                                               deal.txn)).rowcount == 1

    @staticmethod
    def release_pending(tx: sqlite3.Connection, deal: Deal) -> None:
        """Undo a reservation or hold of `deal` (it expired)."""
        if deal.kind == "purchase":
            tx.execute("UPDATE tickets SET state = 'available', pending = '', pending_until = 0"
                       " WHERE event = ? AND ticket_id = ? AND state = 'reserved' AND pending = ?",
                       (deal.event, deal.ticket_id, deal.txn))
        else:
            tx.execute("UPDATE tickets SET pending = '', pending_until = 0 WHERE event = ? AND ticket_id = ?"
                       " AND pending = ?", (deal.event, deal.ticket_id, deal.txn))

    @staticmethod
    def open_deal(tx: sqlite3.Connection, deal: Deal, now: float) -> bool:
        return bool(tx.execute("INSERT INTO deals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                               (deal.txn, deal.kind, deal.event, deal.ticket_id, deal.buyer, deal.seller, deal.generation,
                                deal.state, deal.expires, deal.amount, deal.currency,
                                json.dumps(deal.code.to_json()), now, now)).rowcount)

    @staticmethod
    def deal(tx: sqlite3.Connection, txn: str) -> Deal | None:
        row = tx.execute("SELECT txn, kind, event, ticket_id, buyer, seller, generation, state, expires, amount,"
                         " currency, code FROM deals WHERE txn = ?", (txn,)).fetchone()
        if row is None:
            return None
        return Deal(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
                    CodeRequest.from_json(json.loads(row[11])))

    @staticmethod
    def due(tx: sqlite3.Connection, now: float) -> list[Deal]:
        rows = tx.execute("SELECT txn FROM deals WHERE state = 'open' AND expires < ? ORDER BY expires", (now,))
        return [d for (txn,) in rows.fetchall() if (d := Inventory.deal(tx, txn)) is not None]

    @staticmethod
    def set_state(tx: sqlite3.Connection, txn: str, state: str, now: float) -> None:
        tx.execute("UPDATE deals SET state = ?, updated = ? WHERE txn = ?", (state, now, txn))

    @staticmethod
    def published(tx: sqlite3.Connection, event: str, ticket_id: str, generation: int) -> None:
        """The arbiter confirmed this raised generation: every gate hears of it from its stream."""
        tx.execute("UPDATE supersessions SET published = 1 WHERE event = ? AND ticket_id = ? AND generation = ?",
                   (event, ticket_id, generation))

    @staticmethod
    def supersede(tx: sqlite3.Connection, event: str, ticket_id: str, generation: int, now: float) -> None:
        tx.execute("INSERT INTO supersessions (event, ticket_id, generation, at) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT DO NOTHING", (event, ticket_id, generation, now))


@dataclass(frozen=True)
class WalletDeal:
    txn: str
    role: str
    event: str
    ticket_id: str
    other: str  # buyer: the seller of a resale ('' from the box office); seller: the buyer
    boxoffice: str
    seed: bytes | None
    mode: int
    amount: int
    currency: str
    state: str


@dataclass(frozen=True)
class Held:
    event: str
    ticket_id: str
    generation: int
    text: str
    seed: bytes
    txn: str
    state: str


class Holdings:
    """A wallet's catalog of trusted box offices' listings, its deals and the tickets it holds."""

    @staticmethod
    def remember(tx: sqlite3.Connection, item: Listing, boxoffice: str) -> None:
        tx.execute(f"INSERT INTO catalog ({LISTING}, boxoffice) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                   " ON CONFLICT (event, ticket_id) DO UPDATE SET state = excluded.state, price = excluded.price,"
                   " title = excluded.title, venue = excluded.venue",
                   (item.event, item.ticket_id, item.seat, item.price, item.currency, item.valid_from, item.valid_until,
                    item.slot, item.slots, item.state, item.title, item.venue, boxoffice))

    @staticmethod
    def listing(tx: sqlite3.Connection, event: str, ticket_id: str) -> tuple[Listing, str] | None:
        row = tx.execute(f"SELECT {LISTING}, boxoffice FROM catalog WHERE event = ? AND ticket_id = ?",
                         (event, ticket_id)).fetchone()
        return (Listing(*row[:12]), row[12]) if row else None

    @staticmethod
    def put_deal(tx: sqlite3.Connection, d: WalletDeal, now: float) -> None:
        tx.execute("INSERT INTO deals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (d.txn, d.role, d.event, d.ticket_id, d.other, d.boxoffice, d.seed, d.mode, d.amount, d.currency,
                    d.state, now))

    @staticmethod
    def deal(tx: sqlite3.Connection, txn: str, role: str) -> WalletDeal | None:
        row = tx.execute("SELECT txn, role, event, ticket_id, other, boxoffice, seed, mode, amount, currency, state"
                         " FROM deals WHERE txn = ? AND role = ?", (txn, role)).fetchone()
        return WalletDeal(*row) if row else None

    @staticmethod
    def set_deal(tx: sqlite3.Connection, txn: str, role: str, now: float, **fields: object) -> None:
        names = ", ".join(f"{k} = ?" for k in fields)  # keys are our own identifiers, never input
        tx.execute(f"UPDATE deals SET {names}, updated = ? WHERE txn = ? AND role = ?", (*fields.values(), now, txn, role))

    @staticmethod
    def hold_ticket(tx: sqlite3.Connection, held: Held, now: float) -> None:
        tx.execute("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, 'held', ?) ON CONFLICT (event, ticket_id) DO UPDATE"
                   " SET generation = excluded.generation, text = excluded.text, seed = excluded.seed,"
                   " txn = excluded.txn, state = 'held', at = excluded.at WHERE excluded.generation > generation",
                   (held.event, held.ticket_id, held.generation, held.text, held.seed, held.txn, now))

    @staticmethod
    def ticket(tx: sqlite3.Connection, event: str, ticket_id: str) -> Held | None:
        row = tx.execute("SELECT event, ticket_id, generation, text, seed, txn, state FROM tickets"
                         " WHERE event = ? AND ticket_id = ?", (event, ticket_id)).fetchone()
        return Held(*row) if row else None

    @staticmethod
    def let_go(tx: sqlite3.Connection, event: str, ticket_id: str, below: int) -> None:
        """Mark a ticket gone once a generation `below` or newer holds it elsewhere."""
        tx.execute("UPDATE tickets SET state = 'gone' WHERE event = ? AND ticket_id = ? AND generation < ?",
                   (event, ticket_id, below))


class Service:
    """A wallet's box office and agent URLs, and its mailbox: the messages read so far."""

    @staticmethod
    def connect(tx: sqlite3.Connection, boxoffice_url: str, boxoffice: str, agent_url: str) -> None:
        tx.execute("INSERT INTO service VALUES (1, ?, ?, ?) ON CONFLICT (one) DO UPDATE SET"
                   " boxoffice_url = excluded.boxoffice_url, boxoffice = excluded.boxoffice,"
                   " agent_url = excluded.agent_url", (boxoffice_url, boxoffice, agent_url))

    @staticmethod
    def get(tx: sqlite3.Connection) -> tuple[str, str, str] | None:
        """(box office URL, its pinned chain id, agent URL), or None if this wallet works with files only."""
        row = tx.execute("SELECT boxoffice_url, boxoffice, agent_url FROM service").fetchone()
        return (row[0], row[1], row[2]) if row else None

    @staticmethod
    def keep(tx: sqlite3.Connection, seq: int, message: str, now: float) -> None:
        """A mailbox message applied here; the mailbox is read after `seq` from now on."""
        tx.execute("INSERT INTO inbox VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (seq, message, now))

    @staticmethod
    def inbox(tx: sqlite3.Connection) -> list[str]:
        return [r[0] for r in tx.execute("SELECT message FROM inbox ORDER BY seq")]

    @staticmethod
    def after(tx: sqlite3.Connection) -> int:
        return int(tx.execute("SELECT coalesce(max(seq), 0) FROM inbox").fetchone()[0])


class Payments:
    """A payment agent's payments: one per (txn, payer)."""

    @staticmethod
    def record(tx: sqlite3.Connection, txn: str, payer: str, payee: str, amount: int, currency: str,
               at: float) -> bool:
        """False if this payer paid this txn already."""
        return bool(tx.execute("INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                               (txn, payer, payee, amount, currency, at)).rowcount)


class Mailbox:
    """The box office's mailboxes: messages waiting for a party, numbered; the same message is kept once."""

    @staticmethod
    def put(tx: sqlite3.Connection, recipient: str, message: str, digest: str, now: float) -> int:
        """Keep a message for `recipient` (once per digest); its sequence number."""
        tx.execute("INSERT INTO mailbox (recipient, digest, message, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                   (recipient, digest, message, now))
        return int(tx.execute("SELECT seq FROM mailbox WHERE recipient = ? AND digest = ?",
                              (recipient, digest)).fetchone()[0])

    @staticmethod
    def waiting(tx: sqlite3.Connection, recipient: str) -> int:
        return int(tx.execute("SELECT count(*) FROM mailbox WHERE recipient = ?", (recipient,)).fetchone()[0])


@dataclass(frozen=True)
class Charge:
    """A payment the agent holds until the box office says the ticket moved (settled) or not (refunded)."""

    txn: str
    payer: str
    payee: str
    boxoffice: str
    amount: int
    currency: str
    state: str
    delivered: bool


class Charges:
    """A payment agent's held payments, one per transaction."""

    @staticmethod
    def capture(tx: sqlite3.Connection, c: Charge, now: float) -> bool:
        """False if the transaction was charged already."""
        return bool(tx.execute("INSERT INTO charges VALUES (?, ?, ?, ?, ?, ?, 'held', 0, ?, ?) ON CONFLICT DO NOTHING",
                               (c.txn, c.payer, c.payee, c.boxoffice, c.amount, c.currency, now, now)).rowcount)

    @staticmethod
    def get(tx: sqlite3.Connection, txn: str) -> Charge | None:
        row = tx.execute("SELECT txn, payer, payee, boxoffice, amount, currency, state, delivered FROM charges"
                         " WHERE txn = ?", (txn,)).fetchone()
        return Charge(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7])) if row else None

    @staticmethod
    def decide(tx: sqlite3.Connection, txn: str, state: str, now: float) -> bool:
        """held -> settled or refunded (once); False if it was decided already."""
        return tx.execute("UPDATE charges SET state = ?, updated = ? WHERE txn = ? AND state = 'held'",
                          (state, now, txn)).rowcount == 1

    @staticmethod
    def delivered(tx: sqlite3.Connection, txn: str) -> None:
        tx.execute("UPDATE charges SET delivered = 1 WHERE txn = ?", (txn,))

    @staticmethod
    def pending(tx: sqlite3.Connection) -> list[str]:
        """Transactions whose notice or outcome has not reached its parties yet."""
        return [r[0] for r in tx.execute("SELECT txn FROM charges WHERE delivered = 0 ORDER BY at")]
