"""What the `gate boxoffice`, `gate wallet` and `gate fake-agent` commands share: files in, files out, exit codes.

Messages are read from a file or '-' (stdin) and written to ``--out FILE`` or
stdout; a one-line summary goes to stderr when the message goes to stdout, so
a pipe carries only the message.  A refused step (any ChainError but a store
fault) prints ``gate: refused: CODE: why`` and exits 1; store and usage
errors exit 2 through gate.cli.main.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from gate.cli.common import EXIT_REJECTED, Handler
from gate.config import Config
from gate.ownership.block import Message
from gate.ownership.exc import ChainError, ChainStoreError, MalformedBlock, Refused
from gate.ownership.protocol import parse_amount

EXIT_REFUSED = EXIT_REJECTED  # a refused step


def step(handler: Handler) -> Handler:
    """Run a handler; a ChainError (not a store fault) is a refusal: print its code, exit 1."""
    @functools.wraps(handler)
    def run(args: argparse.Namespace, config: Config) -> int:
        try:
            return handler(args, config)
        except ChainStoreError:
            raise
        except ChainError as exc:
            if isinstance(exc, Refused) and isinstance(exc.reply, Message) and exc.reply.blocks:
                emit(args, exc.reply, "written anyway")
            print(f"gate: refused: {getattr(exc, 'code', 'chain_error')}: {exc}", file=sys.stderr)
            return EXIT_REFUSED
    return run


def read_text(source: str) -> str:
    try:
        return sys.stdin.read() if source == "-" else Path(source).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedBlock(f"{source}: cannot read: {exc}") from None


def read_message(source: str) -> Message:
    return Message.loads(read_text(source))


def emit(args: argparse.Namespace, message: Message, summary: str) -> None:
    """Write `message` to --out (summary to stdout) or to stdout (summary to stderr)."""
    out: Path | None = getattr(args, "out", None)
    if out is None:
        print(message.dumps())
        print(summary, file=sys.stderr)
        return
    out.write_text(message.dumps() + "\n")
    print(f"{summary} -> {out}")


def add_out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, metavar="FILE", help="write the message here (default: stdout)")


def add_in(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("message", metavar="FILE", help=f"{what} ('-' for stdin)")


def amount(text: str) -> int:
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def kinds(message: Message) -> str:
    return ", ".join(f"{b.kind}#{b.index}" for b in message.blocks if not b.is_identity) or "nothing"
