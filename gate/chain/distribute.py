"""Raised ownership generations to every gate, through the arbiter's stream (sync/, docs/mqtt.md).

The box office (or an admin) sends a ``revoke`` request whose payload holds
``"generations": [{"event", "ticket", "gen", "by", "at"}]``; the arbiter puts
each on its sequenced stream as kind ``generation``, and every gate applies it
to its ``generations`` table (gate.store.Store.supersede) exactly as it applies
a revocation, catching up after a reconnect.
"""

from __future__ import annotations

import sys

from gate.cli_sync import ask_arbiter, first_seq
from gate.config import Config


def distribute_generation(config: Config, event: str, ticket_id: str, generation: int, *, at: float = 0.0) -> int:
    """Send one raised generation to the arbiter; exit code 0 once it confirms, 1 if it does not."""
    from sync import wire

    item = wire.Supersession(event, ticket_id, generation, config.gate_id, at)
    reply, broker = ask_arbiter(config, "generation", "generations", [item])
    if reply is None:
        print(f"gate: warning: the arbiter did not confirm via {broker}: gates have not heard of generation "
              f"{generation} yet (run again)", file=sys.stderr)
        return 1
    print(f"generation {generation} of {event}/{ticket_id} on the arbiter's stream (seq {first_seq(reply)})")
    return 0
