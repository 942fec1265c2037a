"""The stream follower: catches a gate or a dashboard up with the arbiter's stream, page by page.

Gates and the dashboard both follow the arbiter's sequence-numbered stream
(docs/mqtt.md, "The stream"): they apply live batches as they come and, on
every (re)connect, on a gap, and when the arbiter's status says its head is
ahead, they ask for what they missed with ``catchup`` requests.  This module
is that conversation, once; what "apply" means (the gate's ledger, the
dashboard's history) and the ordering rule (gate/sequence.py) belong to the
follower's store.

What a caller may rely on: `catch_up` never raises for a silent arbiter (it
returns False: ask again later) and follows a replaced arbiter database (a
new epoch) from 0 after calling `reset`; a page that cannot be decoded
raises BadMessage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sync import wire
from sync.counters import Counters
from sync.link import Link
from sync.topics import Topics

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0  # nobody is waiting at a gate for a catch-up page
CATCHUP_PAGE = 500

#: hands a page of items (in seq order) to the follower's store; False: stop (a gap, or nothing to go on with)
Deliver = Callable[[str, list[wire.Json]], bool]


class StreamFollower:
    """Asks `link`'s arbiter for the stream after a position, as `sender`, until it has caught up."""

    def __init__(self, link: Link, topics: Topics, sender: str, counters: Counters, *,
                 timeout: float = REQUEST_TIMEOUT, page: int = CATCHUP_PAGE,
                 on_reply: Callable[[wire.Json], None] | None = None, tag: str = "") -> None:
        self.link = link
        self.tag = tag  # of its requests (Link.wake)
        self.on_reply = on_reply  # every reply, e.g. for the arbiter's clock
        self.topic = topics.request("catchup", sender)
        self.counters = counters
        self.timeout = timeout
        self.page = page

    def catch_up(self, position: tuple[str, int], deliver: Deliver, reset: Callable[[str], None],
                 stop: threading.Event | None = None) -> bool:
        """Page from `position` (epoch, seq) to the head; True once caught up, False if the arbiter fell silent."""
        epoch, seq = position
        while stop is None or not stop.is_set():
            reply = self.link.request(self.topic, wire.catchup_request(seq, self.page), self.timeout, tag=self.tag)
            if reply is None:
                self.counters.add("catchup_timeouts")
                return False
            if self.on_reply is not None:
                self.on_reply(reply)
            new_epoch, items = wire.parse_stream(reply)
            if epoch and new_epoch != epoch:
                log.warning("the arbiter's database changed (epoch %s -> %s): following it from 0", epoch, new_epoch)
                reset(new_epoch)
                epoch, seq = new_epoch, 0
                continue
            epoch = new_epoch
            self.counters.add("catchups")
            if not deliver(epoch, items) or not reply.get("more") or not items:
                return True
            seq = items[-1]["seq"]
        return True
