"""`gate wallet ...`: the holder's side of every step, and the wallet page (docs/ownership.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gate.cli.blocks import add_in, add_out, amount, emit, kinds, read_message, read_text, step
from gate.cli.common import EXIT_ERROR, EXIT_OK, HOME_MADE, SubParsers, command, say, stop_on_signals
from gate.config import Config
from gate.ownership.block import Message
from gate.ownership.exc import ChainError, MalformedBlock, Refused
from gate.ownership.online import OnlineWallet
from gate.ownership.protocol import CATALOG_FORMAT, Catalog
from gate.ownership.wallet import SETTLED, Wallet
from gate.ticket import QR_ERROR
from gate.wiring import create_wallet, open_fake_agent, open_wallet

Sub = SubParsers


def add(sub: Sub, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("wallet", help="the holder's wallet: buy, pay, resell, show the code (docs/ownership.md)",
                           description="The holder's wallet: its chain, its tickets, its rotating codes.")
    ws = group.add_subparsers(title="wallet commands", metavar="ACTION")
    p = command(ws, common, "new", cmd_new, "create this wallet's chain (its identity)",
                 "gate wallet new --name alice --home ~/alice", home=HOME_MADE)
    p.add_argument("--name", required=True)
    p = command(ws, common, "identity", cmd_identity, "write this wallet's identity message (for a buyer or seller)",
                 "gate wallet identity --out alice.id.json")
    add_out(p)
    p = command(ws, common, "connect", cmd_connect,
                 "work with a box office over HTTP: trust its signed catalog (only if it is chain ID) and its agent",
                 "gate wallet connect http://127.0.0.1:8770 --boxoffice-id 3f2a... --agent http://127.0.0.1:8771")
    p.add_argument("url", help="the box office's URL")
    p.add_argument("--boxoffice-id", required=True, metavar="CHAIN",
                   help="the box office's chain id, from the theatre itself (its site, a poster): a fake theatre fails")
    p.add_argument("--agent", required=True, metavar="URL", help="the payment agent's URL")
    p = command(ws, common, "sync", cmd_sync, "fetch what waits in this wallet's mailbox at the box office",
                 "gate wallet sync")
    p = command(ws, common, "trust", cmd_trust, "trust a box office catalog or an agent; know another wallet",
                 "gate wallet trust catalog.json")
    add_in(p, "a catalog or an identity message")
    p = command(ws, common, "buy", cmd_buy, "ask the box office for a ticket, or (--from) its holder; a connected\n"
                 "wallet without --out buys it over HTTP and pays through the agent",
                 "gate wallet buy --event show7 --ticket 9f2   # or --out request.json (files)")
    p.add_argument("--event", required=True)
    p.add_argument("--ticket", required=True)
    p.add_argument("--from", dest="seller", metavar="SELLER", help="the holder's identity file or chain id (resale)")
    p.add_argument("--paper", action="store_true", help="a paper ticket: one static code, printed once")
    add_out(p)
    p = command(ws, common, "accept", cmd_accept, "verify and store the blocks addressed to this wallet",
                 "gate wallet accept owned.json")
    add_in(p, "the message received")
    p = command(ws, common, "pay", cmd_pay, "pay a payment request or invoice through a payment agent\n"
                 "(connected, without FILE: the seller's invoice for --event/--ticket from the mailbox)",
                 "gate wallet pay --event show7 --ticket 9f2   # files: pay reply.json --fake-agent agent/")
    add_optional_in(p, "the message with the payment request or invoice")
    p.add_argument("--fake-agent", type=Path, metavar="DIR",
                   help="files mode: the FAKE agent's home (`gate fake-agent init`); it moves no money")
    add_out(p)
    p = command(ws, common, "sell", cmd_sell, "invoice a buyer's resale request (the box office never sees the price)",
                 "gate wallet sell --event show7 --ticket 9f2 --price 40.00   # files: sell request.json ...")
    add_optional_in(p, "the buyer's request")
    p.add_argument("--price", type=amount, required=True)
    p.add_argument("--currency", default="EUR")
    add_out(p)
    p = command(ws, common, "gift", cmd_gift, "give the ticket to the requesting wallet: a release, no payment",
                 "gate wallet gift --event show7 --ticket 9f2   # files: gift request.json --out release.json")
    add_optional_in(p, "the receiver's request")
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
    p = command(ws, common, "serve", cmd_serve,
                 "the wallet page on 127.0.0.1: tickets in plain words, the rotating QR,\n"
                 "buy, pay, sell and give (connected); until SIGTERM",
                 "gate wallet serve --port 8765   # then open the address it prints (it holds the session key)")
    p.add_argument("--port", type=int, help="default ownership.page_port (0: any free port)")


def add_optional_in(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("message", metavar="FILE", nargs="?", help=f"files mode: {what} ('-' for stdin)")
    p.add_argument("--event", help="connected: the event of the ticket")
    p.add_argument("--ticket", help="connected: the ticket id")


def online(config: Config) -> OnlineWallet:
    return OnlineWallet.of(open_wallet(config), patience=10.0)


def wanted(args: argparse.Namespace) -> tuple[str, str]:
    if not args.event or not args.ticket:
        raise MalformedBlock("give FILE (files mode), or --event and --ticket (a connected wallet)")
    return str(args.event), str(args.ticket)


def await_outcome(w: OnlineWallet, txn: str, seconds: float = 10.0) -> str:
    """Read the mailbox until the deal is owned or refunded (or `seconds` pass); the state, in plain words."""
    end = time.monotonic() + seconds
    while (state := w.state(txn)) not in SETTLED and time.monotonic() < end:
        time.sleep(0.2)
        w.sync()
    return {"owned": "the ticket is yours", "refunded": "refunded: the ticket could not be handed over",
            "timeout": "too late: the reservation expired"}.get(state, f"paid; waiting for the box office ({state})")


@step
def cmd_connect(args: argparse.Namespace, config: Config) -> int:
    w = OnlineWallet.connect(open_wallet(config), args.url, args.boxoffice_id, args.agent)
    listed = [x for x in w.office.catalog(args.boxoffice_id).listings if x.state == "available"]
    print(f"connected to box office {args.boxoffice_id} at {args.url}: {len(listed)} tickets on sale")
    return EXIT_OK


@step
def cmd_sync(args: argparse.Namespace, config: Config) -> int:
    for rec in online(config).sync():
        print(f"{rec.block.kind} from {rec.sender.identity.name}{'' if rec.fresh else ' (seen before)'}")
    return EXIT_OK


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
    if args.out is None and connected(wallet):
        return buy_online(args, OnlineWallet.of(wallet, patience=10.0), seller)
    request = wallet.buy(args.event, args.ticket, seller=seller, mode="paper" if args.paper else "rotating")
    emit(args, request, f"requested {args.event}/{args.ticket}{' from ' + seller if seller else ''}")
    return EXIT_OK


def connected(wallet: Wallet) -> bool:
    try:
        OnlineWallet.of(wallet)
    except Refused:
        return False
    return True


def buy_online(args: argparse.Namespace, w: OnlineWallet, seller: str) -> int:
    mode = "paper" if args.paper else "rotating"
    if seller:
        w.ask(args.event, args.ticket, seller)
        print(f"asked the holder for {args.event}/{args.ticket}; the box office holds it for you."
              f" When the invoice arrives: gate wallet pay --event {args.event} --ticket {args.ticket}")
        return EXIT_OK
    receipt = w.pay(w.buy(args.event, args.ticket, mode=mode))
    print(f"{args.event}/{args.ticket}: {await_outcome(w, receipt.blocks[-1].txn)}")
    return EXIT_OK


@step
def cmd_accept(args: argparse.Namespace, config: Config) -> int:
    received = open_wallet(config).accept(read_message(args.message))
    for rec in received:
        print(f"{rec.block.kind} from {rec.sender.identity.name}{'' if rec.fresh else ' (seen before)'}")
    return EXIT_OK


@step
def cmd_pay(args: argparse.Namespace, config: Config) -> int:
    if args.message is None:
        w = online(config)
        w.sync()
        receipt = w.pay(w.bill_for(*wanted(args)))
        print(f"{args.event}/{args.ticket}: {await_outcome(w, receipt.blocks[-1].txn)}")
        return EXIT_OK
    if args.fake_agent is None:
        raise MalformedBlock("files mode needs --fake-agent DIR")
    agent = open_fake_agent(args.fake_agent)
    reply = open_wallet(config).pay(read_message(args.message), agent)
    emit(args, reply, f"paid: {kinds(reply)}")
    return EXIT_OK


@step
def cmd_sell(args: argparse.Namespace, config: Config) -> int:
    if args.message is None:
        w = online(config)
        w.sync()
        w.sell(w.request_for(*wanted(args)), args.price, args.currency)
        print(f"{args.event}/{args.ticket}: invoice sent (only the buyer can read the price); the ticket moves"
              " when the buyer pays")
        return EXIT_OK
    reply = open_wallet(config).sell(read_message(args.message), args.price, args.currency)
    emit(args, reply, f"invoiced: {kinds(reply)}")
    return EXIT_OK


@step
def cmd_gift(args: argparse.Namespace, config: Config) -> int:
    if args.message is None:
        w = online(config)
        w.sync()
        w.gift(w.request_for(*wanted(args)))
        print(f"{args.event}/{args.ticket}: given away")
        return EXIT_OK
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
    wallet = open_wallet(config)
    page = WalletPage(wallet, OnlineWallet.of(wallet, patience=5.0) if connected(wallet) else None, port=port)
    page.start()
    stop = stop_on_signals()
    say(f"wallet page at {page.url}")  # the address holds this session's key: open exactly this one
    try:
        stop.wait()
    finally:
        page.stop()
    return EXIT_OK
