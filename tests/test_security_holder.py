"""A ticket sold to a holder's wallet needs its holder code: a plain copy is refused (issue 12).

Before holder-only keys, a plain `QG:` ticket with a holder ticket's id was admitted by every gate, so the
rotating code (and with it the resale protections) could be skipped by whoever could get such a copy.
"""

from __future__ import annotations

import json
from pathlib import Path

from gate.backstep import anchor_of, code_salt, new_seed
from gate.holder import HolderTerms, code_for, present, with_terms
from gate.keys import IssuerKey, Keyring, KeyStore, VerifyKey
from gate.outcomes import Reason
from gate.ticket import Ticket
from gate.verify import Verifier

T0 = 1.8e9


def holder_code(key: IssuerKey, ticket_id: str) -> str:
    seed, slots = new_seed(), 96
    terms = HolderTerms(anchor_of(seed, code_salt("show7", ticket_id), slots), int(T0), 15, slots)
    ticket = with_terms(Ticket(event="show7", ticket_id=ticket_id), terms)
    return present(key.sign(ticket), code_for(seed, ticket, terms, T0 + 60))


def test_a_holder_only_key_refuses_a_plain_copy_and_admits_the_holders_code() -> None:
    key = IssuerKey.new("show7", holder_only=True)
    check = Verifier(Keyring([key.verify_key()]), clock=lambda: T0 + 60)
    plain = check.verify(key.sign(Ticket(event="show7", ticket_id="9f2")))
    assert plain.reason is Reason.BAD_BACKSTEP and "holder tickets only" in plain.detail
    assert check.verify(holder_code(key, "9f2")).ok
    ordinary = IssuerKey.new("show7")  # keys without the flag: plain tickets as ever
    assert Verifier(Keyring([ordinary.verify_key()]), clock=lambda: T0).verify(
        ordinary.sign(Ticket(event="show7", ticket_id="9f2"))).ok


def test_the_flag_travels_in_the_exported_keyring_and_old_keyrings_load_without_it(tmp_path: Path) -> None:
    issuer = KeyStore(tmp_path / "issuer")
    issuer.add_issuer_key(IssuerKey.new("show7", holder_only=True))
    issuer.export("show7", tmp_path / "show7.keyring.json")
    gate = KeyStore(tmp_path / "gate")
    gate.import_keyring(tmp_path / "show7.keyring.json")
    assert [k.holder_only for k in gate.keyring()] == [True]
    exported = json.loads((tmp_path / "show7.keyring.json").read_text())["keys"][0]
    old = {k: v for k, v in exported.items() if k != "holder_only"}  # a keyring written before the flag
    assert VerifyKey.from_json(old).holder_only is False


def test_gate_keys_new_holder_only_and_mint_refuses_a_plain_ticket(gate_cli) -> None:  # type: ignore[no-untyped-def]
    made = gate_cli("keys", "new", "--event", "show7", "--holder-only")
    assert made.returncode == 0 and " ed25519 " in made.stdout, made.stderr
    assert "holder-only" in gate_cli("keys", "list").stdout
    minted = gate_cli("mint", "--event", "show7", "--id", "9f2")
    assert minted.returncode == 2 and "holder-only" in minted.stderr and minted.stdout == ""
