"""Back-step chains, blocks and sealing: the pieces under the flows."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate.backstep import anchor_of, forward, reaches
from gate.ownership import seal
from gate.ownership.block import Block, Message
from gate.ownership.exc import BadBackStep, BadSeal, ChainExhausted, ForgedIdentity, MalformedBlock
from gate.ownership.ladder import Ladder
from gate.ownership.party import Party
from gate.ownership.store import PARTY_MIGRATION, open_db

SEED, SALT = bytes(range(16)), bytes(range(16, 32))


def plain(x: bytes, salt: bytes, start: int, steps: int) -> bytes:
    for p in range(start + 1, start + steps + 1):
        x = hashlib.sha256(b"QGSTEP1\x00" + salt + struct.pack(">H", p) + x).digest()[:16]
    return x


@pytest.mark.parametrize("n", [1, 255, 256, 257, 1000, 65535])
def test_ladder_values_are_the_chain_at_every_checkpoint_edge(n: int) -> None:
    ladder = Ladder(SEED, SALT, n)
    assert ladder.anchor == plain(SEED, SALT, 0, n) == anchor_of(SEED, SALT, n)
    for k in sorted({0, 1, n // 2, n - 256, n - 255, n - 1, n} & set(range(n + 1))):
        assert ladder.value(k) == plain(SEED, SALT, 0, n - k), k
    with pytest.raises(ChainExhausted):
        ladder.value(n + 1)


@given(st.integers(2, 600), st.data())
def test_any_value_reaches_any_earlier_one_and_nothing_else(n: int, data: st.DataObject) -> None:
    ladder = Ladder(SEED, SALT, n, every=16)
    k = data.draw(st.integers(1, n))
    j = data.draw(st.integers(0, k - 1))
    assert reaches(ladder.value(k), k, ladder.value(j), j, SALT, n)
    assert not reaches(ladder.value(k), k, ladder.value(j), j, bytes(16), n)  # another chain's salt
    if k < n:
        assert not reaches(ladder.value(k), k + 1, ladder.value(j), j, SALT, n)  # an index off by one
    assert not reaches(ladder.value(j), k, ladder.value(k), j, SALT, n)  # the wrong way round


def test_reaches_is_false_not_an_error_for_nonsense() -> None:
    v = Ladder(SEED, SALT, 10).value(3)
    for args in [(v, 3, v, 3), (v, 11, v, 0), (v[:15], 3, v, 0), (v, 3, v, -1), (v, 70000, v, 0)]:
        assert reaches(*args, SALT, 10) is False
    with pytest.raises(ValueError):
        forward(v, SALT, 65535, 1)


def test_a_block_round_trips_and_a_bad_one_is_malformed(tmp_path: Path) -> None:
    db = open_db(tmp_path / "p.db", [PARTY_MIGRATION])
    party = Party.create(db, "p", "wallet")
    block = party.identity_block
    assert Block.from_json(json.loads(json.dumps(block.to_json()))) == block
    assert Message.loads(Message((block,)).dumps()).blocks == (block,)
    for bad in ["", "[]", '{"format": "qrgate-blocks/1", "blocks": [{}]}',
                json.dumps({"format": "qrgate-blocks/1", "blocks": [{**block.to_json(), "extra": 1}]}),
                json.dumps({"format": "qrgate-blocks/1", "blocks": [{**block.to_json(), "index": -1}]}),
                json.dumps({"format": "qrgate-blocks/1", "blocks": [{**block.to_json(), "chain": "XYZ"}]})]:
        with pytest.raises(MalformedBlock):
            Message.loads(bad)
    with pytest.raises(ForgedIdentity):  # the id is the hash of the identity: another name, another id
        dataclasses.replace(block, body=block.body.replace(b'"p"', b'"q"')).identity()


def test_the_owner_checks_its_own_chain_links(tmp_path: Path) -> None:
    db = open_db(tmp_path / "a.db", [PARTY_MIGRATION])
    a = Party.create(db, "a", "wallet")
    other = Party.create(open_db(tmp_path / "b.db", [PARTY_MIGRATION]), "b", "wallet")
    with db.transaction() as tx:
        a.learn(tx, other.identity_block)
        for i in range(5):
            a.append(tx, to=other.chain, txn="aa" * 16, app="test", kind="note", payload={"i": i})
    assert a.check_own_chain() == 6
    with db.transaction() as tx:  # rewrite history: block 3 now claims another predecessor
        row = tx.execute("SELECT hash, block FROM blocks WHERE chain = ? AND idx = 3", (a.chain,)).fetchone()
        forged = {**json.loads(row[1]), "prev": "00" * 32}
        tx.execute("UPDATE blocks SET block = ? WHERE hash = ?", (json.dumps(forged), row[0]))
    with pytest.raises(BadBackStep):
        a.check_own_chain()


def test_each_pair_and_application_has_its_own_key() -> None:
    a, b, c = (seal.new_dh_private() for _ in range(3))
    ab = seal.app_key(a, seal.dh_public(b), "qrgate.resale", "aa", "bb")
    assert ab == seal.app_key(b, seal.dh_public(a), "qrgate.resale", "bb", "aa")
    assert ab != seal.app_key(a, seal.dh_public(b), "qrgate.ticket", "aa", "bb")
    assert ab != seal.app_key(c, seal.dh_public(b), "qrgate.resale", "cc", "bb")
    nonce = seal.new_nonce()
    body = seal.seal(ab, nonce, b"header", {"amount": 4000})
    assert seal.unseal(ab, nonce, b"header", body) == {"amount": 4000}
    with pytest.raises(BadSeal) as wrong:
        seal.unseal(ab, nonce, b"other header", body)
    assert wrong.value.code == "bad_seal"
