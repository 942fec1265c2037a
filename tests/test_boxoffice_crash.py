"""The box office killed with SIGKILL at random points of resales, 20 times, the agent at random points of
purchases, 10 times, a wallet while buying: no ticket and no payment lost."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import gate_env
from office_fixtures import EVENT, Theatre, theatre, wait_for

from gate.ownership.exc import Refused
from gate.ownership.online import OnlineWallet

KILLS = 20


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Theatre]:
    yield from theatre(tmp_path, "9f2")


def state_of(w: OnlineWallet, txn: str) -> str:
    w.sync()
    return w.state(txn)


def resale_under_fire(site: Theatre, holder: OnlineWallet, buyer: OnlineWallet, cents: int, kill_at: float) -> str:
    """One resale, holder to buyer, with the box office killed and restarted `kill_at` s into it; its txn."""
    killer = threading.Timer(kill_at, site.restart_office)
    killer.start()
    try:
        request, _hold = buyer.ask(EVENT, "9f2", holder.chain)
        wait_for(lambda: (holder.sync(), holder.requests())[1], timeout=30)
        holder.sell(holder.requests()[-1], cents, "EUR")
        wait_for(lambda: (buyer.sync(), buyer.bills())[1], timeout=30)
        buyer.pay(buyer.bills()[-1])
    except Refused as exc:  # every step is sent again until answered: a refusal would be a lost step
        pytest.fail(f"a resale was refused: {exc.code}: {exc}")
    finally:
        killer.join()
    txn = request.blocks[-1].txn
    wait_for(lambda: state_of(buyer, txn) in ("owned", "refunded"), timeout=30)
    return txn


def test_a_box_office_killed_mid_resale_loses_no_ticket_and_no_payment(site: Theatre) -> None:
    rng = random.Random(13)
    first = site.wallet("w0", patience=30)
    txn = first.pay(first.buy(EVENT, "9f2")).blocks[-1].txn
    wait_for(lambda: state_of(first, txn) == "owned", timeout=30)
    holder, deals = first, []
    for i in range(1, KILLS + 1):
        buyer = site.wallet(f"w{i}", patience=30)
        txn = resale_under_fire(site, holder, buyer, 1000 + i, rng.uniform(0.0, 0.6))
        deals.append((buyer, txn))
        if buyer.state(txn) == "owned":
            holder = buyer
    # afterwards: the agent has settled every charge, each paid buyer holds (or held, then resold) the
    # ticket or was refunded, and exactly one wallet holds it now
    agent_db = site.root / "agent" / "fake-agent.db"

    def charges() -> dict[str, str]:
        with sqlite3.connect(agent_db) as db:
            return {txn: state for txn, state in db.execute("SELECT txn, state FROM charges WHERE delivered = 1")}
    wait_for(lambda: len(charges()) == KILLS + 1, timeout=30)
    outcome = charges()
    for buyer, txn in deals:
        assert (buyer.state(txn), outcome[txn]) in (("owned", "settled"), ("refunded", "refunded")), buyer.chain
    holding = [w for w in site.wallets.values() if [t["state"] for t in (w.sync(), w.wallet.tickets())[1]] == ["held"]]
    assert holding == [holder]
    assert site.bo.status(EVENT, "9f2")["holder"] == holder.chain
    owned = sum(1 for buyer, txn in deals if buyer.state(txn) == "owned")
    assert site.bo.status(EVENT, "9f2")["generation"] == 1 + owned
    assert site.restarts == KILLS
    resent = sum(w.office.resent for w in site.wallets.values())
    assert resent > KILLS / 2, resent  # the kills did land in the middle of steps, which were sent again
    with sqlite3.connect(site.root / "bo" / "boxoffice.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_an_agent_killed_with_a_payment_it_could_not_report_reports_it_after_a_restart(site: Theatre) -> None:
    alice = site.wallet("alice", patience=30)
    reply = alice.buy(EVENT, "9f2")
    assert site.office is not None
    port = int(site.office.url.rsplit(":", 1)[1])
    site.office.kill()  # the box office is down when the money arrives
    receipt = alice.pay(reply)
    txn = receipt.blocks[-1].txn
    assert [b.kind for b in receipt.blocks if not b.is_identity] == ["payment_receipt"]
    site.kill_agent()  # and the agent dies holding the payment, its notice not delivered
    site.office.stop()
    site.start_office(port)
    site.restart_agent()
    wait_for(lambda: state_of(alice, txn) == "owned", timeout=30)  # the restarted agent delivers it
    assert site.bo.status(EVENT, "9f2")["holder"] == alice.chain


@pytest.fixture
def eight(tmp_path: Path) -> Iterator[Theatre]:
    yield from theatre(tmp_path, *[f"k{i}" for i in range(8)], reservation=2.0)


def wallet_cmd(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "gate.cli", "--home", str(home), "wallet", *args]


def test_a_wallet_killed_while_buying_loses_neither_ticket_nor_money(eight: Theatre) -> None:
    """`gate wallet buy` killed at random points: afterwards every charge of the wallet is its ticket."""
    assert eight.office is not None and eight.agent is not None
    home, env = eight.root / "alice", gate_env(eight.root / "alice")
    for args in (("new", "--name", "alice"),
                 ("connect", eight.office.url, "--boxoffice-id", eight.chain, "--agent", eight.agent.url)):
        subprocess.run(wallet_cmd(home, *args), env=env, capture_output=True, timeout=120, check=True)
    rng = random.Random(7)
    for i in range(8):
        proc = subprocess.Popen(wallet_cmd(home, "buy", "--event", EVENT, "--ticket", f"k{i}"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.2))  # python start-up is about 0.4 s: some die early, some late
        proc.kill()
        proc.wait(10)
    time.sleep(3)  # unpaid reservations expire
    subprocess.run(wallet_cmd(home, "sync"), env=env, capture_output=True, timeout=120, check=True)
    listed = subprocess.run(wallet_cmd(home, "tickets"), env=env, capture_output=True, text=True, timeout=120,
                            check=True).stdout.splitlines()
    held = {line.split()[0].split("/")[1] for line in listed if line.startswith(f"{EVENT}/") and line.endswith(" held")}
    with sqlite3.connect(eight.root / "agent" / "fake-agent.db") as db:
        settled = [txn for (txn,) in db.execute("SELECT txn FROM charges WHERE state = 'settled'")]
        assert not db.execute("SELECT 1 FROM charges WHERE state = 'held'").fetchall()
    assert held == {_ticket_of(eight.root / "bo" / "boxoffice.db", txn) for txn in settled}  # charge == ticket
    for i in range(8):
        state = eight.bo.status(EVENT, f"k{i}")
        assert state["state"] in ("available", "sold")
        assert (state["state"] == "sold") == (f"k{i}" in held)


def _ticket_of(boxoffice_db: Path, txn: str) -> str:
    with sqlite3.connect(boxoffice_db) as db:
        return str(db.execute("SELECT ticket_id FROM deals WHERE txn = ?", (txn,)).fetchone()[0])


@pytest.fixture
def ten(tmp_path: Path) -> Iterator[Theatre]:
    yield from theatre(tmp_path, *[f"a{i}" for i in range(10)])


def test_an_agent_killed_at_random_points_of_purchases_loses_no_payment(ten: Theatre) -> None:
    """The agent killed with SIGKILL at a random point of each of 10 purchases (before, during or after the
    charge, its notice or its outcome) and started again: every charge ends settled with its ticket, or refunded."""
    rng = random.Random(29)
    deals = []
    for i in range(10):
        buyer = ten.wallet(f"b{i}", patience=30)
        buyer.agent.patience = 30  # type: ignore[attr-defined]  # an AgentClient: it sends the same request again
        killer = threading.Timer(rng.uniform(0.0, 0.5), ten.bounce_agent)
        killer.start()
        try:
            receipt = buyer.pay(buyer.buy(EVENT, f"a{i}"))
        except Refused as exc:
            pytest.fail(f"a purchase was refused: {exc.code}: {exc}")
        finally:
            killer.join()
        deals.append((buyer, f"a{i}", receipt.blocks[-1].txn))
    for buyer, _ticket, txn in deals:
        wait_for(lambda b=buyer, t=txn: state_of(b, t) in ("owned", "refunded"), timeout=30)  # type: ignore[misc]
    with sqlite3.connect(ten.root / "agent" / "fake-agent.db") as db:
        charges = {txn: (state, delivered) for txn, state, delivered in
                   db.execute("SELECT txn, state, delivered FROM charges")}
    assert len(charges) == 10
    resent = sum(b.agent.resent + b.office.resent for b, _t, _x in deals)  # type: ignore[attr-defined]
    assert resent >= 3, resent  # kills did land in the middle of requests, which were sent again
    for buyer, ticket_id, txn in deals:
        holds = ten.bo.status(EVENT, ticket_id)["holder"] == buyer.chain
        assert (buyer.state(txn), charges[txn], holds) in (("owned", ("settled", 1), True),
                                                            ("refunded", ("refunded", 1), False)), buyer.chain


@pytest.fixture
def six(tmp_path: Path) -> Iterator[Theatre]:
    yield from theatre(tmp_path, *[f"r{i}" for i in range(6)], reservation=120.0)


def test_a_buyer_killed_while_paying_a_resale_loses_neither_ticket_nor_money(six: Theatre) -> None:
    """Bob's `gate wallet pay` for a resale killed at random points, then run again if need be: afterwards each
    resale was charged at most once, and Bob holds every ticket whose charge settled (the rest refunded)."""
    assert six.office is not None and six.agent is not None
    homes = {who: six.root / who for who in ("alice", "bob")}
    envs = {who: gate_env(home) for who, home in homes.items()}

    def run(who: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(wallet_cmd(homes[who], *args), env=envs[who], capture_output=True, text=True,
                              timeout=120, check=check, cwd=six.root)
    for who in homes:
        run(who, "new", "--name", who)
        run(who, "connect", six.office.url, "--boxoffice-id", six.chain, "--agent", six.agent.url)
        run(who, "identity", "--out", f"{who}.id.json")
    run("alice", "trust", "bob.id.json")
    run("bob", "trust", "alice.id.json")
    alice_chain, bob_chain = (json.loads((six.root / f"{who}.id.json").read_text())["blocks"][0]["chain"]
                              for who in ("alice", "bob"))
    rng = random.Random(31)
    for i in range(6):
        ticket = ("--event", EVENT, "--ticket", f"r{i}")
        run("alice", "buy", *ticket)
        run("bob", "buy", *ticket, "--from", alice_chain)
        run("alice", "sell", *ticket, "--price", "30.00")
        proc = subprocess.Popen(wallet_cmd(homes["bob"], "pay", *ticket), env=envs["bob"], cwd=six.root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.wait(10)
        run("bob", "sync")
        if f"r{i} generation=2 held" not in run("bob", "tickets").stdout:
            run("bob", "pay", *ticket, check=False)  # paid already, or not yet: either way it must end well
    time.sleep(2)
    run("bob", "sync")
    held = {line.split()[0].split("/")[1] for line in run("bob", "tickets").stdout.splitlines()
            if line.startswith(f"{EVENT}/") and line.endswith(" held")}
    with sqlite3.connect(six.root / "agent" / "fake-agent.db") as db:
        rows = db.execute("SELECT txn, state FROM charges WHERE payer = ?", (bob_chain,)).fetchall()
        assert not db.execute("SELECT 1 FROM charges WHERE state = 'held'").fetchall()
    resales = {txn: state for txn, state in rows}
    assert len(resales) == len(rows) <= 6, rows  # at most one charge a resale
    settled = {_ticket_of(six.root / "bo" / "boxoffice.db", txn) for txn, state in resales.items() if state == "settled"}
    assert held == settled, (held, resales)  # Bob holds exactly the tickets he was charged for
    for i in range(6):
        holder = six.bo.status(EVENT, f"r{i}")["holder"]
        assert (holder != alice_chain) == (f"r{i}" in held)
