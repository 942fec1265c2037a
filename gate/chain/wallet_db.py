"""The wallet's tables: the catalogs it trusts, its deals in progress, the tickets it holds.

The code seed of each ticket lives here (and only here): the file is 0600
(gate.chain.db) and nothing derived from the seed leaves the wallet but the
anchor (in requests) and one back-step value per shown code.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from gate.chain.db import PARTY_MIGRATION, Migration
from gate.chain.protocol import Listing

MIGRATIONS: list[Migration] = [PARTY_MIGRATION, (2, "wallet: catalog, deals, tickets", (
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
))]


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


def remember(tx: sqlite3.Connection, item: Listing, boxoffice: str) -> None:
    tx.execute("INSERT INTO catalog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event, ticket_id) DO UPDATE"
               " SET state = excluded.state, price = excluded.price",
               (item.event, item.ticket_id, item.seat, item.price, item.currency, item.valid_from, item.valid_until,
                item.slot, item.slots, item.state, boxoffice))


def listing(tx: sqlite3.Connection, event: str, ticket_id: str) -> tuple[Listing, str] | None:
    row = tx.execute("SELECT event, ticket_id, seat, price, currency, valid_from, valid_until, slot, slots, state,"
                     " boxoffice FROM catalog WHERE event = ? AND ticket_id = ?", (event, ticket_id)).fetchone()
    return (Listing(*row[:10]), row[10]) if row else None


def put_deal(tx: sqlite3.Connection, d: WalletDeal, now: float) -> None:
    tx.execute("INSERT INTO deals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (d.txn, d.role, d.event, d.ticket_id, d.other, d.boxoffice, d.seed, d.mode, d.amount, d.currency,
                d.state, now))


def deal(tx: sqlite3.Connection, txn: str, role: str) -> WalletDeal | None:
    row = tx.execute("SELECT txn, role, event, ticket_id, other, boxoffice, seed, mode, amount, currency, state"
                     " FROM deals WHERE txn = ? AND role = ?", (txn, role)).fetchone()
    return WalletDeal(*row) if row else None


def set_deal(tx: sqlite3.Connection, txn: str, role: str, now: float, **fields: object) -> None:
    names = ", ".join(f"{k} = ?" for k in fields)  # keys are our own identifiers, never input
    tx.execute(f"UPDATE deals SET {names}, updated = ? WHERE txn = ? AND role = ?", (*fields.values(), now, txn, role))


def hold_ticket(tx: sqlite3.Connection, held: Held, now: float) -> None:
    tx.execute("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, 'held', ?) ON CONFLICT (event, ticket_id) DO UPDATE"
               " SET generation = excluded.generation, text = excluded.text, seed = excluded.seed,"
               " txn = excluded.txn, state = 'held', at = excluded.at WHERE excluded.generation > generation",
               (held.event, held.ticket_id, held.generation, held.text, held.seed, held.txn, now))


def ticket(tx: sqlite3.Connection, event: str, ticket_id: str) -> Held | None:
    row = tx.execute("SELECT event, ticket_id, generation, text, seed, txn, state FROM tickets"
                     " WHERE event = ? AND ticket_id = ?", (event, ticket_id)).fetchone()
    return Held(*row) if row else None


def let_go(tx: sqlite3.Connection, event: str, ticket_id: str, below: int) -> None:
    """Mark a ticket gone once a generation `below` or newer holds it elsewhere."""
    tx.execute("UPDATE tickets SET state = 'gone' WHERE event = ? AND ticket_id = ? AND generation < ?",
               (event, ticket_id, below))
