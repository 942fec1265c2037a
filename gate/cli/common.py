"""What the `gate` commands share: exit codes, the sub-command helper, time and decision formats, signals.

Every command module of this package registers its commands with `command`
(help with an example, a handler that returns an exit code) and uses these
names; nothing outside gate.cli imports them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from gate.config import Config
from gate.decide import Decision
from gate.exc import ConfigError

#: every command: 0 all admitted / success, 1 something was rejected or refused, 2 a usage, config, key or
#: store error (with a message naming the file and the key, never a traceback)
EXIT_OK, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2

Handler = Callable[[argparse.Namespace, Config], int]
SubParsers = argparse._SubParsersAction


#: what a command does with its home folder: needs it to be there (the default: a mistyped --home is an
#: error, not a new empty home that answers `unknown_key`), may make it, or does not use it
HOME_NEEDED, HOME_MADE, HOME_UNUSED = "needed", "made", "unused"


def command(sub: SubParsers, common: argparse.ArgumentParser, name: str, handler: Handler, help: str,
            example: str, *, home: str = HOME_NEEDED) -> argparse.ArgumentParser:
    """A sub-command with the common options, `help` as its description and an example as its epilog."""
    p = sub.add_parser(name, parents=[common], help=help, description=help, epilog=f"Example: {example}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=handler, home_rule=home)
    return p


def home_given(args: argparse.Namespace) -> bool:
    """Whether the command line or the environment named a home (else the default one is assumed)."""
    return bool(args.home or args.config or os.environ.get("QRGATE_HOME"))


def check_home(rule: str, config: Config, given: bool) -> None:
    """ConfigError when the command needs its home and neither it nor its keys folder (keys.dir may point
    elsewhere) is there (`given`: by --home or QRGATE_HOME)."""
    if rule != HOME_NEEDED or config.home.is_dir() or config.keys_dir.is_dir():
        return
    origin = "--home or QRGATE_HOME; mistyped?" if given else "the default home: set QRGATE_HOME or pass --home DIR"
    raise ConfigError(f"{config.home}: no such folder ({origin}); a new home is made by `gate keys new`, "
                      "`gate keys import`, `gate provision`, `gate boxoffice init` or `gate wallet new`")


def iso(ts: float | None) -> str:
    """Unix seconds as ISO 8601 UTC ("2026-11-21T19:02:03.120Z"); '-' for None."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: the units of a time relative to now ("+2h", "now-30m")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RELATIVE = re.compile(r"(?:now)?(?:([+-])(\d+)([smhd]))?")


def parse_time(text: str, now: Callable[[], float] = time.time) -> int:
    """Unix seconds from digits, ISO 8601 (a time without zone is UTC), or a time relative to now: `now`,
    `+1d`, `-2h`, `now+90m` (units s, m, h, d; a date in the docs that never expires)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    relative = _RELATIVE.fullmatch(text) if text else None
    if relative and (text.startswith("now") or relative.group(1)):
        sign, count, unit = relative.groups()
        offset = int(count) * _UNITS[unit] if count else 0
        return int(now()) + (-offset if sign == "-" else offset)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither unix seconds, an ISO 8601 time nor now/+1d/-2h") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def time_arg(text: str) -> int:
    """An argparse type: unix seconds or ISO 8601."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port_arg(text: str) -> int:
    """An argparse type: a TCP port (0: any free port)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {text!r}")
    return int(text)


def format_decision(d: Decision) -> str:
    """The one line `gate check` prints for a decision: outcome, reason, event/ticket, details (README)."""
    parts = [d.outcome.value, d.reason.value or "-"]
    if d.ticket_id is not None:
        parts.append(f"{d.event}/{d.ticket_id}")
        if d.seat:
            parts.append(f"seat={d.seat}")
    if d.first_gate is not None:
        parts.append(f"first_used_at={d.first_gate} first_used={iso(d.first_at)}")
    if d.provisional:
        parts.append("provisional")
    if d.detail:
        parts.append(f"({d.detail})")
    return " ".join(parts)


def plural(n: int, noun: str) -> str:
    """'1 claim', '2 claims' (a regular plural)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def counted(counts: Mapping[str, int]) -> str:
    """Event counters in words, for a closing line: 'catchups 2, late won 1' ('' when nothing was counted)."""
    return ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in counts.items())


#: what an outbox entry still there at exit is waiting for (gate/ledger.py)
_OUTBOX_LEFT = {"late": "offline admission", "release": "release", "claim": "unanswered claim",
                "pass_late": "offline list scan", "pass_void": "refused list scan to undo",
                "pass_claim": "unanswered list scan"}


def outbox_left(left: Mapping[str, int]) -> str:
    """The outbox at exit in words: 'outbox empty' or 'outbox: 1 offline admission not yet delivered'."""
    if not left:
        return "outbox empty: the arbiter has every scan of this gate"
    what = ", ".join(plural(n, _OUTBOX_LEFT.get(state, f"{state} entry")) for state, n in sorted(left.items()))
    return f"outbox: {what} not yet delivered (`gate sync` delivers them)"


def need_broker(config: Config) -> None:
    if not config.sync.broker:
        raise ConfigError("no broker: give --broker mqtt://host:port (or sync.broker, or QRGATE_SYNC_BROKER)")


def stop_on_signals(again: Callable[[int], None] | None = None) -> threading.Event:
    """An Event set by the first SIGTERM or SIGINT; `again(signum)` on the second (it must take no lock)."""
    from gate.daemon.signals import on_stop_signals

    stop = threading.Event()
    on_stop_signals(lambda _signum: stop.set(), again)
    return stop


def say(line: str) -> None:
    """Print a line for whoever started us; if they stopped reading (a closed pipe), say nothing more."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error again at exit
