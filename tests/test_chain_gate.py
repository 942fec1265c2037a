"""The holder's code at the gate: rotating back-step values, screenshots, forgeries, generations, the vector."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import segno
from chain_fixtures import T0, World, listing, make_world, standard_world
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.backstep import code_salt
from gate.base45 import b45decode, b45encode
from gate.decide import Decider
from gate.holder import CODE_PREFIX, SUFFIX_CHARS, Code, HolderTerms, present, split, with_terms
from gate.keys import IssuerKey, Keyring
from gate.outcomes import Outcome, Reason
from gate.ownership.block import canonical
from gate.ownership.boxoffice import Refused
from gate.ownership.gatecheck import OnlineOwnership
from gate.ownership.officeserver import BoxOfficeServer
from gate.ownership.protocol import sign_status
from gate.store import Store
from gate.ticket import Ticket, parse
from gate.verify import Verifier


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from standard_world(tmp_path)

DOC = Path(__file__).resolve().parent.parent / "docs" / "ownership.md"
KEY = IssuerKey("0a1b2c3d", "hmac", "show7", bytes(range(32)), 0.0)


def doc_vector() -> dict[str, object]:
    block = re.search(r"```json\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/ownership.md has no ```json test vector"
    return json.loads(block.group(1))  # type: ignore[no-any-return]


def plain_chain(seed: bytes, salt: bytes, steps: int, start: int = 0) -> bytes:
    """The back-step hash as the doc states it, with hashlib alone."""
    x = seed
    for p in range(start + 1, start + steps + 1):
        x = hashlib.sha256(b"QGSTEP1\x00" + salt + struct.pack(">H", p) + x).digest()[:16]
    return x


def verifier(now: float, skew: int = 1) -> Verifier:
    return Verifier(Keyring([KEY.verify_key()]), clock=lambda: now, code_skew=skew)


def test_documented_vector_recomputed_independently() -> None:
    v = doc_vector()
    seed, slots, start = bytes.fromhex(str(v["code_seed"])), int(v["slots"]), int(v["start"])  # type: ignore[call-overload]
    salt = hashlib.sha256(b"qrgate/code-salt/v1\x00" + b"show7\x00" + b"9f2").digest()[:16]
    assert salt.hex() == v["code_salt"] == code_salt("show7", "9f2").hex()
    anchor = plain_chain(seed, salt, slots)
    assert anchor.hex() == v["anchor"]
    ext = struct.pack(">BHHI", 0, 15, slots, start) + anchor
    assert (bytes([0x82, len(ext)]) + ext).hex() == v["extension_hex"]
    t = (int(v["now"]) - start) // 15 + 1  # type: ignore[call-overload]
    value = plain_chain(seed, salt, slots - t)
    assert (t, value.hex()) == (v["t"], v["v_t"])
    ticket_text = str(v["ticket_text"])
    assert v["qr_text"] == "QH:" + ticket_text[3:] + b45encode(struct.pack(">H", t) + value)
    ticket = parse(ticket_text).ticket
    assert dict(ticket.extensions)[0x82] == ext and ticket.generation == v["generation"]
    assert verifier(float(v["now"])).verify(str(v["qr_text"])).reason is Reason.NONE  # type: ignore[arg-type]


def test_the_code_fits_a_small_alphanumeric_qr() -> None:
    qr_text = str(doc_vector()["qr_text"])
    assert qr_text in (DOC.parent / "ticket-format.md").read_text()  # the extension table shows the same vector
    assert len(qr_text.split(CODE_PREFIX)[1]) > SUFFIX_CHARS == 27
    qr = segno.make_qr(qr_text, error="m", boost_error=False)
    assert (qr.mode, qr.version) == ("alphanumeric", 6)


def test_rotating_code_admitted_in_its_slot_and_skew(world: World) -> None:
    alice = world.wallet("alice")
    world.purchase(alice)
    text, code, terms = alice.code("show7", "9f2")
    assert code.t == 1 and terms.slots == 5760
    for late in (0, 14.9, 15, 29.9):  # its own slot, then the next one (one slot of skew)
        assert verifier(T0 + late).verify(text).reason is Reason.NONE, late
    assert world.gate().decide(text).outcome is Outcome.ADMIT


def test_a_screenshot_presented_after_its_slot_is_stale(world: World) -> None:
    alice = world.wallet("alice")
    world.purchase(alice)
    screenshot = alice.code("show7", "9f2")[0]
    world.clock.advance(31)  # two slots later
    decision = world.gate().decide(screenshot)
    assert (decision.outcome, decision.reason) == (Outcome.INVALID, Reason.STALE_CODE)
    assert "earlier" in decision.detail
    assert not world.store.is_redeemed("show7", "9f2")  # the holder's own live code still gets in
    assert world.scan(alice).outcome is Outcome.ADMIT


def test_a_code_from_the_future_is_stale_and_a_wider_skew_accepts_it(world: World) -> None:
    alice = world.wallet("alice")
    world.purchase(alice)
    future = alice.code("show7", "9f2", now=T0 + 60)[0]  # slot 5 while the gate is in slot 1
    assert verifier(T0).verify(future).reason is Reason.STALE_CODE
    assert verifier(T0, skew=4).verify(future).reason is Reason.NONE


def test_a_forged_or_replayed_value_is_a_bad_backstep(world: World) -> None:
    alice = world.wallet("alice")
    world.purchase(alice)
    text, code, _terms = alice.code("show7", "9f2", now=T0 + 150)  # slot 11
    ticket_text, _ = split(text)
    check = verifier(T0 + 150)
    assert check.verify(present(ticket_text, Code(code.t, bytes(16)))).reason is Reason.BAD_BACKSTEP
    # an old value (slot 1) relabelled as the current slot does not hash to the anchor in 11 steps
    old = alice.code("show7", "9f2", now=T0)[1]
    assert check.verify(present(ticket_text, Code(code.t, old.value))).reason is Reason.BAD_BACKSTEP
    assert check.verify(present(ticket_text, Code(old.t, old.value))).reason is Reason.STALE_CODE
    assert check.verify(ticket_text).reason is Reason.BAD_BACKSTEP  # the signed text alone, no code
    slot0 = CODE_PREFIX + ticket_text[3:] + b45encode(bytes(2) + bytes(16))
    assert check.verify(slot0).reason is Reason.MALFORMED


def test_a_paper_code_is_static_and_single_use(world: World) -> None:
    world.office.add(listing("p1", "1A"), paper=True)  # the box office lets this ticket be printed
    alice = world.wallet("alice")
    world.purchase(alice, "p1", mode="paper")
    printed = alice.code("show7", "p1")[0]
    assert printed == alice.code("show7", "p1", now=T0 + 40000)[0]
    world.clock.advance(40000)  # hours later: still accepted, once
    assert world.gate().decide(printed).outcome is Outcome.ADMIT
    assert world.gate().decide(printed).outcome is Outcome.ALREADY_USED


def test_a_buyer_cannot_choose_a_static_paper_code(world: World) -> None:
    """Paper mode is the box office's decision per ticket (issue 12): a paper code never expires, so a holder
    who picked one could sell a single screenshot many times outside the resale flow."""
    alice = world.wallet("alice")
    with pytest.raises(Refused, match="rotating code only") as refused:
        world.office.handle(alice.buy("show7", "9f2", mode="paper"))
    assert refused.value.code == "no_paper"
    world.purchase(alice)  # the same ticket with a rotating code: sold
    assert world.office.status("show7", "9f2")["state"] == "sold"


def test_an_old_generation_is_revoked_superseded_and_single_use_holds_across_generations(world: World) -> None:
    alice, bob, carol = world.wallet("alice"), world.wallet("bob"), world.wallet("carol")
    world.purchase(alice, "9f2")
    world.purchase(alice, "a11")
    assert world.scan(alice, "a11").outcome is Outcome.ADMIT  # Alice enters with a11 ...
    world.resale(alice, bob, 4000, "a11")  # ... then sells it on
    world.resale(alice, carol, 4000, "9f2")
    world.publish_generations()
    assert world.store.generation("show7", "9f2") == 2
    assert world.scan(bob, "a11").outcome is Outcome.ALREADY_USED  # one entry per ticket, whoever holds it
    assert world.scan(carol, "9f2").outcome is Outcome.ADMIT
    history = world.store.history("9f2", "show7")
    assert [h["outcome"] for h in history] == ["ADMIT"]
    assert world.store.supersede("show7", "9f2", 1, at=T0) is False  # never lowered, applied twice harmlessly


class BoxOfficeAnswers:
    """A gate.decide.OwnershipLookup that answers from the box office's own file (or not at all)."""

    def __init__(self, world: World, *, up: bool = True) -> None:
        self.world, self.up, self.asked = world, up, 0

    def current(self, event: str, ticket_id: str) -> int | None:
        self.asked += 1
        return int(self.world.office.status(event, ticket_id)["generation"]) if self.up else None  # type: ignore[call-overload]


def test_the_online_check_supersedes_an_old_code_the_stream_has_not_brought(world: World) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    old_code = alice.code("show7", "9f2")[0]
    world.resale(alice, bob, 4000)  # nobody publishes the generation to the gate
    verifier = world.gate().verifier
    with Store.open(world.root / "offline-gate.db") as other:  # the box office does not answer: as before
        offline = Decider(verifier, other, "gate-2", clock=world.clock, ownership=BoxOfficeAnswers(world, up=False))
        assert offline.decide(old_code, now=world.clock()).outcome is Outcome.ADMIT
    online = BoxOfficeAnswers(world)
    gate = Decider(verifier, world.store, "gate-1", clock=world.clock, ownership=online)
    refused = gate.decide(old_code, now=world.clock())
    assert (refused.outcome, refused.reason, online.asked) == (Outcome.REVOKED, Reason.SUPERSEDED, 1)
    assert world.store.generation("show7", "9f2") == 2
    assert gate.decide(bob.code("show7", "9f2")[0], now=world.clock()).outcome is Outcome.ADMIT
    plain = KEY.sign(Ticket(event="show7", ticket_id="p1", seat="", valid_from=int(T0), valid_until=int(T0) + 3600))
    assert gate.decide(plain, now=world.clock()).outcome is Outcome.ADMIT and online.asked == 2  # not asked


def test_the_online_check_without_an_answer_waits_once_then_not_again() -> None:
    with socket.socket() as s:  # a port nobody serves
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    check = OnlineOwnership(dead, boxoffice="0" * 32, timeout=0.2, backoff=30)
    started = time.monotonic()
    assert [check.current("show7", "9f2") for _ in range(50)] == [None] * 50
    assert check.missed == 1 and time.monotonic() - started < 2  # then decided offline at once


@contextmanager
def answering(answer: Callable[[str], object]) -> Iterator[str]:
    """Whoever answers on the box office's URL: a stdlib HTTP server on a loopback port answering every GET
    with `answer(path)` as JSON (a spoofed box office, a man in the middle); its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer(self.path)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def online(world: World, url: str) -> OnlineOwnership:
    """The gate's online check at `url`, pinned to the world's box office, on the world's clock."""
    return OnlineOwnership(url, boxoffice=world.office.chain, timeout=2, backoff=0, wall=world.clock)


def spoofed_answers(world: World, tmp_path: Path) -> dict[str, dict[str, object]]:
    """Answers for show7/9f2 at generation 9 that the box office never gave."""
    genuine = world.office.status("show7", "9f2")
    unsigned = {k: v for k, v in genuine.items() if k not in ("format", "boxoffice", "at", "signature")}
    impostor = make_world(tmp_path / "impostor", listing("9f2", "12B"), clock=world.clock).office
    at = int(world.clock())
    own_key = sign_status({**unsigned, "generation": 9}, impostor.party.identity_block, at, impostor.party.sign)
    borrowed = sign_status({**unsigned, "generation": 9}, world.office.party.identity_block, at, impostor.party.sign)
    # the real identity with the impostor's signing key put in, still claiming the real chain id
    real = world.office.party.identity_block
    stolen = dataclasses.replace(real.identity(), sign=impostor.party.identity_block.identity().sign)
    forged = sign_status({**unsigned, "generation": 9}, dataclasses.replace(real, body=canonical(stolen.to_json())),
                         at, impostor.party.sign)
    return {"unsigned (the old answer)": {**unsigned, "generation": 9},
            "an impostor's own key and identity": own_key,
            "the real identity, the impostor's key": borrowed,
            "the real signed answer, its generation altered": {**genuine, "generation": 9},
            "the real chain id over the impostor's key": forged}


def test_a_spoofed_box_office_cannot_supersede_the_holder(world: World, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13: whoever answers on `ownership.boxoffice_url` in the box office's place answers a high generation
    (unsigned, or signed with another key): the gate takes it for no answer and admits the rightful holder."""
    alice = world.wallet("alice")
    world.purchase(alice)
    verifier = world.gate().verifier
    for i, (what, answer) in enumerate(spoofed_answers(world, tmp_path).items()):
        with answering(lambda path, a=answer: a) as url, Store.open(world.root / f"gate-{i}.db") as store:  # type: ignore[misc]
            check = online(world, url)
            gate = Decider(verifier, store, f"gate-{i}", clock=world.clock, ownership=check)
            decided = gate.decide(alice.code("show7", "9f2")[0], now=world.clock())
            assert (decided.outcome, store.generation("show7", "9f2"), check.missed) == (Outcome.ADMIT, 0, 1), what
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    why = ("not a signed qrgate-status/1 answer", "this gate trusts", "signature does not verify",
           "signature does not verify", "but its content is chain")
    assert len(warned) == 5 and all("no usable answer" in w and y in w for w, y in zip(warned, why, strict=True)), warned


def test_the_box_office_signed_answer_still_supersedes(world: World) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice)
    old_code = alice.code("show7", "9f2")[0]
    world.resale(alice, bob, 4000)  # nobody publishes the generation to the gate
    server = BoxOfficeServer(world.office, port=0).start()  # the real box office, over HTTP
    try:
        check = online(world, server.url)
        gate = Decider(world.gate().verifier, world.store, "gate-1", clock=world.clock, ownership=check)
        refused = gate.decide(old_code, now=world.clock())
        assert (refused.outcome, refused.reason, check.asked) == (Outcome.REVOKED, Reason.SUPERSEDED, 1)
        assert world.store.generation("show7", "9f2") == 2
        assert gate.decide(bob.code("show7", "9f2")[0], now=world.clock()).outcome is Outcome.ADMIT
        assert world.office.status("show7", "9f2")["boxoffice"]["chain"] == world.office.chain  # type: ignore[index]
    finally:
        server.stop()


def test_a_signed_answer_for_another_ticket_or_an_old_one_is_refused(world: World) -> None:
    alice, bob = world.wallet("alice"), world.wallet("bob")
    world.purchase(alice, "9f2")
    world.purchase(alice, "a11")
    world.resale(alice, bob, 4000, "a11")  # a11 is at generation 2, signed by the real box office
    for_a11 = world.office.status("show7", "a11")
    assert for_a11["generation"] == 2
    with answering(lambda path: for_a11) as url:  # served for every ticket asked
        check = online(world, url)
        assert check.current("show7", "a11") == 2  # for a11 itself it holds
        assert (check.current("show7", "9f2"), check.missed) == (None, 1)  # for 9f2 it is refused
        gate = Decider(world.gate().verifier, world.store, "gate-1", clock=world.clock, ownership=check)
        assert gate.decide(alice.code("show7", "9f2")[0], now=world.clock()).outcome is Outcome.ADMIT
        assert (world.store.generation("show7", "9f2"), check.missed) == (0, 2)  # the gate asked, and refused it
        world.clock.advance(61)  # the same signed answer, a minute later: too old to tell the truth now
        assert (check.current("show7", "a11"), check.missed) == (None, 3)
    world.clock.advance(-122)  # and one dated a minute ahead of the gate's clock
    with answering(lambda path: for_a11) as url:
        assert online(world, url).current("show7", "a11") is None


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=18, max_size=18))
def test_any_suffix_is_decided_never_raised_and_never_admitted(suffix: bytes) -> None:
    terms = HolderTerms(bytes(16), int(T0), 15, 5760)
    text = KEY.sign(with_terms(Ticket(event="show7", ticket_id="9f2"), terms))
    verdict = verifier(T0).verify(CODE_PREFIX + text[3:] + b45encode(suffix))
    assert verdict.reason in (Reason.BAD_BACKSTEP, Reason.MALFORMED)


@pytest.mark.parametrize("tail", ["", "A", "AB", "%%%", "Z" * 26, ":::" * 9])
def test_truncated_or_bad_suffixes_are_malformed(tail: str) -> None:
    text = KEY.sign(with_terms(Ticket(event="show7", ticket_id="9f2"), HolderTerms(bytes(16), int(T0), 15, 9)))
    body = text[3:] if tail else ""
    assert b45decode(text[3:])  # the signed part itself is fine, the suffix is not
    assert verifier(T0).verify(CODE_PREFIX + body + tail).reason is Reason.MALFORMED
