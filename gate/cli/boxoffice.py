"""`gate boxoffice ...`, `gate fake-agent init` and `gate supersede` (docs/ownership.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gate.cli.blocks import add_in, add_out, amount, emit, kinds, read_message, step
from gate.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    HOME_MADE,
    SubParsers,
    command,
    iso,
    port_arg,
    say,
    stop_on_signals,
    time_arg,
)
from gate.cli.tickets import mint_ids
from gate.config import Config
from gate.ownership.block import Message
from gate.ownership.exc import ChainError, MalformedBlock
from gate.ownership.protocol import Listing, format_amount
from gate.wiring import (
    boxoffice_server,
    create_boxoffice,
    fake_agent_server,
    open_boxoffice,
    open_fake_agent,
    open_store,
)

if TYPE_CHECKING:
    from gate.ownership.web import JsonServer

Sub = SubParsers


def add(sub: Sub, common: argparse.ArgumentParser) -> None:
    for add_group in (add_boxoffice, add_fake_agent, add_supersede):
        add_group(sub, common)


def add_boxoffice(sub: Sub, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("boxoffice", help="the box office: inventory, sales, resales (docs/ownership.md)",
                           description="The box office: sells tickets and knows who holds each one now.")
    bs = group.add_subparsers(title="box office commands", metavar="ACTION")
    p = command(bs, common, "init", cmd_init, "create the box office's chain (its identity block); prints its\n"
                 "chain id: the wallets' --boxoffice-id and the gates' ownership.boxoffice_id",
                 "gate boxoffice init --name 'Town Hall box office'", home=HOME_MADE)
    p.add_argument("--name", default="box office")
    p = command(bs, common, "trust-agent", cmd_trust_agent, "accept payment confirmations from this agent",
                 "gate boxoffice trust-agent agent.id.json")
    add_in(p, "the agent's identity message")
    p = command(bs, common, "add", cmd_add, "list tickets for sale (the holder code runs over the validity window)",
                 "gate boxoffice add --event show7 --seat 12B --id 9f2 --price 25.00 "
                 "--valid-from 2026-11-21T18:00Z --valid-until 2026-11-22T18:00Z")
    p.add_argument("--event", required=True)
    p.add_argument("--seat", default="")
    p.add_argument("--id", dest="ticket_id", help="ticket id (with --count N: ID-1 .. ID-N); default random")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--price", type=amount, required=True, help="e.g. 25.00")
    p.add_argument("--currency", default="EUR")
    p.add_argument("--valid-from", type=time_arg, required=True, metavar="T", help="unix seconds, ISO 8601, or now, +1d, -2h")
    p.add_argument("--valid-until", type=time_arg, required=True, metavar="T", help="unix seconds, ISO 8601, or now, +1d, -2h")
    p.add_argument("--slot", type=int, help="seconds per code slot (default ownership.slot)")
    p.add_argument("--title", default="", help="the event's name as holders see it, e.g. 'Hamlet'")
    p.add_argument("--venue", default="", help="where it is, e.g. 'Town Hall, Main Street'")
    p.add_argument("--paper", action="store_true",
                   help="its holder may take a static paper code (no phone); without it the code always rotates")
    p = command(bs, common, "list", cmd_list, "every ticket: state, current holder and generation",
                 "gate boxoffice list --json")
    p.add_argument("--json", action="store_true")
    p = command(bs, common, "catalog", cmd_catalog, "write the catalog wallets trust: identity and listings",
                 "gate boxoffice catalog --out catalog.json")
    add_out(p)
    for name, handler, what, example in (
        ("handle", cmd_handle, "a purchase or resale request -> reservation and payment request, or holds",
         "gate boxoffice handle request.json --out reply.json"),
        ("confirm", cmd_confirm, "an agent's payment confirmation -> the ownership block for the buyer",
         "gate boxoffice confirm paid.json --out owned.json"),
        ("transfer", cmd_transfer, "the holder's release -> ownership for the buyer, generation raised",
         "gate boxoffice transfer release.json --out owned.json"),
    ):
        p = command(bs, common, name, handler, what, example)
        add_in(p, "the message received")
        add_out(p)
    p = command(bs, common, "serve", cmd_serve,
                 "the box office as an HTTP JSON service (GET /openapi.json), expiring reservations and holds\n"
                 "on its own timer, until SIGTERM; its first line: 'box office CHAIN at URL'",
                 "gate boxoffice serve --port 8770   # then: curl http://127.0.0.1:8770/catalog")
    add_listen(p, 8770)
    p.add_argument("--tick", type=float, default=1.0, metavar="S", help="seconds between expiry checks (default 1)")
    p = command(bs, common, "expire", cmd_expire, "free unpaid reservations and holds past their time (timeout blocks)",
                 "gate boxoffice expire --out timeouts.json")
    add_out(p)


def add_fake_agent(sub: Sub, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("fake-agent", help="a payment agent that moves no money (demo and tests only)",
                           description="A FAKE payment agent: confirms every payment, moves no money.")
    fs = group.add_subparsers(title="fake agent commands", metavar="ACTION")
    p = command(fs, common, "init", cmd_agent_init,
                 "create (once) the fake agent in HOME and write its identity message",
                 "gate fake-agent init --home agent/ --out agent.id.json", home=HOME_MADE)
    add_out(p)
    p = command(fs, common, "serve", cmd_agent_serve,
                 "the FAKE agent as an HTTP service (payments held until the box office settles, webhook to it,\n"
                 "refunds); it moves no money.  Until SIGTERM",
                 "gate fake-agent serve --home agent/ --boxoffice http://127.0.0.1:8770 --port 8771")
    p.add_argument("--boxoffice", required=True, metavar="URL", help="the box office it notifies")
    add_listen(p, 8771)


def add_supersede(sub: Sub, common: argparse.ArgumentParser) -> None:
    p = command(sub, common, "supersede", cmd_supersede,
                 "record a ticket's new ownership generation: older ones are REVOKED superseded here\n"
                 "(and, with --broker, at every gate through the arbiter's stream)",
                 "gate supersede 9f2 --event show7 --generation 2")
    p.add_argument("ticket_id")
    p.add_argument("--event", required=True)
    p.add_argument("--generation", type=int, required=True)


# -- handlers ------------------------------------------------------------------------------

def cmd_init(args: argparse.Namespace, config: Config) -> int:
    try:
        chain = create_boxoffice(config, args.name)
    except ChainError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{chain} {args.name}")
    return EXIT_OK


@step
def cmd_trust_agent(args: argparse.Namespace, config: Config) -> int:
    blocks = read_message(args.message).identities()
    if len(blocks) != 1:
        raise MalformedBlock(f"expected one identity block, found {len(blocks)}")
    print(f"{open_boxoffice(config).trust_agent(blocks[0])} trusted as a payment agent")
    return EXIT_OK


def cmd_add(args: argparse.Namespace, config: Config) -> int:
    slot = args.slot or config.ownership.slot
    slots = -(-(args.valid_until - args.valid_from) // slot)
    if args.count < 1 or not 0 < args.valid_from < args.valid_until or not 1 <= slots <= 65535:
        print("gate: error: need --count >= 1 and a validity window of 1..65535 slots", file=sys.stderr)
        return EXIT_ERROR
    if args.valid_until <= time.time():  # listed, sold and paid, then INVALID expired at every gate
        print(f"gate: error: --valid-until {iso(args.valid_until)} is over already: nothing to sell "
              "(relative times never go stale: --valid-from now --valid-until +1d)", file=sys.stderr)
        return EXIT_ERROR
    office = open_boxoffice(config)
    for ticket_id in mint_ids(args.ticket_id, args.count):
        item = Listing(args.event, ticket_id, args.seat, args.price, args.currency, args.valid_from,
                       args.valid_until, slot, slots, title=args.title, venue=args.venue)
        added = office.add(item, paper=args.paper)
        print(f"{args.event}/{ticket_id} seat={args.seat or '-'} {format_amount(args.price, args.currency)}"
              f" {'listed' if added else 'was listed already'}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace, config: Config) -> int:
    for row in open_boxoffice(config).holders():
        print(json.dumps(row) if args.json else
              f"{row['event']}/{row['ticket_id']} seat={row['seat'] or '-'} {row['state']}"
              f" holder={row['holder'] or '-'} generation={row['generation']}"
              f"{' pending=' + str(row['pending']) if row['pending'] else ''}")
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace, config: Config) -> int:
    text = open_boxoffice(config).catalog().dumps()
    if args.out is None:
        print(text)
    else:
        Path(args.out).write_text(text + "\n")
        print(f"catalog -> {args.out}")
    return EXIT_OK


@step
def cmd_handle(args: argparse.Namespace, config: Config) -> int:
    reply = open_boxoffice(config).handle(read_message(args.message))
    emit(args, reply, f"answered: {kinds(reply)}")
    return EXIT_OK


@step
def cmd_confirm(args: argparse.Namespace, config: Config) -> int:
    reply = open_boxoffice(config).confirm(read_message(args.message))
    emit(args, reply, f"paid: {kinds(reply)}")
    return EXIT_OK


@step
def cmd_transfer(args: argparse.Namespace, config: Config) -> int:
    office = open_boxoffice(config)
    reply = office.transfer(read_message(args.message))
    emit(args, reply, f"transferred: {kinds(reply)}")
    for row in office.supersessions()[-1:]:
        if not config.sync.broker:
            print(f"gates: gate supersede {row['ticket_id']} --event {row['event']} --generation {row['generation']}",
                  file=sys.stderr)
            continue
        from gate.cli.sync import distribute_generation

        return distribute_generation(config, str(row["event"]), str(row["ticket_id"]), int(row["generation"]),  # type: ignore[call-overload]
                                     at=float(row["at"]))  # type: ignore[arg-type]
    return EXIT_OK


def add_listen(p: argparse.ArgumentParser, port: int) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=port_arg, default=port, help=f"port (default {port}; 0: any free port)")


def serve(server: JsonServer, what: str) -> int:
    """Run a started service until SIGTERM or SIGINT; its URL on the first line of output."""
    stop = stop_on_signals()
    say(f"{what} at {server.url}")
    try:
        stop.wait()
    finally:
        server.stop()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    server = boxoffice_server(config, host=args.host, port=args.port, tick=args.tick).start()
    return serve(server, f"box office {server.office.chain}")  # the chain id: gates' ownership.boxoffice_id


def cmd_agent_serve(args: argparse.Namespace, config: Config) -> int:
    try:
        server = fake_agent_server(config.home, args.boxoffice, host=args.host, port=args.port)
    except ChainError as exc:
        print(f"gate: error: box office {args.boxoffice}: {getattr(exc, 'code', '')}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return serve(server.start(), "FAKE payment agent (moves no money)")


def cmd_expire(args: argparse.Namespace, config: Config) -> int:
    reply = open_boxoffice(config).expire()
    emit(args, reply, f"expired: {kinds(reply)}")
    return EXIT_OK


def cmd_agent_init(args: argparse.Namespace, config: Config) -> int:
    agent = open_fake_agent(config.home, create=True)
    emit(args, Message((agent.identity_block,)), f"fake payment agent {agent.identity_block.chain}")
    return EXIT_OK


def cmd_supersede(args: argparse.Namespace, config: Config) -> int:
    if args.generation < 1:
        print("gate: error: --generation must be at least 1", file=sys.stderr)
        return EXIT_ERROR
    with open_store(config) as store:
        raised = store.supersede(args.event, args.ticket_id, args.generation, at=time.time(), by=config.gate_id)
    print(f"{args.event}/{args.ticket_id} generation {args.generation}"
          f" {'now holds it' if raised else 'or a newer one was known already'}")
    if config.sync.broker:  # every gate gets it through the arbiter's stream, like a revocation
        from gate.cli.sync import distribute_generation

        return distribute_generation(config, args.event, args.ticket_id, args.generation)
    return EXIT_OK
