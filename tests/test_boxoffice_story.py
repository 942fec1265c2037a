"""The whole story as processes: the box office and agent servers, Alice's and Bob's `gate wallet` commands
over HTTP, and a gate: buy, resell, Bob admitted, Alice's old code REVOKED superseded, her screenshot stale."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import gate_env
from office_fixtures import EVENT, Theatre, run_gate, theatre, wait_for

pytest.register_assert_rewrite("sync_fixtures")

from sync_fixtures import Site, Watcher, rows, wait_until  # noqa: E402

from gate.holder import code_for, present, terms_of  # noqa: E402
from gate.ownership.online import OnlineWallet  # noqa: E402
from gate.ownership.store import Holdings  # noqa: E402
from gate.ownership.wallet import Wallet  # noqa: E402
from gate.ticket import parse  # noqa: E402


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[Theatre]:
    yield from theatre(tmp_path, "9f2")


def wallet(site: Theatre, who: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "gate.cli", "--home", str(site.root / who), "wallet", *args],
                          capture_output=True, text=True, env=gate_env(site.root / who), cwd=site.root, timeout=120)
    if ok:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def chain_of(site: Theatre, who: str) -> str:
    return json.loads((site.root / f"{who}.id.json").read_text())["blocks"][0]["chain"]


def test_buy_resell_and_the_gate_with_wallet_processes(hall: Theatre) -> None:
    site = hall
    assert site.office is not None and site.agent is not None
    for who in ("alice", "bob"):
        wallet(site, who, "new", "--name", who)
        connected = wallet(site, who, "connect", site.office.url, "--boxoffice-id", site.chain, "--agent",
                           site.agent.url)
        assert "1 tickets on sale" in connected.stdout
        wallet(site, who, "identity", "--out", f"{who}.id.json")
    wallet(site, "alice", "trust", "bob.id.json")
    wallet(site, "bob", "trust", "alice.id.json")
    assert "the ticket is yours" in wallet(site, "alice", "buy", "--event", EVENT, "--ticket", "9f2").stdout
    alice_code = wallet(site, "alice", "code", "--event", EVENT, "--ticket", "9f2").stdout.strip()
    # Bob asks Alice; she invoices 43.21 through the mailbox; Bob pays; the ticket moves without her release
    asked = wallet(site, "bob", "buy", "--event", EVENT, "--ticket", "9f2", "--from", chain_of(site, "alice"))
    assert "holds it for you" in asked.stdout
    wallet(site, "alice", "sell", "--event", EVENT, "--ticket", "9f2", "--price", "43.21")
    assert "the ticket is yours" in wallet(site, "bob", "pay", "--event", EVENT, "--ticket", "9f2").stdout
    wallet(site, "alice", "sync")
    refused = wallet(site, "alice", "code", "--event", EVENT, "--ticket", "9f2", ok=False)
    assert refused.returncode == 1 and "not_holder" in refused.stderr
    bob_code = wallet(site, "bob", "code", "--event", EVENT, "--ticket", "9f2").stdout.strip()
    # the gate: the box office's keyring, and the raised generation the box office reports
    status = site.bo.status(EVENT, "9f2")
    run_gate(site.root, "bo", "keys", "export", "--event", EVENT, "--out", "ring.json")
    run_gate(site.root, "gate", "keys", "import", "ring.json")
    run_gate(site.root, "gate", "supersede", "9f2", "--event", EVENT, "--generation", str(status["generation"]))
    # (a skew of 8 slots keeps her code's slot current, so the generation decides; the screenshot going stale
    # a slot later is test_the_whole_alice_to_bob_story_through_the_gate's, on a clock the test moves)
    old = subprocess.run([sys.executable, "-m", "gate.cli", "--home", str(site.root / "gate"), "check", "--json",
                          "--set", "ownership.code_skew=8", alice_code], capture_output=True, text=True,
                         env=gate_env(site.root / "gate"), timeout=60)
    assert old.returncode == 1, old.stderr
    assert (json.loads(old.stdout)["outcome"], json.loads(old.stdout)["reason"]) == ("REVOKED", "superseded")
    assert run_gate(site.root, "gate", "check", bob_code).stdout.startswith("ADMIT")
    # a refused step says so in plain words and exits 1
    again = wallet(site, "bob", "pay", "--event", EVENT, "--ticket", "9f2", ok=False)
    assert again.returncode == 1 and "no_bill" in again.stderr


def test_a_fake_theatre_is_refused_at_connect(hall: Theatre) -> None:
    site = hall
    assert site.office is not None and site.agent is not None
    wallet(site, "carol", "new", "--name", "carol")
    fake = wallet(site, "carol", "connect", site.office.url, "--boxoffice-id", "0" * 32, "--agent", site.agent.url,
                  ok=False)
    assert fake.returncode == 1 and "bad_signature" in fake.stderr


@pytest.fixture
def synced_hall(tmp_path: Path, site: Site) -> Iterator[Theatre]:
    """A box office on the venue's broker and issuer key: it sends raised generations to the arbiter itself."""
    site.start_arbiter()
    (tmp_path / "theatre").mkdir()
    env = {"QRGATE_KEYS_DIR": str(site.keys), "QRGATE_SYNC_BROKER": site.broker.url, "QRGATE_GATE_ID": "boxoffice"}
    yield from theatre(tmp_path / "theatre", "9f2", env=env)


def alice_buys_and_resells_to_bob(theatre: Theatre) -> tuple[str, OnlineWallet]:
    """Alice buys 9f2 and resells it to Bob, both over the servers; Alice's code from before the resale, and
    Bob's wallet (once it holds the ticket)."""
    alice, bob = theatre.wallet("alice"), theatre.wallet("bob")
    txn = alice.pay(alice.buy(EVENT, "9f2")).blocks[-1].txn
    wait_for(lambda: (alice.sync(), alice.state(txn))[1] == "owned")
    alice_code = alice.wallet.code(EVENT, "9f2")[0]
    request, _hold = bob.ask(EVENT, "9f2", alice.chain)
    wait_for(lambda: (alice.sync(), alice.requests())[1])
    alice.sell(alice.requests()[-1], 4321, "EUR")
    wait_for(lambda: (bob.sync(), bob.bills())[1])
    bob.pay(bob.bills()[-1])
    wait_for(lambda: (bob.sync(), bob.state(request.blocks[-1].txn))[1] == "owned")
    return alice_code, bob


def test_the_story_with_the_arbiter_bob_in_alice_superseded_everywhere(synced_hall: Theatre, site: Site) -> None:
    gate = site.start_gate("gate-1", "--set", "ownership.code_skew=8")
    watcher = Watcher(site.broker)
    watcher.wait_online("gate-1")  # its store is open (on a loaded machine a gate can take seconds to start)
    watcher.close()
    alice_code, bob = alice_buys_and_resells_to_bob(synced_hall)
    db = site.gate_db("gate-1")  # nobody ran `gate supersede`: the box office's timer sent it to the arbiter
    wait_until(lambda: rows(db, "SELECT generation FROM generations") == [(2,)], 20, "generation 2 at the gate")
    old = gate.check(alice_code)
    assert (old["outcome"], old["reason"]) == ("REVOKED", "superseded")
    assert gate.check(bob.wallet.code(EVENT, "9f2")[0])["outcome"] == "ADMIT"


# -- the online check (steps 35-39 of design note 002): the gate asks the box office -----------------------------
def gate_check(site: Theatre, home: str, code: str, *options: str) -> dict[str, object]:
    """`gate check --json` in its own home (the box office's keyring imported); its decision."""
    if not (site.root / home / "keys").exists():
        run_gate(site.root, "bo", "keys", "export", "--event", EVENT, "--out", "ring.json")
        run_gate(site.root, home, "keys", "import", "ring.json")
    done = subprocess.run([sys.executable, "-m", "gate.cli", "--home", str(site.root / home), "check", "--json",
                           "--set", "ownership.code_skew=8", *options, code], capture_output=True, text=True,
                          env=gate_env(site.root / home), timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return dict(json.loads(done.stdout))


def test_the_gate_asks_the_box_office_who_holds_the_ticket_now(hall: Theatre) -> None:
    site = hall
    assert site.office is not None
    alice_code, bob = alice_buys_and_resells_to_bob(site)
    bob_code = bob.wallet.code(EVENT, "9f2")[0]
    # no broker, nobody ran `gate supersede`: a gate that has not heard of the resale admits Alice's old code
    assert gate_check(site, "offline-gate", alice_code)["outcome"] == "ADMIT"
    online = ("--set", f"ownership.boxoffice_url={site.office.url}", "--set", f"ownership.boxoffice_id={site.chain}")
    old = gate_check(site, "gate", alice_code, *online)  # the gate that asks the box office refuses it
    assert (old["outcome"], old["reason"]) == ("REVOKED", "superseded"), old
    assert "superseded by 2" in str(old["detail"])
    assert gate_check(site, "gate", bob_code, *online)["outcome"] == "ADMIT"


def test_a_gate_whose_box_office_does_not_answer_decides_offline(hall: Theatre) -> None:
    site = hall
    assert site.office is not None
    alice = site.wallet("alice")
    txn = alice.pay(alice.buy(EVENT, "9f2")).blocks[-1].txn
    wait_for(lambda: (alice.sync(), alice.state(txn))[1] == "owned")
    code, url = alice.wallet.code(EVENT, "9f2")[0], site.office.url
    site.office.kill()
    started = time.monotonic()
    decided = gate_check(site, "gate", code, "--set", f"ownership.boxoffice_url={url}",
                         "--set", f"ownership.boxoffice_id={site.chain}")
    assert decided["outcome"] == "ADMIT" and time.monotonic() - started < 20


# -- the whole story as processes, with the arbiter -----------------------------------------------------------
SLOT = 4  # seconds per code slot: a screenshot is stale two slots later


@pytest.fixture
def venue(tmp_path: Path, site: Site) -> Iterator[Theatre]:
    """A box office on the venue's broker (it publishes raised generations), holds of 12 s, 4 s code slots."""
    site.start_arbiter()
    (tmp_path / "theatre").mkdir()
    env = {"QRGATE_KEYS_DIR": str(site.keys), "QRGATE_SYNC_BROKER": site.broker.url, "QRGATE_GATE_ID": "boxoffice"}
    yield from theatre(tmp_path / "theatre", "9f2", "a11", env=env, reservation=12.0, slot=SLOT)


def join(site: Theatre, *names: str) -> None:
    """`gate wallet new`, `connect` and `identity` for each, and every wallet trusts every other."""
    assert site.office is not None and site.agent is not None
    for who in names:
        wallet(site, who, "new", "--name", who)
        wallet(site, who, "connect", site.office.url, "--boxoffice-id", site.chain, "--agent", site.agent.url)
        wallet(site, who, "identity", "--out", f"{who}.id.json")
    for who in names:
        for other in names:
            if other != who:
                wallet(site, who, "trust", f"{other}.id.json")


def code_of(site: Theatre, who: str, ticket_id: str) -> str:
    return wallet(site, who, "code", "--event", EVENT, "--ticket", ticket_id).stdout.strip()


def forged_fresh_code(site: Theatre, who: str, ticket_id: str) -> str:
    """What a seller who kept her wallet's file can still show after the sale: her old ticket with a code of the
    current slot (her seed did not leave her file; only the gate's knowledge of the new generation stops it)."""
    w = Wallet.open(str(site.root / who / "wallet.db"))
    with w.db.transaction() as tx:
        held = Holdings.ticket(tx, EVENT, ticket_id)
    assert held is not None and held.state == "gone"
    ticket = parse(held.text).ticket
    terms = terms_of(ticket)
    assert terms is not None
    return present(held.text, code_for(held.seed, ticket, terms, time.time()))


def test_the_whole_story_as_processes_buy_resell_gate_gift_and_timeout(venue: Theatre, site: Site) -> None:
    """Box office, agent, the wallets (each step a `gate wallet` process), the arbiter and a gate, over HTTP and
    MQTT: Alice buys, resells to Bob, Bob is admitted, Alice's old code is REVOKED superseded and her screenshot
    stale; Alice gives a11 to Carol, who is admitted; Dave's request Carol never answers times out."""
    theatre_ = venue
    gate = site.start_gate("gate-1")
    join(theatre_, "alice", "bob", "carol", "dave")
    alice_chain = chain_of(theatre_, "alice")
    assert "the ticket is yours" in wallet(theatre_, "alice", "buy", "--event", EVENT, "--ticket", "9f2").stdout
    screenshot, shot_at = code_of(theatre_, "alice", "9f2"), time.time()
    # the resale: Bob asks, Alice invoices through the mailbox, Bob pays; nobody runs `gate supersede`
    wallet(theatre_, "bob", "buy", "--event", EVENT, "--ticket", "9f2", "--from", alice_chain)
    wallet(theatre_, "alice", "sell", "--event", EVENT, "--ticket", "9f2", "--price", "43.21")
    assert "the ticket is yours" in wallet(theatre_, "bob", "pay", "--event", EVENT, "--ticket", "9f2").stdout
    wallet(theatre_, "alice", "sync")
    db = site.gate_db("gate-1")
    wait_until(lambda: rows(db, "SELECT generation FROM generations WHERE ticket_id = '9f2'") == [(2,)], 20,
               "generation 2 at the gate")
    old = gate.check(forged_fresh_code(theatre_, "alice", "9f2"))
    assert (old["outcome"], old["reason"]) == ("REVOKED", "superseded"), old
    assert gate.check(code_of(theatre_, "bob", "9f2"))["outcome"] == "ADMIT"
    wait_for(lambda: time.time() >= shot_at + 2 * SLOT, timeout=3 * SLOT)
    stale = gate.check(screenshot)
    assert (stale["outcome"], stale["reason"]) == ("INVALID", "stale_code"), stale
    # a gift: Carol asks for a11, Alice gives it; Carol gets in, Alice's a11 code is refused
    assert "the ticket is yours" in wallet(theatre_, "alice", "buy", "--event", EVENT, "--ticket", "a11").stdout
    wallet(theatre_, "carol", "buy", "--event", EVENT, "--ticket", "a11", "--from", alice_chain)
    assert "given away" in wallet(theatre_, "alice", "gift", "--event", EVENT, "--ticket", "a11").stdout
    wait_for(lambda: "a11 generation=2 held" in wallet(theatre_, "carol", "sync").stdout
             + wallet(theatre_, "carol", "tickets").stdout)
    wait_until(lambda: rows(db, "SELECT generation FROM generations WHERE ticket_id = 'a11'") == [(2,)], 20,
               "generation 2 of a11 at the gate")
    assert gate.check(forged_fresh_code(theatre_, "alice", "a11"))["reason"] == "superseded"
    assert gate.check(code_of(theatre_, "carol", "a11"))["outcome"] == "ADMIT"
    # a timeout: Dave asks Carol for a11, Carol never answers; the box office's timer ends the hold
    wallet(theatre_, "dave", "buy", "--event", EVENT, "--ticket", "a11", "--from", chain_of(theatre_, "carol"))
    assert theatre_.bo.status(EVENT, "a11")["on_hold"] is True
    wait_for(lambda: theatre_.bo.status(EVENT, "a11")["on_hold"] is False, timeout=30)
    wallet(theatre_, "dave", "sync")
    deals = wallet(theatre_, "dave", "tickets").stdout
    assert f"buyer {EVENT}/a11 timeout" in deals, deals
    assert theatre_.bo.status(EVENT, "a11")["holder"] == chain_of(theatre_, "carol")
