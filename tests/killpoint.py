"""Run the real `gate` command and SIGKILL it at one precise step (for the wallet crash tests).

    python tests/killpoint.py CLASS.METHOD:before|after[:N] --home DIR wallet sell ...

Before the CLI runs, the named method (of BoxOfficeClient, AgentClient, OnlineWallet or Wallet) is
wrapped so that its Nth call (the first by default) kills the process with SIGKILL just before the
method runs, or just after it returned: nothing after that point happens (no commit, no cleanup, no
word printed), as if the phone's battery died there.  The production code has no hook for this.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from gate.ownership.client import AgentClient, BoxOfficeClient
from gate.ownership.online import OnlineWallet
from gate.ownership.wallet import Wallet

CLASSES: dict[str, type] = {c.__name__: c for c in (AgentClient, BoxOfficeClient, OnlineWallet, Wallet)}


def arm(spec: str) -> None:
    """Wrap the method `spec` names (see the module docstring)."""
    name, when, *nth = spec.split(":")
    owner, method = name.split(".")
    cls, count = CLASSES[owner], int(nth[0]) if nth else 1
    if when not in ("before", "after"):
        raise SystemExit(f"killpoint: {when!r}: before or after")
    original: Callable[..., Any] = getattr(cls, method)
    calls = 0

    @functools.wraps(original)
    def killing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == count and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls == count and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(cls, method, killing)


if __name__ == "__main__":
    arm(sys.argv[1])
    from gate.cli import main

    sys.exit(main(sys.argv[2:]))
