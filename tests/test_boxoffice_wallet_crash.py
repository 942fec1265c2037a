"""A wallet process killed with SIGKILL at each step of a resale or a gift (the seller's `gate wallet sell`,
`gift` and `sync`, the buyer's `buy --from`, `pay` and `sync`), then run again: the outcome is whole.

Each round is one ticket Alice bought and resells (or gives) to Bob, every step a real `gate wallet`
process against real box office and agent processes; in each round one step dies at a precise point
(tests/killpoint.py) and the same command is run again.  Afterwards: exactly one of them holds the
ticket, the box office agrees, a buyer charged holds it and the seller was paid (or the buyer was
refunded and the seller kept it), and each resale was charged at most once.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import gate_env
from office_fixtures import EVENT, Theatre, theatre, wait_for
from test_boxoffice_story import chain_of, join, wallet

from gate.ownership.wallet import Wallet

KILLPOINT = Path(__file__).resolve().parent / "killpoint.py"

#: (sale or gift, whose step, the command, where it dies)
ROUNDS = [
    ("sale", "alice", "sell", "BoxOfficeClient.mailbox:before"),  # before it read the request
    ("sale", "alice", "sell", "BoxOfficeClient.deposit:before"),  # the invoice in her file, not sent
    ("sale", "alice", "sell", "BoxOfficeClient.deposit:after"),  # sent, and no word said
    ("sale", "alice", "sync", "BoxOfficeClient.mailbox:after"),  # after Bob paid: fetched, nothing applied
    ("sale", "alice", "sync", "Wallet.accept:after"),  # after Bob paid: the first message applied, not noted
    ("sale", "bob", "buy", "BoxOfficeClient.resale:before"),  # his request in his file, not sent
    ("sale", "bob", "buy", "BoxOfficeClient.resale:after"),  # the box office holds it; he never heard
    ("sale", "bob", "pay", "AgentClient.charge:before"),  # his payment in his file, not sent
    ("sale", "bob", "pay", "AgentClient.charge:after"),  # charged; the receipt not applied
    ("gift", "alice", "gift", "OnlineWallet.sync:after"),  # before she answered
    ("gift", "alice", "gift", "BoxOfficeClient.release:before"),  # her release in her file, not sent
    ("gift", "alice", "gift", "BoxOfficeClient.release:after"),  # handed over; the answer not applied
    ("gift", "bob", "sync", "Wallet.accept:after"),  # Bob taking the ticket, the message not noted
]


@pytest.fixture
def hall(tmp_path: Path) -> Iterator[Theatre]:
    yield from theatre(tmp_path, *[f"k{i}" for i in range(len(ROUNDS))])


def killed(site: Theatre, who: str, spec: str, *args: str) -> None:
    """`gate wallet ARGS` as `who`, SIGKILLed at `spec`; it must have died there."""
    done = subprocess.run([sys.executable, str(KILLPOINT), spec, "--home", str(site.root / who), "wallet", *args],
                          capture_output=True, text=True, env=gate_env(site.root / who), cwd=site.root, timeout=120)
    assert done.returncode == -9, (spec, args, done.stdout, done.stderr)  # the kill point was reached


def holders(site: Theatre, ticket_id: str) -> str:
    """Who of Alice and Bob holds the ticket in their wallet's file ('' nobody, 'alicebob' both)."""
    return "".join(who for who in ("alice", "bob") if any(
        t["ticket_id"] == ticket_id and t["state"] == "held" for t in Wallet.open(str(site.root / who / "wallet.db")).tickets()))


def seller_state(site: Theatre, ticket_id: str) -> list[str]:
    """The states of Alice's deals as seller of the ticket."""
    return [str(d["state"]) for d in Wallet.open(str(site.root / "alice" / "wallet.db")).deals()
            if d["ticket_id"] == ticket_id and d["role"] == "seller"]


def test_a_wallet_killed_at_each_step_of_a_resale_or_gift_ends_whole(hall: Theatre) -> None:
    site = hall
    join(site, "alice", "bob")
    alice = chain_of(site, "alice")
    outcome: dict[str, tuple[str, str]] = {}
    for i, (how, victim, command, spec) in enumerate(ROUNDS):
        ticket = ("--event", EVENT, "--ticket", f"k{i}")
        assert "the ticket is yours" in wallet(site, "alice", "buy", *ticket).stdout
        steps = [("bob", "buy", *ticket, "--from", alice)]
        steps += [("alice", "sell", *ticket, "--price", "30.00"), ("bob", "pay", *ticket)] if how == "sale" else [
            ("alice", "gift", *ticket)]
        steps += [("alice", "sync"), ("bob", "sync")] if how == "sale" else [("bob", "sync"), ("alice", "sync")]
        said = []
        for who, *args in steps:
            if (who, args[0]) == (victim, command):
                killed(site, who, spec, *args)
                again = wallet(site, who, *args, ok=False)  # the wallet started again: the same command
                assert "Traceback" not in again.stderr, again.stderr
                said.append(again.stdout + again.stderr)
            else:
                wallet(site, who, *args)
        wait_for(lambda t=f"k{i}": not site.bo.status(EVENT, t)["on_hold"], timeout=30)  # type: ignore[misc]
        wallet(site, "alice", "sync")
        wallet(site, "bob", "sync")
        outcome[f"k{i}"] = (holders(site, f"k{i}"), " | ".join(said))
    bob = chain_of(site, "bob")
    with sqlite3.connect(site.root / "agent" / "fake-agent.db") as db:
        charges = {t: s for t, s in db.execute("SELECT txn, state FROM charges")}
    with sqlite3.connect(site.root / "bo" / "boxoffice.db") as db:
        ticket_of = {t: k for t, k in db.execute("SELECT txn, ticket_id FROM deals WHERE kind = 'resale'")}
    paid = {ticket_of[t]: s for t, s in charges.items() if t in ticket_of}
    assert len(paid) == len([t for t in charges if t in ticket_of]), charges  # at most one charge a resale
    assert "held" not in paid.values(), paid  # every charge was decided
    for i, (how, victim, command, spec) in enumerate(ROUNDS):
        k = f"k{i}"
        holder, said = outcome[k]
        status = site.bo.status(EVENT, k)
        where = (how, victim, command, spec, said)
        assert holder in ("alice", "bob"), where  # one of them holds it, not both, not neither
        assert status["holder"] == (bob if holder == "bob" else alice), where
        assert status["generation"] == (2 if holder == "bob" else 1), where
        if how == "sale":
            assert (holder == "bob") == (paid.get(k) == "settled"), (where, paid.get(k))  # paid <=> he holds it
            assert seller_state(site, k) == ["paid" if holder == "bob" else "timeout"], (where, seller_state(site, k))
        else:
            assert k not in paid and seller_state(site, k) == ["released"], where
        assert holder == "bob", where  # and here every round finished: the wallet started again did its step
