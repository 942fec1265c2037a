"""Check-in lists distributed on the stream: the arbiter streams each signed list, a gate adopts a higher version
of its own list after verifying it with its own keyring (docs/checkin-lists.md, "Lists on the stream").

Real processes: a broker, `gate arbiter`, `gate check` gates; the judgement itself is unit-tested at the end.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import psycopg
import pytest

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import Site, Watcher, rows, wait_until  # noqa: E402

from gate.keys import IssuerKey, Keyring, KeyStore  # noqa: E402
from gate.rules import CheckinList, RulesError, sign  # noqa: E402
from gate.servedlist import OlderList, ServedList, choose  # noqa: E402
from sync import wire  # noqa: E402

V1 = CheckinList("pass3", "show7", version=1, entries=1)
V2 = CheckinList("pass3", "show7", version=2, entries=3)  # v2 lets a ticket in three times


def write(path: Path, doc: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def adopted(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    return rows(db, "SELECT name, version FROM checkin_lists")


def forged(site: Site, lst: CheckinList) -> dict[str, object]:
    """`lst` signed under the site key's id with another secret: the signature does not verify."""
    return forged_of(site.key, lst)


def test_a_gate_adopts_a_higher_version_from_the_stream_refuses_a_forged_one_and_keeps_it_offline(site: Site) -> None:
    arbiter_lists = site.arbiter_home / "lists"
    write(arbiter_lists / "pass3.list.json", sign(V1, site.key))
    gate_file = write(site.home("north") / "pass3.list.json", sign(V1, site.key))  # the gate's own copy
    arbiter = site.start_arbiter()
    watcher = Watcher(site.broker)
    north = site.start_gate("north", QRGATE_GATE_LIST=str(gate_file))
    watcher.wait_online("north")
    a, b = site.mint(2)
    assert north.check(a)["outcome"] == "ADMIT"
    assert north.check(a)["reason"] == "already_used", "v1: once ever"
    wait_until(lambda: rows(site.arbiter_db(), "SELECT name, version FROM list_documents") == [("pass3", 1)], 10,
               "v1 on the stream")
    assert adopted(site.gate_db("north")) == [], "the version the gate holds is not adopted again"

    write(arbiter_lists / "pass3.list.json", sign(V2, site.key))  # the issuer signs v2: only the arbiter gets it
    wait_until(lambda: adopted(site.gate_db("north")) == [("pass3", 2)], 20, "the gate to adopt v2")
    assert json.loads(gate_file.read_text())["list"]["version"] == 1, "the gate's file is left as it was"
    shown = site.gate_cli("north", "lists", "show", QRGATE_GATE_LIST=str(gate_file))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"in use at this gate: pass3 version 2 signed by {site.key.kid}, adopted from the"
                                   " stream (item "), shown.stdout
    assert f"; {gate_file} holds version 1\n" in shown.stdout
    got = north.check(a)
    assert got["outcome"] == "ADMIT" and not got["provisional"], "v2: a second entry"
    assert rows(site.gate_db("north"), "SELECT list_version FROM list_scans WHERE scan_id = ?", got["scan_id"]) == [(2,)]

    # a forged v3 on the stream (a compromised arbiter or broker): the issuer's signature decides, not the arbiter
    epoch, head = rows(site.arbiter_db(), "SELECT (SELECT value FROM meta WHERE key = 'epoch'),"
                                          " (SELECT seq FROM sqlite_sequence WHERE name = 'stream')")[0]
    position = lambda: int(rows(site.gate_db("north"), "SELECT value FROM sync_state WHERE key = 'seq'")[0][0])  # noqa: E731
    wait_until(lambda: position() == head, 10, "the gate to follow the stream to its head")
    fake = {"seq": head + 1, "kind": "list", "event": "show7", "ticket": "", "name": "pass3", "version": 3,
            "doc": forged(site, CheckinList("pass3", "show7", version=3, entries=0))}
    watcher.publish("qrgate/stream", wire.encode(wire.stream_batch(str(epoch), [fake])))
    wait_until(lambda: position() == head + 1, 10, "the gate to take the forged item")
    assert adopted(site.gate_db("north")) == [("pass3", 2)], "the forged v3 is not adopted"
    assert north.check(b)["outcome"] == "ADMIT"
    assert rows(site.gate_db("north"), "SELECT list_version FROM list_scans WHERE ticket_id = 't1'") == [(2,)]
    counters = lambda: ((watcher.last("qrgate/status/north") or {}).get("counters") or {})  # noqa: E731
    wait_until(lambda: counters().get("lists_refused") == 1 and counters().get("lists_adopted") == 1, 10,
               "the refusal counted in the gate's status")
    assert north.finish() in (0, 1), north.stderr
    assert "list pass3 version 2 adopted from the stream" in north.stderr
    assert "bad signature" in north.stderr and "Traceback" not in north.stderr

    # the arbiter gone, the gate restarted: it decides offline by v2, the version it adopted
    arbiter.kill()
    again = site.start_gate("north", QRGATE_GATE_LIST=str(gate_file), QRGATE_SYNC_CONNECT_WAIT="0.5")
    got = again.check(a)
    assert got["outcome"] == "ADMIT" and got["provisional"], "a third entry under v2, offline"
    assert again.check(a)["reason"] == "entries_exhausted"
    assert rows(site.gate_db("north"), "SELECT list_version FROM list_scans WHERE ticket_id = 't0' ORDER BY at") == [
        (1,), (1,), (2,), (2,), (2,)]
    assert again.finish() in (0, 1), again.stderr
    watcher.close()


def test_two_arbiter_instances_on_postgresql_stream_a_list_once_and_the_gate_adopts_it(site: Site) -> None:
    from pg_fixtures import fresh_database

    write(site.arbiter_home / "lists" / "pass3.list.json", sign(V2, site.key))
    gate_file = write(site.home("south") / "pass3.list.json", sign(V1, site.key))
    with fresh_database() as url:
        for name in ("a", "b"):
            site.start_arbiter("--store", url, "--instance", name, "--group", "arbiters")
        south = site.start_gate("south", QRGATE_GATE_LIST=str(gate_file))
        watcher = Watcher(site.broker)
        watcher.wait_online("south")  # its store is open
        wait_until(lambda: adopted(site.gate_db("south")) == [("pass3", 2)], 20, "the gate to adopt v2")
        watcher.close()
        [ticket] = site.mint(1)
        assert [south.check(ticket)["outcome"] for _ in range(3)] == ["ADMIT", "ADMIT", "ADMIT"]
        assert south.check(ticket)["reason"] == "entries_exhausted"
        assert south.finish() in (0, 1), south.stderr
        with psycopg.connect(url) as db:
            assert db.execute("SELECT name, version FROM list_documents").fetchall() == [("pass3", 2)]
            assert db.execute("SELECT count(*) FROM stream WHERE kind = 'list'").fetchone() == (1,)
        site.close()  # the instances let go of the database before it is dropped


# -- the judgement, in process -------------------------------------------------------------------
@pytest.fixture
def key() -> IssuerKey:
    return IssuerKey.new("show7", "hmac")


@pytest.fixture
def served(key: IssuerKey) -> ServedList:
    return ServedList(V1, Keyring([key.verify_key()]))


def test_a_higher_version_signed_by_the_issuer_is_adopted(served: ServedList, key: IssuerKey) -> None:
    assert served.judge(sign(V2, key), 1) == V2


def test_the_version_held_is_not_adopted_again_and_another_list_is_not_this_gates(served: ServedList,
                                                                                  key: IssuerKey) -> None:
    assert served.judge(sign(V1, key), 1) is None
    other = IssuerKey.new("show8", "hmac")  # not even in this gate's keyring: not its business
    assert served.judge(sign(CheckinList("vip", "show8", version=9), other), 1) is None


@pytest.mark.parametrize(("doc_of", "why"), [
    (lambda key: forged_of(key, V2), "bad signature"),
    (lambda key: sign(CheckinList("pass3", "show7", version=1, entries=5), key), "differs from the version 1"),
    (lambda key: sign(CheckinList("pass3", "show7", version=1), key) | {"scheme": "ed25519"}, "hmac key"),
    (lambda key: sign(CheckinList("pass3", "show7", version=2), key) | {"kid": "ffffffff"}, "does not hold"),
])
def test_forged_lower_and_unknown_key_documents_are_refused(served: ServedList, key: IssuerKey, doc_of: object,
                                                            why: str) -> None:
    with pytest.raises(RulesError, match=why):
        served.judge(doc_of(key), 1)  # type: ignore[operator]
    assert served.current == V1


def test_an_older_version_is_refused_and_counted_apart(key: IssuerKey) -> None:
    counted: list[str] = []
    served = ServedList(V2, Keyring([key.verify_key()]))
    served.count = counted.append
    with pytest.raises(OlderList, match="version 1 is not higher than the version 2"):
        served.judge(sign(V1, key), 2)
    try:
        served.judge(forged_of(key, V1), 2)
    except RulesError as exc:
        served.refused(exc)
    served.refused(OlderList("old"))
    assert counted == ["lists_refused", "lists_older"] and served.current == V2


def test_a_document_of_another_event_under_the_same_name_is_refused(key: IssuerKey) -> None:
    other = IssuerKey.new("show8", "hmac")
    ring = Keyring([key.verify_key(), other.verify_key()])
    with pytest.raises(RulesError, match="for event 'show8'"):
        ServedList(V1, ring).judge(sign(CheckinList("pass3", "show8", version=2), other), 1)


def test_a_gate_starts_with_the_adopted_version_only_if_it_still_verifies_and_is_higher(served: ServedList,
                                                                                      key: IssuerKey) -> None:
    ring = served.keyring
    assert choose(V1, json.dumps(sign(V2, key)), ring, "store") == V2
    assert choose(V2, json.dumps(sign(V1, key)), ring, "store") == V2
    assert choose(V1, json.dumps(forged_of(key, V2)), ring, "store") == V1
    assert choose(V1, None, ring, "store") == V1


def forged_of(key: IssuerKey, lst: CheckinList) -> dict[str, object]:
    return sign(lst, dataclasses.replace(key, secret=b"\x07" * len(key.secret)))


def test_gate_lists_show_says_the_version_in_use_where_it_came_from_and_its_signer(
        gate_cli: Callable[..., CompletedProcess[str]], home: Path, issuer: IssuerKey) -> None:
    """`gate lists show` showed a file's rules, not the version the gate had adopted from the stream."""
    from gate.ledger import Ledger
    from gate.store import Store

    gate_file = write(home / "pass3.list.json", sign(V1, issuer))
    (home / "gate.toml").write_text(f'[gate]\nlist = "{gate_file}"\n')
    before = gate_cli("lists", "show", "--json")
    assert before.returncode == 0, before.stderr
    assert {k: v for k, v in json.loads(before.stdout).items() if k in ("version", "source", "signer")} == {
        "version": 1, "source": "file", "signer": issuer.kid}
    assert gate_cli("lists", "show").stdout.startswith(f"in use at this gate: pass3 version 1 signed by {issuer.kid},"
                                                       f" from {gate_file}\n")

    other = IssuerKey.new("show7", "ed25519")  # the issuer's new key signs v2
    KeyStore(home / "keys").add_issuer_key(other)
    keyring = KeyStore(home / "keys").keyring()
    with Store.open(home / "gate.db") as store:
        Ledger(store, lists=ServedList(V1, keyring)).apply_stream("e1", [
            {"seq": 1, "kind": "list", "event": "show7", "name": "pass3", "version": 2, "doc": sign(V2, other)}])
    after = json.loads(gate_cli("lists", "show", "--json").stdout)
    assert (after["version"], after["entries"], after["source"], after["signer"], after["file_version"],
            after["adopted_seq"], after["adopted_in_use"]) == (2, 3, "stream", other.kid, 1, 1, True)
    text = gate_cli("lists", "show").stdout
    assert text.startswith(f"in use at this gate: pass3 version 2 signed by {other.kid}, adopted from the stream"
                           " (item 1, "), text
    assert f"; {gate_file} holds version 1\n" in text
    assert "pass3@2 (show7, UTC): every product; 3 entries in total" in text

    assert KeyStore(home / "keys").retire(other.kid)  # v2's key retired: the gate falls back to its file
    fallen = gate_cli("lists", "show")
    assert fallen.stdout.startswith(f"in use at this gate: pass3 version 1 signed by {issuer.kid}, from {gate_file}"
                                    " (version 2 adopted from the stream is not used"), fallen.stdout
    files = gate_cli("lists", "show", str(gate_file))
    assert files.returncode == 0 and files.stdout.strip().endswith(f"; signed by {issuer.kid}"), files.stdout
    (home / "gate.toml").write_text("")
    none = gate_cli("lists", "show")
    assert none.returncode == 2 and "serves no check-in list (gate.list)" in none.stderr
