"""The wire format and topic scheme: docs/mqtt.md's examples are test vectors; bad payloads never pass."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gate.rules import CheckinList
from sync import wire
from sync.exc import BadMessage, BadTopicName, BrokerURLError
from sync.link import Broker, RequestProperties
from sync.topics import Topics

DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt.md"


def examples() -> dict[str, dict[str, Any]]:
    found = re.findall(r"<!-- example: ([a-z-]+) -->\n```json\n(.*?)```", DOC.read_text(), re.S)
    return {name: json.loads(body) for name, body in found}


PARSERS: dict[str, Callable[[dict[str, Any]], object]] = {
    "claims": wire.parse_claims,
    "answers": wire.parse_answers,
    "releases": wire.parse_releases,
    "revocations": wire.parse_revocations,
    "catchup": wire.parse_catchup,
    "catchup-reply": wire.parse_stream,
    "stream": wire.parse_stream,
    "status": lambda d: wire.text(d, "state"),
    "transitions": wire.parse_transitions,
    "transition-answers": wire.parse_pass_answers,
    "pass-stream": wire.parse_stream,
    "list-stream": wire.parse_stream,
    "conflict-topic": lambda d: wire.text(d, "kind") == "conflict" and wire.text(d, "list"),
}


def test_every_payload_example_in_the_doc_decodes() -> None:
    found = examples()
    assert set(found) == set(PARSERS), "docs/mqtt.md and this test disagree on the examples"
    for name, payload in found.items():
        assert PARSERS[name](wire.decode(json.dumps(payload).encode())), name


def test_a_list_conflict_on_the_conflict_topic_is_the_docs_example_in_the_shape_of_a_double_entry() -> None:
    found = examples()
    topic = found["conflict-topic"]
    item = {"seq": 14, "kind": "pass", "event": "show7", "ticket": "s1", "list": "stadium", "scan": topic["late"]["scan"],
            "gate": "b-in", "at": topic["late"]["at"], "direction": "in", "outcome": "ALREADY_USED",
            "reason": "already_inside", "conflict": True, "detail": topic["detail"], "first": topic["first"],
            "state": {"entries": 2, "day": "", "day_entries": 2, "inside": True, "last_entry": topic["late"]["at"]},
            "arbiter_at": topic["arbiter_at"]}
    assert wire.conflict_message(wire.check_item(item)) == topic
    double = wire.conflict_message(wire.parse_stream(found["stream"])[1][0])
    assert double is not None and set(topic) == set(double) | {"detail"}
    assert (double["list"], double["reason"]) == (None, "already_used")
    assert wire.conflict_message({**item, "conflict": False}) is None  # a move that is no conflict: not published


def test_the_doc_examples_say_what_the_doc_says() -> None:
    found = examples()
    [claim] = wire.parse_claims(found["claims"])
    assert (claim.event, claim.ticket, claim.gate, claim.admitted) == ("show7", "9f2", "gate-north-1", False)
    won, lost = wire.parse_answers(found["answers"])
    assert (won.answer, won.seq) == ("won", 1)
    assert (lost.answer, lost.conflict, lost.first and lost.first.gate) == ("lost", True, "gate-north-1")
    epoch, items = wire.parse_stream(found["stream"])
    assert [i["kind"] for i in items] == ["conflict", "revocation"] and len(epoch) == 32
    assert wire.parse_catchup(found["catchup"]) == (0, 500)
    [move] = wire.parse_transitions(found["transitions"])
    assert (move.list, move.version, move.direction, move.admitted, move.void) == ("stadium", 7, "in", False, False)
    [ruling] = wire.parse_pass_answers(found["transition-answers"])
    assert (ruling.scan, ruling.reason, ruling.state and ruling.state["inside"]) == (move.scan, "already_inside", True)
    _epoch, [item] = wire.parse_stream(found["pass-stream"])
    assert (item["kind"], item["reason"], item["state"]["inside"]) == ("pass", "exit", False)
    _epoch, [item] = wire.parse_stream(found["list-stream"])
    assert (item["kind"], item["name"], item["version"]) == ("list", "pass3", 2)
    assert CheckinList.from_json(item["doc"]["list"]).ref == "pass3@2", "the signed document as gate lists sign writes it"
    [revocation] = wire.parse_revocations(found["revocations"])
    assert (revocation.by, revocation.admin) == ("admin", "alice")
    assert items[1]["admin"] == "alice"


def test_a_transition_is_never_admitted_and_void_at_once() -> None:
    move = wire.Transition("s", "show7", "t", "g", 1.0, "hall", 1, admitted=True)
    payload = wire.request("transitions", [move])
    assert wire.parse_transitions(payload) == [move]
    payload["transitions"][0]["void"] = True
    with pytest.raises(BadMessage):
        wire.parse_transitions(payload)


def test_every_topic_is_in_the_doc_table() -> None:
    text = DOC.read_text()
    t = Topics()
    for topic in (*(t.request(k, "{gate}") for k in ("claim", "release", "catchup")), t.reply("{gate}"),
                  t.status("{gate}"), t.stream, t.arbiter_status, t.conflict("{event}"), t.request("revoke", "{admin}"),
                  t.scan("{gate}")):
        assert f"| `{topic}` |" in text, topic


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=20), st.floats(0, 4e9),
       st.integers(0, 2**31), st.booleans())
def test_claims_survive_encoding(scan: str, ticket: str, at: float, gen: int, admitted: bool) -> None:
    claim = wire.Claim(scan, "show7", ticket, "gate-1", at, gen, admitted)
    assert wire.parse_claims(wire.decode(wire.encode(wire.request("claims", [claim])))) == [claim]


@pytest.mark.parametrize(("payload", "message"), [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"v": 2, "claims": []}', "unsupported version"),
    (b'{"claims": []}', "unsupported version"),
])
def test_undecodable_payloads_are_bad_messages(payload: bytes, message: str) -> None:
    with pytest.raises(BadMessage, match=message):
        wire.decode(payload)


GOOD_CLAIM = {"scan": "s1", "event": "show7", "ticket": "9f2", "gen": 0, "gate": "g1", "at": 1.5, "admitted": False}


@pytest.mark.parametrize("change", [
    {"scan": ""}, {"scan": 7}, {"ticket": None}, {"at": "now"}, {"at": True}, {"gen": -1}, {"gen": 1.5},
    {"admitted": "yes"}, {"gate": "x" * 300},
])
def test_a_claim_with_a_bad_field_is_refused_whole(change: dict[str, object]) -> None:
    with pytest.raises(BadMessage):
        wire.parse_claims({"v": 1, "claims": [GOOD_CLAIM, {**GOOD_CLAIM, **change}]})


def test_nan_and_oversized_batches_are_refused() -> None:
    with pytest.raises(BadMessage):
        wire.parse_claims(json.loads('{"v": 1, "claims": [{"scan": "s", "event": "e", "ticket": "t", "gate": "g",'
                                     ' "at": NaN}]}'))
    with pytest.raises(BadMessage, match="at most 1000"):
        wire.parse_claims({"v": 1, "claims": [GOOD_CLAIM] * 1001})


@pytest.mark.parametrize("result", [
    {"scan": "s", "answer": "maybe"},
    {"scan": "s", "answer": "lost"},  # lost must say who holds it
    {"scan": "s", "answer": "won", "seq": 0},
    {"scan": "s", "answer": "lost", "first": {"gate": "g", "at": "x", "scan": "s2"}},
])
def test_bad_answers_are_refused(result: dict[str, object]) -> None:
    with pytest.raises(BadMessage):
        wire.parse_answers({"v": 1, "results": [result]})


def test_an_error_reply_is_a_bad_message_for_the_caller() -> None:
    with pytest.raises(BadMessage, match="refused the request: nope"):
        wire.parse_answers(wire.error_reply("nope"))


@pytest.mark.parametrize("item", [
    {"seq": 0, "kind": "redemption"},
    {"seq": 1, "kind": "teleport", "event": "e", "ticket": "t"},
    {"seq": 1, "kind": "redemption", "event": "e", "ticket": "t", "gate": "g", "at": 1.0},  # no scan
    {"seq": 1, "kind": "conflict", "event": "e", "ticket": "t", "state": "open", "first": {}},
    {"seq": 1, "kind": "conflict", "event": "e", "ticket": "t", "state": "maybe",
     "first": {"gate": "g", "at": 1, "scan": "s"}, "late": {"gate": "g", "at": 1, "scan": "s"}},
])
def test_bad_stream_items_are_refused(item: dict[str, object]) -> None:
    with pytest.raises(BadMessage):
        wire.parse_stream({"v": 1, "epoch": "e1", "items": [item]})


OLD_REVOCATION = {"event": "show7", "ticket": "7c4", "by": "admin", "reason": "refunded", "at": 0.0}


def test_a_revocation_names_the_person_and_one_without_a_person_is_still_read() -> None:
    """`admin` (the dashboard account or the operator) is optional: an older sender's revocation reads as ""."""
    [old] = wire.parse_revocations({"v": 1, "revocations": [OLD_REVOCATION]})
    assert (old.by, old.admin) == ("admin", "")
    assert "admin" not in old.to_json()  # an older arbiter sees exactly what it always saw
    named = wire.Revocation("show7", "7c4", "admin", "refunded", admin="alice")
    assert wire.parse_revocations(wire.decode(wire.encode(wire.request("revocations", [named])))) == [named]
    _, [item] = wire.parse_stream({"v": 1, "epoch": "e1", "items": [
        {"seq": 4, "kind": "revocation", **OLD_REVOCATION}]})  # an older arbiter's stream item
    assert "admin" not in item


@pytest.mark.parametrize("admin", [7, None, ["alice"], "x" * 300])
def test_a_revocation_with_a_bad_person_is_refused(admin: object) -> None:
    with pytest.raises(BadMessage, match="admin"):
        wire.parse_revocations({"v": 1, "revocations": [{**OLD_REVOCATION, "admin": admin}]})
    with pytest.raises(BadMessage, match="admin"):
        wire.parse_stream({"v": 1, "epoch": "e1", "items": [
            {"seq": 4, "kind": "revocation", **OLD_REVOCATION, "admin": admin}]})


def test_stream_items_come_back_in_sequence_order() -> None:
    items = [{"seq": n, "kind": "revocation", "event": "*", "ticket": f"t{n}"} for n in (3, 1, 2)]
    assert [i["seq"] for i in wire.parse_stream(wire.stream_batch("e1", items))[1]] == [1, 2, 3]


def test_topics() -> None:
    t = Topics("venue/qrgate")
    assert t.request("claim", "gate-1") == "venue/qrgate/claim/gate-1"
    assert t.requests("claim") == "venue/qrgate/claim/+"
    assert t.parse_request("venue/qrgate/release/gate-1") == ("release", "gate-1")
    assert t.parse_request("venue/qrgate/stream") is None
    assert t.parse_request("other/claim/gate-1") is None
    assert t.parse_request("venue/qrgate/claim/a/b") is None
    for bad in ("", "a/b", "a+", "#"):
        with pytest.raises(BadTopicName):
            t.status(bad)
    with pytest.raises(BadTopicName):
        Topics("qr+gate")


@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://127.0.0.1:1884", Broker("127.0.0.1", 1884)),
    ("mqtt://broker.local", Broker("broker.local", 1883)),
    ("mqtts://broker.local", Broker("broker.local", 8883, tls=True)),
    ("10.0.0.2:1999", Broker("10.0.0.2", 1999)),
    ("mqtt://[::1]:1883", Broker("::1", 1883)),
])
def test_broker_urls(url: str, expected: Broker) -> None:
    assert Broker.parse(url) == expected


def test_several_broker_urls_are_one_broker_with_others_to_fail_over_to() -> None:
    broker = Broker.parse("mqtt://a:1884, mqtt://b")
    assert broker.each() == [Broker("a", 1884), Broker("b", 1883)]
    assert str(broker) == "mqtt://a:1884,mqtt://b:1883" and Broker.parse(str(broker)) == broker
    with pytest.raises(BrokerURLError, match="all mqtt:// or all mqtts://"):
        Broker.parse("mqtt://a,mqtts://b")


def test_reconnect_waits_double_up_to_the_most_and_are_spread_over_their_upper_half() -> None:
    import random

    from sync.link import reconnect_delay

    rng = random.Random(1)
    waits = [[reconnect_delay(n, (1, 8), rng) for _ in range(200)] for n in range(1, 7)]
    for n, drawn in enumerate(waits, start=1):
        top = min(8, 2 ** (n - 1))
        assert top / 2 <= min(drawn) and max(drawn) <= top
        assert max(drawn) - min(drawn) > top / 4  # spread: 100 gates do not come back in one instant
    assert max(reconnect_delay(1, (1, 1), rng) for _ in range(100)) <= 1.0  # the default: within a second


@pytest.mark.parametrize("url", ["http://h:1", "mqtt://", "mqtt://h:99999", "mqtt://h:port", "mqtt://h:1/x",
                                 "mqtt://a,"])
def test_bad_broker_urls_say_what_is_expected(url: str) -> None:
    with pytest.raises(BrokerURLError, match="mqtt://"):
        Broker.parse(url)


TOPIC_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=300)


@given(st.one_of(st.none(), TOPIC_TEXT), st.one_of(st.none(), st.binary(max_size=300)))
def test_request_properties_pack_exactly_as_paho_packs_them(topic: str | None, correlation: bytes | None) -> None:
    ours = RequestProperties(topic, correlation)
    theirs = Properties(PacketTypes.PUBLISH)
    if topic is not None:
        theirs.ResponseTopic = topic
    if correlation is not None:
        theirs.CorrelationData = correlation
    assert ours.pack() == theirs.pack()
    back = Properties(PacketTypes.PUBLISH)
    back.unpack(ours.pack()[:])
    assert getattr(back, "ResponseTopic", None) == topic
    assert getattr(back, "CorrelationData", None) == correlation
    assert str(correlation) in str(ours)


def test_a_list_item_needs_its_name_version_and_a_document_of_at_most_the_limit() -> None:
    item = {"seq": 1, "kind": "list", "event": "show7", "ticket": "", "name": "pass3", "version": 2,
            "doc": {"format": "qrgate-checkin-list/1", "list": {}}}
    assert wire.check_item(dict(item)) == item
    for bad in ({"name": ""}, {"version": 0}, {"doc": "a string"}, {"doc": {"pad": "x" * wire.MAX_LIST_DOC}}):
        with pytest.raises(BadMessage):
            wire.check_item({**item, **bad})
