"""`gate demo`: the worked example on a throwaway issuer key and store."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from gate.app import build_decider
from gate.config import Config, load_config
from gate.keys import IssuerKey, KeyStore
from gate.outcomes import Outcome
from gate.ticket import Ticket, parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep", type=Path, metavar="DIR", help="use DIR as the demo home and keep it")


def forge(text: str) -> str:
    """The same ticket with the seat changed and the old tag kept: what a forger can do."""
    signed = parse(text)
    body = signed.ticket.replace(seat="1A").body()
    from gate.ticket import encode_text
    return encode_text(body, signed.tag)


def run_demo(args: argparse.Namespace, _config: Config) -> int:
    with tempfile.TemporaryDirectory(prefix="qrgate-demo-") as tmp:
        home = args.keep or Path(tmp)
        config = load_config(home, env={}, overrides={"gate.id": "gate-north-1"})
        key = IssuerKey.new("show7", "hmac")
        KeyStore(config.keys_dir).add_issuer_key(key)
        ticket = key.sign(Ticket(event="show7", ticket_id="9f2", seat="12B"))
        refunded = key.sign(Ticket(event="show7", ticket_id="a11", seat="14C"))
        print(f"minted show7|12B|9f2 with key {key.kid}: {ticket}")
        decider = build_decider(config)
        decider.store.revoke("show7", "a11", at=decider.clock(), by="demo", reason="refunded")
        story = [
            ("a friend's screenshot of the ticket", ticket, Outcome.ADMIT),
            ("the holder's phone, same image", ticket, Outcome.ALREADY_USED),
            ("a forged ticket (seat changed)", forge(ticket), Outcome.INVALID),
            ("a refunded (revoked) ticket", refunded, Outcome.REVOKED),
        ]
        failed = 0
        from gate.cli import format_decision
        for what, text, expected in story:
            decision = decider.decide(text)
            mark = "ok" if decision.outcome is expected else f"UNEXPECTED (wanted {expected})"
            failed += decision.outcome is not expected
            print(f"{what:40} -> {format_decision(decision)}  [{mark}]")
        decider.store.close()
    return 1 if failed else 0
