"""qrgate: signed tickets, the decision core and the local store (docs/architecture.md).

The package is laid out by role:

* the ticket and decision core, in this folder: ticket.py (format v1), holder.py (the holder's rotating
  code, checked at the gate), keys.py, verify.py, decide.py, store.py and ledger.py (the gate's SQLite
  file), sqlite.py (the one SQLite base), config.py, wiring.py (parts built from config);
* daemon/: the scan loop, sd_notify, signals;
* deploy/: provisioning, the venue CA, broker credentials;
* ownership/: the box office, wallets and payment agents (the gate core never imports it);
* cli/: the `gate` command (nothing imports it but the console script).

The public names below are handed on lazily: importing this package (or any pure module under it) loads
nothing it does not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_PUBLIC = {
    "Decider": "gate.decide", "Decision": "gate.decide", "GateError": "gate.exc", "IssuerKey": "gate.keys",
    "KeyStore": "gate.keys", "Keyring": "gate.keys", "VerifyKey": "gate.keys", "Outcome": "gate.outcomes",
    "Reason": "gate.outcomes", "Store": "gate.store", "Ticket": "gate.ticket", "Verifier": "gate.verify",
}

__all__ = [
    "Decider",
    "Decision",
    "GateError",
    "IssuerKey",
    "KeyStore",
    "Keyring",
    "Outcome",
    "Reason",
    "Store",
    "Ticket",
    "Verifier",
    "VerifyKey",
    "__version__",
]

if TYPE_CHECKING:
    from gate.decide import Decider, Decision
    from gate.exc import GateError
    from gate.keys import IssuerKey, Keyring, KeyStore, VerifyKey
    from gate.outcomes import Outcome, Reason
    from gate.store import Store
    from gate.ticket import Ticket
    from gate.verify import Verifier


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'gate' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
