"""`gate wallet ...`: the holder's side of every step, and the wallet page (docs/ownership.md)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType

from gate.cli.blocks import add_in, add_out, amount, emit, kinds, read_message, read_text, step
from gate.cli.common import EXIT_ERROR, EXIT_OK, SubParsers, command
from gate.config import Config
from gate.ownership.block import Message
from gate.ownership.exc import ChainError, MalformedBlock
from gate.ownership.protocol import CATALOG_FORMAT, Catalog
from gate.ticket import QR_ERROR
from gate.wiring import create_wallet, open_fake_agent, open_wallet

Sub = SubParsers


def add(sub: Sub, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("wallet", help="the holder's wallet: buy, pay, resell, show the code (docs/ownership.md)",
                           description="The holder's wallet: its chain, its tickets, its rotating codes.")
    ws = group.add_subparsers(title="wallet commands", metavar="ACTION")
    p = command(ws, common, "new", cmd_new, "create this wallet's chain (its identity)",
                 "gate wallet new --name alice --home ~/alice")
    p.add_argument("--name", required=True)
    p = command(ws, common, "identity", cmd_identity, "write this wallet's identity message (for a buyer or seller)",
                 "gate wallet identity --out alice.id.json")
    add_out(p)
    p = command(ws, common, "trust", cmd_trust, "trust a box office catalog or an agent; know another wallet",
                 "gate wallet trust catalog.json")
    add_in(p, "a catalog or an identity message")
    p = command(ws, common, "buy", cmd_buy, "ask the box office for a ticket, or (--from) its holder",
                 "gate wallet buy --event show7 --ticket 9f2 --out request.json")
    p.add_argument("--event", required=True)
    p.add_argument("--ticket", required=True)
    p.add_argument("--from", dest="seller", metavar="SELLER", help="the holder's identity file or chain id (resale)")
    p.add_argument("--paper", action="store_true", help="a paper ticket: one static code, printed once")
    add_out(p)
    p = command(ws, common, "accept", cmd_accept, "verify and store the blocks addressed to this wallet",
                 "gate wallet accept owned.json")
    add_in(p, "the message received")
    p = command(ws, common, "pay", cmd_pay, "pay a payment request or invoice through a payment agent",
                 "gate wallet pay reply.json --fake-agent agent/ --out paid.json")
    add_in(p, "the message with the payment request or invoice")
    p.add_argument("--fake-agent", type=Path, required=True, metavar="DIR",
                   help="the FAKE agent's home (`gate fake-agent init`); it moves no money")
    add_out(p)
    p = command(ws, common, "sell", cmd_sell, "invoice a buyer's resale request (the box office never sees the price)",
                 "gate wallet sell request.json --price 40.00 --out invoice.json")
    add_in(p, "the buyer's request")
    p.add_argument("--price", type=amount, required=True)
    p.add_argument("--currency", default="EUR")
    add_out(p)
    p = command(ws, common, "gift", cmd_gift, "give the ticket to the requesting wallet: a release, no payment",
                 "gate wallet gift request.json --out release.json")
    add_in(p, "the receiver's request")
    add_out(p)
    p = command(ws, common, "release", cmd_release, "after the agent's confirmation: release the ticket to the buyer",
                 "gate wallet release paid.json --out release.json")
    add_in(p, "the message with the payment confirmation")
    add_out(p)
    p = command(ws, common, "tickets", cmd_tickets, "tickets held (and given up) and deals in progress",
                 "gate wallet tickets --json")
    p.add_argument("--json", action="store_true")
    p = command(ws, common, "code", cmd_code, "the QR text to show now (rotating, or the paper code)",
                 "gate wallet code --event show7 --ticket 9f2 --qr code.png")
    p.add_argument("--event", required=True)
    p.add_argument("--ticket", required=True)
    p.add_argument("--qr", type=Path, metavar="FILE", help="also write the QR image (.png or .svg)")
    p = command(ws, common, "serve", cmd_serve, "the wallet page with the rotating QR on 127.0.0.1, until SIGTERM",
                 "gate wallet serve --port 8765   # then open http://127.0.0.1:8765/")
    p.add_argument("--port", type=int, help="default ownership.page_port (0: any free port)")


def cmd_new(args: argparse.Namespace, config: Config) -> int:
    try:
        chain = create_wallet(config, args.name)
    except ChainError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{chain} {args.name}")
    return EXIT_OK


def cmd_identity(args: argparse.Namespace, config: Config) -> int:
    wallet = open_wallet(config)
    emit(args, wallet.identity(), f"identity {wallet.chain}")
    return EXIT_OK


@step
def cmd_trust(args: argparse.Namespace, config: Config) -> int:
    text = read_text(args.message)
    wallet = open_wallet(config)
    if CATALOG_FORMAT in text[:200]:
        catalog = Catalog.loads(text)
        print(f"{wallet.trust(catalog)} trusted as box office ({len(catalog.listings)} tickets listed)")
        return EXIT_OK
    for block in Message.loads(text).identities():
        identity = block.identity()
        print(f"{wallet.trust(block)} {identity.name} ({identity.role})")
    return EXIT_OK


@step
def cmd_buy(args: argparse.Namespace, config: Config) -> int:
    wallet = open_wallet(config)
    seller = args.seller or ""
    if seller and Path(seller).exists():
        blocks = read_message(seller).identities()
        if len(blocks) != 1:
            raise MalformedBlock(f"{seller}: expected one identity block")
        seller = wallet.trust(blocks[0])
    request = wallet.buy(args.event, args.ticket, seller=seller, mode="paper" if args.paper else "rotating")
    emit(args, request, f"requested {args.event}/{args.ticket}{' from ' + seller if seller else ''}")
    return EXIT_OK


@step
def cmd_accept(args: argparse.Namespace, config: Config) -> int:
    received = open_wallet(config).accept(read_message(args.message))
    for rec in received:
        print(f"{rec.block.kind} from {rec.sender.identity.name}{'' if rec.fresh else ' (seen before)'}")
    return EXIT_OK


@step
def cmd_pay(args: argparse.Namespace, config: Config) -> int:
    agent = open_fake_agent(args.fake_agent)
    reply = open_wallet(config).pay(read_message(args.message), agent)
    emit(args, reply, f"paid: {kinds(reply)}")
    return EXIT_OK


@step
def cmd_sell(args: argparse.Namespace, config: Config) -> int:
    reply = open_wallet(config).sell(read_message(args.message), args.price, args.currency)
    emit(args, reply, f"invoiced: {kinds(reply)}")
    return EXIT_OK


@step
def cmd_gift(args: argparse.Namespace, config: Config) -> int:
    reply = open_wallet(config).gift(read_message(args.message))
    emit(args, reply, f"given: {kinds(reply)}")
    return EXIT_OK


@step
def cmd_release(args: argparse.Namespace, config: Config) -> int:
    reply = open_wallet(config).release(read_message(args.message))
    emit(args, reply, f"released: {kinds(reply)}")
    return EXIT_OK


def cmd_tickets(args: argparse.Namespace, config: Config) -> int:
    wallet = open_wallet(config)
    for row in wallet.tickets():
        print(json.dumps(row) if args.json else
              f"{row['event']}/{row['ticket_id']} generation={row['generation']} {row['state']}")
    for row in wallet.deals():
        print(json.dumps({"deal": row}) if args.json else
              f"deal {row['txn']} {row['role']} {row['event']}/{row['ticket_id']} {row['state']}")
    return EXIT_OK


@step
def cmd_code(args: argparse.Namespace, config: Config) -> int:
    text, code, terms = open_wallet(config).code(args.event, args.ticket)
    print(text)
    if args.qr:
        import segno

        segno.make_qr(text, error=QR_ERROR, boost_error=False).save(str(args.qr), scale=8, border=4)
    print(f"slot {code.t} of {terms.slots}, ends at {terms.slot_ends(code.t)}", file=sys.stderr)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from gate.ownership.webpage import WalletPage

    port = config.ownership.page_port if args.port is None else args.port
    page = WalletPage(open_wallet(config), port=port)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    print(f"wallet page at {page.url}", flush=True)
    try:
        page.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        page.server.server_close()
    return EXIT_OK
