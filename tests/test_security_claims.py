"""A gate's credential alone spends nothing: the arbiter verifies the code every claim carries (issue 12).

Each test here is an attack by a rogue MQTT client holding one gate's credential (an SD card taken from a
Pi at an entrance); each passed on the code before claims carried their ticket, i.e. the attack worked.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import Site, Watcher, wait_until  # noqa: E402

from gate.keys import IssuerKey, KeyStore  # noqa: E402
from gate.ticket import Ticket  # noqa: E402
from sync import wire  # noqa: E402
from sync.link import RequestProperties  # noqa: E402

GATES = """\
[gates."gate-a"]
events = ["show7"]
[gates."gate-b"]
events = ["show7"]
[gates."gate-8"]
events = ["show8"]
"""


class Rogue:
    """A raw MQTT client that sends claims as `gate` and collects the answers on that gate's reply topic."""

    def __init__(self, site: Site, gate: str) -> None:
        self.gate = gate
        self.watcher = Watcher(site.broker, f"qrgate/reply/{gate}")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"rogue-{gate}", protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", site.broker.port)
        self.client.loop_start()

    def claim(self, *claims: wire.Claim) -> list[dict[str, Any]]:
        """Send one claim request and wait for its answers (in the order of the claims)."""
        before = len(self.watcher.on(f"qrgate/reply/{self.gate}"))
        self.client.publish(f"qrgate/claim/{self.gate}", wire.encode(wire.request("claims", list(claims))), qos=1,
                            properties=RequestProperties(f"qrgate/reply/{self.gate}", b"c1")).wait_for_publish(5)
        replies = wait_until(lambda: self.watcher.on(f"qrgate/reply/{self.gate}")[before:], 10, "the answer")
        answers = {a["scan"]: a for a in replies[0]["results"]}
        return [answers[c.scan] for c in claims]

    def close(self) -> None:
        self.client.loop_stop()
        self.watcher.close()


@pytest.fixture
def venue(site: Site, tmp_path: Path) -> Iterator[Site]:
    """An arbiter with a gates file: gate-a and gate-b serve show7, gate-8 serves show8 only."""
    site.event_key("show8")
    gates = tmp_path / "gates.toml"
    gates.write_text(GATES)
    site.start_arbiter(QRGATE_SYNC_ARBITER_GATES=str(gates))
    yield site


@pytest.fixture
def rogue(venue: Site) -> Iterator[Rogue]:
    r = Rogue(venue, "gate-a")
    yield r
    r.close()


def redeemed(site: Site) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{site.arbiter_home / 'arbiter.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT event, ticket_id FROM claims ORDER BY ticket_id").fetchall()


def reason(answer: dict[str, Any]) -> str:
    assert answer["answer"] == "refused", answer
    return str(answer["detail"]).split(":", 1)[0]


def test_a_claim_naming_ticket_ids_without_their_code_spends_nothing(venue: Site, rogue: Rogue) -> None:
    """The lock-out: sequential ids are guessable, so a claim with no code, a forged one or one of another
    issuer's key must be refused and leave the ticket free for its holder."""
    forged = venue.key.sign(Ticket(event="show7", ticket_id="t1"))[:-4] + "AAAA"
    stranger = IssuerKey.new("show7", "hmac").sign(Ticket(event="show7", ticket_id="t2"))
    answers = rogue.claim(wire.Claim("s0", "show7", "t0", "gate-a", time.time()),
                          wire.Claim("s1", "show7", "t1", "gate-a", time.time(), text=forged),
                          wire.Claim("s2", "show7", "t2", "gate-a", time.time(), text=stranger))
    assert [reason(a) for a in answers] == ["no_ticket", "bad_signature", "unknown_key"]
    assert redeemed(venue) == []
    honest = venue.start_gate("gate-b")
    assert [honest.check(t)["outcome"] for t in venue.mint(3)] == ["ADMIT", "ADMIT", "ADMIT"]


def test_a_code_spends_only_the_ticket_it_is_for(venue: Site, rogue: Rogue) -> None:
    """One genuine code shown at the stolen gate must not be replayed as a claim for other ticket ids."""
    text = venue.key.sign(Ticket(event="show7", ticket_id="t1"))
    answers = rogue.claim(wire.Claim("s1", "show7", "t2", "gate-a", time.time(), text=text),
                          wire.Claim("s2", "show7", "t1", "gate-a", time.time(), gen=3, text=text))
    assert [reason(a) for a in answers] == ["mismatch", "mismatch"]
    assert redeemed(venue) == []


def test_a_gate_spends_only_tickets_of_the_events_it_serves(venue: Site) -> None:
    show8 = Rogue(venue, "gate-8")
    try:
        (other,) = show8.claim(venue.claim("s1", "t1", "gate-8"))
        assert reason(other) == "gate_event"
        (own,) = show8.claim(venue.claim("s2", "t1", "gate-8", event="show8"))
        assert own["answer"] == "won"
        stranger = Rogue(venue, "gate-zz")
        try:
            (unknown,) = stranger.claim(venue.claim("s3", "t3", "gate-zz"))
            assert reason(unknown) == "unknown_gate"
        finally:
            stranger.close()
    finally:
        show8.close()
    assert redeemed(venue) == [("show8", "t1")]


def test_a_late_claim_cannot_come_from_the_future(venue: Site, rogue: Rogue) -> None:
    """A late claim is checked at the time it says the holder was admitted; that time may not be ahead of the
    arbiter's (else a code's validity window or holder slot could be chosen at will)."""
    (future,) = rogue.claim(venue.claim("s1", "t1", "gate-a", time.time() + 3600, admitted=True))
    assert reason(future) == "future_claim"
    (past,) = rogue.claim(venue.claim("s2", "t1", "gate-a", time.time() - 3600, admitted=True))
    assert past["answer"] == "won"


def test_a_scan_id_is_bound_to_the_gate_that_made_it(venue: Site, rogue: Rogue) -> None:
    """Scan ids of wins are on the stream: another gate's claim with one must not mark that scan admitted
    (which turns a later loss into a conflict) nor answer for it."""
    (won,) = rogue.claim(venue.claim("s-win", "t1", "gate-a"))
    assert won["answer"] == "won"
    other = Rogue(venue, "gate-b")
    try:
        (reuse,) = other.claim(venue.claim("s-win", "t1", "gate-b", admitted=True))
    finally:
        other.close()
    assert reason(reuse) == "scan_id_taken"
    with sqlite3.connect(f"file:{venue.arbiter_home / 'arbiter.db'}?mode=ro", uri=True) as db:
        assert db.execute("SELECT gate_id, admitted FROM scans WHERE scan_id = 's-win'").fetchall() == [("gate-a", 0)]
        assert db.execute("SELECT count(*) FROM conflicts").fetchone() == (0,)


def test_a_refused_claim_is_invalid_at_the_gate_not_an_offline_admit(site: Site, tmp_path: Path) -> None:
    """A gate holding a key the arbiter does not (a stale arbiter keyring, or a forged ticket signed with a
    stolen HMAC key the venue has since replaced) shows INVALID refused: never a provisional ADMIT."""
    site.start_arbiter()
    extra = IssuerKey.new("show7", "hmac")
    gate_keys = tmp_path / "gate-keys"
    KeyStore(gate_keys).add_issuer_key(extra)
    gate = site.start_gate("gate-a", QRGATE_KEYS_DIR=str(gate_keys))
    decision = gate.check(extra.sign(Ticket(event="show7", ticket_id="t1")))
    assert (decision["outcome"], decision["reason"]) == ("INVALID", "refused"), decision
    assert "unknown_key" in decision["detail"]
    assert redeemed(site) == []


def test_a_gate_provisioned_while_the_arbiter_runs_is_served_without_a_restart(venue: Site, tmp_path: Path) -> None:
    """Adding a gate at 7 pm must not need an arbiter restart (nor make the new gate's every scan INVALID)."""
    newcomer = Rogue(venue, "gate-c")
    try:
        (first,) = newcomer.claim(venue.claim("s1", "t1", "gate-c"))
        assert reason(first) == "unknown_gate"
        gates = tmp_path / "gates.toml"
        gates.write_text(GATES + '[gates."gate-c"]\nevents = ["show7"]\n')
        answers = iter(range(2, 100))
        wait_until(lambda: newcomer.claim(venue.claim(f"s{next(answers)}", "t1", "gate-c"))[0]["answer"] == "won",
                   20, "the arbiter to read the new gates file")
    finally:
        newcomer.close()


def test_a_request_that_is_not_even_json_gets_an_error_reply(venue: Site, rogue: Rogue) -> None:
    """docs/mqtt.md promises an error reply for every request the arbiter cannot read (it was dropped
    silently when the payload was no JSON at all)."""
    rogue.client.publish("qrgate/claim/gate-a", b"{not json", qos=1,
                         properties=RequestProperties("qrgate/reply/gate-a", b"c1")).wait_for_publish(5)
    reply = wait_until(lambda: rogue.watcher.on("qrgate/reply/gate-a"), 10, "the error reply")[0]
    assert "not JSON" in reply["error"], reply
