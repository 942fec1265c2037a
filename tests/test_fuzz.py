"""Hostile input: no exception escapes the decision path, and nothing bad is ever ADMIT."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import mint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.base45 import ALPHABET, b45decode, b45encode
from gate.decide import Decider
from gate.keys import IssuerKey, Keyring
from gate.outcomes import Outcome, Reason
from gate.ticket import Ticket
from gate.verify import Verifier

NOW = 1_800_000_000.0
KEY = IssuerKey("0a1b2c3d", "hmac", "show7", bytes(range(32)), 0.0)
RETIRED = IssuerKey("0badc0de", "hmac", "show7", bytes(32), 0.0, retired=True)
OTHER_EVENT = IssuerKey("5e5e5e5e", "hmac", "show8", bytes(range(1, 33)), 0.0)
UNKNOWN = IssuerKey("99999999", "hmac", "show7", bytes(range(2, 34)), 0.0)


def fuzz_verifier() -> Verifier:
    ring = Keyring([KEY.verify_key(), RETIRED.verify_key(), OTHER_EVENT.verify_key()])
    return Verifier(ring, events=("show7",), skew=60, clock=lambda: NOW)


@pytest.fixture
def decider(store: object) -> Decider:
    return Decider(fuzz_verifier(), store, "gate-1", clock=lambda: NOW)  # type: ignore[arg-type]


def valid() -> str:
    return KEY.sign(Ticket(event="show7", ticket_id="9f2", seat="12B"))


def raw_ticket(body_hex: str, tag: bytes = bytes(16)) -> str:
    return "QG:" + b45encode(bytes.fromhex(body_hex) + tag)


NAMED: dict[str, tuple[str, Reason]] = {
    "empty": ("", Reason.MALFORMED),
    "prefix only": ("QG:", Reason.MALFORMED),
    "longer than a version-40 QR holds": ("QG:" + "A" * 4300, Reason.MALFORMED),
    "invalid Base45 triplet": ("QG:GGW" + valid()[6:], Reason.MALFORMED),
    "Base45 length 1 mod 3": (valid() + "A", Reason.MALFORMED),
    "NUL bytes": (valid()[:10] + "\x00" + valid()[11:], Reason.MALFORMED),
    "NUL only": ("\x00" * 64, Reason.MALFORMED),
    "lowercase": (valid().lower(), Reason.MALFORMED),
    "unicode look-alike (Cyrillic A)": (valid().replace("A", "\u0410", 1) if "A" in valid() else "QG:\u0410", Reason.MALFORMED),
    "unicode look-alike (fullwidth digits)": ("QG:" + "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in valid()[3:]), Reason.MALFORMED),
    "truncated tag": ("QG:" + b45encode(b45decode(valid()[3:])[:-1]), Reason.MALFORMED),
    "tag cut to 8 bytes": ("QG:" + b45encode(b45decode(valid()[3:])[:-8]), Reason.MALFORMED),
    "body only": ("QG:" + b45encode(b45decode(valid()[3:])[:-16]), Reason.MALFORMED),
    "SQL-like": ("'; DROP TABLE redeemed; --", Reason.MALFORMED),
    "SQL-like in the ticket id": (KEY.sign(Ticket(event="show7", ticket_id="'); DELETE FROM redeemed;--")), Reason.NONE),
    "base64 instead of base45": ("QG:AQEKGyw9BXNob3c3AzlmMgMxMkI=", Reason.MALFORMED),
    "unknown key id": (UNKNOWN.sign(Ticket(event="show7", ticket_id="9f2")), Reason.UNKNOWN_KEY),
    "retired key id": (RETIRED.sign(Ticket(event="show7", ticket_id="9f2")), Reason.RETIRED_KEY),
    "wrong event (other event's key)": (OTHER_EVENT.sign(Ticket(event="show8", ticket_id="9f2")), Reason.WRONG_EVENT),
    "event field swapped under the key": (KEY.sign(Ticket(event="show8", ticket_id="9f2")), Reason.WRONG_EVENT),
    "not yet valid": (KEY.sign(Ticket(event="show7", ticket_id="9f2", valid_from=int(NOW) + 3600)), Reason.NOT_YET_VALID),
    "expired": (KEY.sign(Ticket(event="show7", ticket_id="9f2", valid_until=int(NOW) - 3600)), Reason.EXPIRED),
    "extreme valid_from (2**40-1)": (KEY.sign(Ticket(event="show7", ticket_id="9f2", valid_from=2**40 - 1)), Reason.NOT_YET_VALID),
    "extreme valid_until (1 s after epoch)": (KEY.sign(Ticket(event="show7", ticket_id="9f2", valid_until=1)), Reason.EXPIRED),
    "timestamp past 2**40": (raw_ticket("011c0a1b2c3d0573686f77370339663200" + "ffffffffffffff7f"), Reason.MALFORMED),
    "non-canonical varint": (raw_ticket("01150a1b2c3d0573686f77370339663200" + "8000"), Reason.MALFORMED),
    "zero flagged field": (raw_ticket("01150a1b2c3d0573686f77370339663200" + "00"), Reason.MALFORMED),
    "reserved flag bits": (raw_ticket("01c10a1b2c3d0573686f773703396632" + "00"), Reason.MALFORMED),
    "version 2": (raw_ticket("02010a1b2c3d0573686f773703396632" + "00"), Reason.MALFORMED),
    "unknown scheme 3": (raw_ticket("01030a1b2c3d0573686f773703396632" + "00"), Reason.MALFORMED),
    "unknown critical extension": (raw_ticket("01210a1b2c3d0573686f77370339663200" + "01" + "8100"), Reason.MALFORMED),
    "window upside down": (raw_ticket("010d0a1b2c3d0573686f77370339663200" + "0a" + "05"), Reason.MALFORMED),
    "length past the end": (raw_ticket("01010a1b2c3d" + "ff73686f7737"), Reason.MALFORMED),
    "invalid UTF-8 in event": (raw_ticket("01010a1b2c3d" + "02c328" + "0339663200"), Reason.MALFORMED),
    "control char in seat": (raw_ticket("01010a1b2c3d0573686f7737033966320107"), Reason.MALFORMED),
    "Ed25519 scheme with an HMAC-sized tag": (raw_ticket("01020a1b2c3d0573686f77370339663200"), Reason.MALFORMED),
    "newline inside": (valid()[:20] + "\n" + valid()[20:], Reason.MALFORMED),
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_bad_input(decider: Decider, name: str) -> None:
    text, reason = NAMED[name]
    decision = decider.decide(text)
    if reason is Reason.NONE:  # a genuine ticket whose fields look hostile: stored as data, not run as SQL
        assert decision.outcome is Outcome.ADMIT
        assert decider.decide(text).outcome is Outcome.ALREADY_USED
        assert decider.store.is_redeemed("show7", "'); DELETE FROM redeemed;--")
        return
    assert decision.outcome is Outcome.INVALID, name
    assert decision.reason is reason, (name, decision.detail)
    assert not decider.store.redeemed_keys()
    assert decider.store.history(decision.ticket_id or "")[-1:] or decision.ticket_id is None


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.one_of(
    st.text(max_size=300),
    st.text(alphabet=ALPHABET, max_size=200).map(lambda s: "QG:" + s),
    st.binary(max_size=150).map(lambda b: "QG:" + b45encode(b)),
    st.binary(max_size=150).map(lambda b: "QG:" + b45encode(bytes.fromhex("01010a1b2c3d") + b)),
    st.tuples(st.integers(0, 60), st.binary(min_size=1, max_size=3)).map(
        lambda t: "QG:" + b45encode(splice(b45decode(valid()[3:]), *t))),
))
def test_fuzz_never_raises_never_admits(decider: Decider, text: str) -> None:
    decision = decider.decide(text)
    assert decision.outcome is Outcome.INVALID
    assert decision.reason is not Reason.NONE


def splice(raw: bytes, at: int, chunk: bytes) -> bytes:
    at %= len(raw)
    out = raw[:at] + chunk + raw[at + len(chunk):]
    return out if out != raw else raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:]


def test_fuzz_ed25519_bytes_never_admit(make_decider: Callable[..., Decider]) -> None:
    key = IssuerKey.new("show7", "ed25519")
    decider = make_decider(key)
    raw = b45decode(mint(key)[3:])
    for i in range(0, len(raw), 3):
        for flip in (1, 0x80, 0xFF):
            text = "QG:" + b45encode(raw[:i] + bytes([raw[i] ^ flip]) + raw[i + 1:])
            assert decider.decide(text).outcome is Outcome.INVALID
