"""Raised ownership generations to every gate, through the arbiter's stream (sync/, docs/mqtt.md).

The box office (or an admin) sends a ``revoke`` request whose payload holds
``"generations": [{"event", "ticket", "gen", "by", "at"}]``; the arbiter puts
each on its sequenced stream as kind ``generation``, and every gate applies it
to its ``generations`` table (gate.store.Store.supersede) exactly as it applies
a revocation, catching up after a reconnect.
"""

from __future__ import annotations

import os
import sys

from gate.app import sync_parts
from gate.config import Config

REQUEST_TIMEOUT = 5.0


def distribute_generation(config: Config, event: str, ticket_id: str, generation: int, *, at: float = 0.0) -> int:
    """Send one raised generation to the arbiter; exit code 0 once it confirms, 1 if it does not."""
    from sync import Link, wire

    broker, topics, credentials = sync_parts(config)
    sender = config.gate_id
    link = Link(broker, f"{sender}-generation-{os.getpid()}", subscriptions=[], reply_topic=topics.reply(sender),
                on_message=lambda _msg: None, credentials=credentials)
    link.start()
    try:
        reply = None
        if link.wait_ready(config.sync.connect_wait):
            item = wire.Supersession(event, ticket_id, generation, sender, at)
            reply = link.request(topics.request("revoke", sender), wire.request("generations", [item]),
                                 REQUEST_TIMEOUT)
    finally:
        link.stop()
    if reply is None:
        print(f"gate: warning: the arbiter did not confirm via {broker}: gates have not heard of generation "
              f"{generation} yet (run again)", file=sys.stderr)
        return 1
    answers = wire.parse_answers(reply)
    seq = answers[0].seq if answers else None
    print(f"generation {generation} of {event}/{ticket_id} on the arbiter's stream (seq {seq})")
    return 0
