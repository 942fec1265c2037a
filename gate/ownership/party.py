"""A party: its own back-step chain, and the chains of the parties it knows.

What a caller may rely on:

* `append` and `receive` run inside a caller's `Database.transaction()`, so a
  block is written or accepted in the same commit as the state change it
  carries (the box office's compare-and-set, a wallet's new ticket).
* `append` gives each block the next index of the own chain, its back-step
  value, the hash of the previous block and a payload sealed for the
  recipient under the application's key.
* `receive` accepts a block only if it is addressed to this party, its chain
  is known (`learn` its identity block first), no other block of that chain
  was accepted here at the same index (else `replayed`: an old back-step value
  reused), its value hashes forward to the nearest lower value verified here
  (the anchor at first contact: else `forged_identity`; later: `bad_backstep`)
  and its payload opens (else `bad_seal`).  Each failure raises its own
  ChainError with a stable `code` and records nothing.  Blocks of one chain may
  arrive in any order (other transactions sit between them); the same block
  delivered again is not an error: it comes back with ``fresh=False``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gate.backstep import MAX_N, new_seed, reaches
from gate.ownership import seal
from gate.ownership.block import Block, Identity, Json, Message, canonical
from gate.ownership.exc import (
    BadBackStep,
    BadSeal,
    ChainError,
    ForgedIdentity,
    MalformedBlock,
    NotForMe,
    Replayed,
    UnknownChain,
    WrongChain,
)
from gate.ownership.ladder import Ladder
from gate.ownership.store import Chains
from gate.sqlite import Database


@dataclass(frozen=True)
class Known:
    """A chain this party has seen the identity of; `trusted` names a role it was told to trust."""

    identity: Identity
    trusted: str
    last_index: int

    @property
    def chain(self) -> str:
        return self.identity.chain


@dataclass(frozen=True)
class Received:
    """A block accepted by `receive`, with its sender and its opened payload."""

    block: Block
    sender: Known
    payload: Json
    fresh: bool = True

    def field(self, key: str, kind: type = str) -> Any:
        """A payload field of the given type; MalformedBlock if absent or of another type."""
        value = self.payload.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise MalformedBlock(f"{self.block.kind} block: {key!r} must be a {kind.__name__}, not {value!r}")
        return value


class Party:
    """One party's chain in its file (gate.ownership.store.open_db) (create once with `Party.create`, then `Party.load`)."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        row = db.conn.execute("SELECT seed, dh_private, identity FROM self").fetchone()
        if row is None:
            raise ChainError(f"{db.path}: no identity yet (create one first)")
        self.db = db
        self.clock = clock
        self.identity_block = Block.from_json(json.loads(row[2]))
        self.identity = self.identity_block.identity()
        self.chain = self.identity.chain
        self._dh_private = bytes(row[1])
        self.ladder = Ladder(bytes(row[0]), self.identity.salt, self.identity.n)

    @classmethod
    def create(cls, db: Database, name: str, role: str, *, n: int = MAX_N,
               clock: Callable[[], float] = time.time) -> Party:
        """Draw a seed, salt and key-agreement key; store block 0.  ChainError if one exists."""
        seed, salt, dh_private = new_seed(), new_seed(), seal.new_dh_private()
        signs = seal.sign_public(dh_private) if role == "boxoffice" else b""  # its catalog is signed
        identity = Identity(name, role, Ladder(seed, salt, n).anchor, salt, n, seal.dh_public(dh_private), signs)
        block = Block.of_identity(identity, int(clock()))
        with db.transaction() as tx:
            if tx.execute("SELECT 1 FROM self").fetchone():
                raise ChainError(f"{db.path}: this party already has an identity")
            Chains.create_self(tx, identity.chain, seed, dh_private, json.dumps(block.to_json()), block.hash)
            _store(tx, block, {"identity": identity.to_json()}, clock())
        return cls(db, clock)

    def sign(self, data: bytes) -> bytes:
        """An Ed25519 signature under the key this party's identity publishes (`sign`: box offices only)."""
        if not self.identity.sign:
            raise ChainError(f"{self.identity.name}'s identity publishes no signing key")
        return seal.sign(self._dh_private, data)

    # knowing others ------------------------------------------------------------------------
    def learn(self, tx: sqlite3.Connection, block: Block, trusted: str = "") -> Known:
        """Know the chain of identity block `block` (trusting it as `trusted`, if given)."""
        identity = block.identity()
        if trusted and identity.role != trusted:
            raise WrongChain(f"{identity.name} ({identity.chain}) is a {identity.role}, not a {trusted}")
        Chains.learn(tx, identity.chain, json.dumps(identity.to_json()), identity.role, identity.anchor, trusted)
        known = self.known(tx, identity.chain)
        assert known is not None
        return known

    def learn_all(self, tx: sqlite3.Connection, message: Message) -> None:
        for block in message.identities():
            if block.chain != self.chain:
                self.learn(tx, block)

    @staticmethod
    def known(tx: sqlite3.Connection, chain: str) -> Known | None:
        row = tx.execute("SELECT identity, trusted, last_index FROM parties WHERE chain = ?", (chain,)).fetchone()
        return Known(Identity.from_json(json.loads(row[0])), row[1], row[2]) if row else None

    def trusted(self, tx: sqlite3.Connection, role: str) -> list[Known]:
        rows = tx.execute("SELECT chain FROM parties WHERE trusted = ? ORDER BY chain", (role,)).fetchall()
        return [k for (chain,) in rows if (k := self.known(tx, chain)) is not None]

    # writing -------------------------------------------------------------------------------
    def append(self, tx: sqlite3.Connection, *, to: str, txn: str, app: str, kind: str, payload: Json) -> Block:
        """Write the next block of the own chain, sealed for chain `to` (which must be known)."""
        index, head = tx.execute("SELECT next_index, head FROM self").fetchone()
        other = self.known(tx, to)
        if other is None:
            raise UnknownChain(f"cannot write to chain {to}: its identity is unknown here")
        nonce = seal.new_nonce()
        draft = Block(chain=self.chain, index=index, value=self.ladder.value(index).hex(), prev=head, txn=txn,
                      app=app, kind=kind, to=to, at=int(self.clock()), nonce=nonce.hex(), body=b"")
        key = seal.app_key(self._dh_private, other.identity.dh, app, self.chain, to)
        block = dataclasses.replace(draft, body=seal.seal(key, nonce, draft.header(), payload))
        Chains.advance(tx, index + 1, block.hash)
        _store(tx, block, payload, self.clock())
        return block

    # reading -------------------------------------------------------------------------------
    def receive(self, tx: sqlite3.Connection, block: Block) -> Received:
        """Verify and open a block addressed to this party (see the module docstring)."""
        if block.to != self.chain:
            raise NotForMe(f"block {block.chain}/{block.index} is addressed to {block.to or 'nobody'}")
        sender = self.known(tx, block.chain)
        if sender is None:
            raise UnknownChain(f"chain {block.chain} is unknown here: its identity block must come first")
        same = tx.execute("SELECT hash, payload FROM blocks WHERE chain = ? AND idx = ?",
                          (block.chain, block.index)).fetchone()
        ident = sender.identity
        if same is not None:
            if same[0] == block.hash:
                return Received(block, sender, json.loads(same[1]), fresh=False)
            raise Replayed(f"index {block.index} of {ident.name} was used here already, by another block")
        below = tx.execute("SELECT idx, value FROM blocks WHERE chain = ? AND idx < ? ORDER BY idx DESC LIMIT 1",
                           (block.chain, block.index)).fetchone()
        base_index, base_value = (below[0], bytes(below[1])) if below else (0, ident.anchor)
        if not reaches(block.value_bytes, block.index, base_value, base_index, ident.salt, ident.n):
            if sender.last_index == 0:
                raise ForgedIdentity(f"block {block.index} does not step back to the anchor of {ident.name}")
            raise BadBackStep(f"block {block.index} does not step back to block {base_index} of {ident.name}")
        key = seal.app_key(self._dh_private, ident.dh, block.app, self.chain, block.chain)
        try:
            payload = seal.unseal(key, bytes.fromhex(block.nonce), block.header(), block.body)
        except BadSeal as exc:
            raise BadSeal(f"block {block.index} of {ident.name}: {exc}") from None
        Chains.verified(tx, block.chain, block.index)
        _store(tx, block, payload, self.clock())
        return Received(block, self.known(tx, block.chain) or sender, payload)

    def blocks(self, tx: sqlite3.Connection, txn: str) -> list[Block]:
        """Every stored block (own and received) of one transaction."""
        rows = tx.execute("SELECT block FROM blocks WHERE txn = ? ORDER BY stored_at, chain, idx", (txn,))
        return [Block.from_json(json.loads(r[0])) for r in rows]

    def check_own_chain(self) -> int:
        """Check every own block's value and hash link; return the count.  BadBackStep on any break."""
        rows = self.db.rows("SELECT block FROM blocks WHERE chain = ? ORDER BY idx", (self.chain,))
        blocks = [Block.from_json(json.loads(str(r["block"]))) for r in rows]
        for before, block in itertools.pairwise(blocks):
            ok = block.index == before.index + 1 and block.prev == before.hash and reaches(
                block.value_bytes, block.index, before.value_bytes, before.index, self.identity.salt, self.identity.n)
            if not ok:
                raise BadBackStep(f"own chain breaks at block {block.index}")
        return len(blocks)


def _store(tx: sqlite3.Connection, block: Block, payload: Json, at: float) -> None:
    Chains.store_block(tx, (block.hash, block.chain, block.index, block.value_bytes, block.txn, block.app, block.kind,
                            block.to, json.dumps(block.to_json()), canonical(payload).decode(), at))
