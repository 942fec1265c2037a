"""The box office's tables: inventory with its current holder, deals in progress, supersessions.

Every write here runs inside the caller's transaction.  The double-sale guard
is in `take`, `sell`, `hold` and `hand_over`: each is one UPDATE that
compare-and-sets the ticket row on (state, holder, generation, pending deal),
inside a ``BEGIN IMMEDIATE`` transaction, so of two concurrent attempts on one
ticket exactly one matches a row and the other sees a count of 0.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from gate.chain.db import PARTY_MIGRATION, Migration
from gate.chain.protocol import CodeRequest, Listing

MIGRATIONS: list[Migration] = [PARTY_MIGRATION, (2, "box office: inventory, deals, supersessions", (
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
))]


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


def listing(tx: sqlite3.Connection, event: str, ticket_id: str) -> Holding | None:
    row = tx.execute("SELECT event, ticket_id, seat, price, currency, valid_from, valid_until, slot, slots, state,"
                     " holder, generation, pending, pending_until FROM tickets WHERE event = ? AND ticket_id = ?",
                     (event, ticket_id)).fetchone()
    return Holding(Listing(*row[:10]), *row[10:]) if row else None


def add(tx: sqlite3.Connection, item: Listing) -> bool:
    return bool(tx.execute("INSERT INTO tickets (event, ticket_id, seat, price, currency, valid_from, valid_until,"
                           " slot, slots) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           (item.event, item.ticket_id, item.seat, item.price, item.currency, item.valid_from,
                            item.valid_until, item.slot, item.slots)).rowcount)


def take(tx: sqlite3.Connection, event: str, ticket_id: str, txn: str, until: float) -> bool:
    """Reserve an available ticket for a purchase: compare-and-set available -> reserved."""
    return tx.execute("UPDATE tickets SET state = 'reserved', pending = ?, pending_until = ?"
                      " WHERE event = ? AND ticket_id = ? AND state = 'available'",
                      (txn, until, event, ticket_id)).rowcount == 1


def sell(tx: sqlite3.Connection, deal: Deal) -> bool:
    """Reserved by this purchase -> sold to its buyer, generation 1 (compare-and-set)."""
    return tx.execute("UPDATE tickets SET state = 'sold', holder = ?, generation = generation + 1, pending = '',"
                      " pending_until = 0 WHERE event = ? AND ticket_id = ? AND state = 'reserved' AND pending = ?",
                      (deal.buyer, deal.event, deal.ticket_id, deal.txn)).rowcount == 1


def hold(tx: sqlite3.Connection, held: Holding, seller: str, txn: str, until: float) -> bool:
    """Hold a sold ticket for one resale: compare-and-set on (holder, generation, no deal pending)."""
    return tx.execute("UPDATE tickets SET pending = ?, pending_until = ? WHERE event = ? AND ticket_id = ?"
                      " AND state = 'sold' AND holder = ? AND generation = ? AND pending = ''",
                      (txn, until, held.listing.event, held.listing.ticket_id, seller, held.generation)).rowcount == 1


def hand_over(tx: sqlite3.Connection, deal: Deal) -> bool:
    """The held ticket to the buyer with the generation raised (compare-and-set on holder, generation, deal)."""
    return tx.execute("UPDATE tickets SET holder = ?, generation = generation + 1, pending = '', pending_until = 0"
                      " WHERE event = ? AND ticket_id = ? AND state = 'sold' AND holder = ? AND generation = ?"
                      " AND pending = ?", (deal.buyer, deal.event, deal.ticket_id, deal.seller, deal.generation,
                                           deal.txn)).rowcount == 1


def release_pending(tx: sqlite3.Connection, deal: Deal) -> None:
    """Undo a reservation or hold of `deal` (it expired)."""
    if deal.kind == "purchase":
        tx.execute("UPDATE tickets SET state = 'available', pending = '', pending_until = 0"
                   " WHERE event = ? AND ticket_id = ? AND state = 'reserved' AND pending = ?",
                   (deal.event, deal.ticket_id, deal.txn))
    else:
        tx.execute("UPDATE tickets SET pending = '', pending_until = 0 WHERE event = ? AND ticket_id = ?"
                   " AND pending = ?", (deal.event, deal.ticket_id, deal.txn))


def open_deal(tx: sqlite3.Connection, deal: Deal, now: float) -> bool:
    return bool(tx.execute("INSERT INTO deals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                           (deal.txn, deal.kind, deal.event, deal.ticket_id, deal.buyer, deal.seller, deal.generation,
                            deal.state, deal.expires, deal.amount, deal.currency,
                            json.dumps(deal.code.to_json()), now, now)).rowcount)


def deal(tx: sqlite3.Connection, txn: str) -> Deal | None:
    row = tx.execute("SELECT txn, kind, event, ticket_id, buyer, seller, generation, state, expires, amount,"
                     " currency, code FROM deals WHERE txn = ?", (txn,)).fetchone()
    if row is None:
        return None
    return Deal(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
                CodeRequest.from_json(json.loads(row[11])))


def due(tx: sqlite3.Connection, now: float) -> list[Deal]:
    rows = tx.execute("SELECT txn FROM deals WHERE state = 'open' AND expires < ? ORDER BY expires", (now,))
    return [d for (txn,) in rows.fetchall() if (d := deal(tx, txn)) is not None]


def set_state(tx: sqlite3.Connection, txn: str, state: str, now: float) -> None:
    tx.execute("UPDATE deals SET state = ?, updated = ? WHERE txn = ?", (state, now, txn))


def supersede(tx: sqlite3.Connection, event: str, ticket_id: str, generation: int, now: float) -> None:
    tx.execute("INSERT INTO supersessions (event, ticket_id, generation, at) VALUES (?, ?, ?, ?)"
               " ON CONFLICT DO NOTHING", (event, ticket_id, generation, now))
