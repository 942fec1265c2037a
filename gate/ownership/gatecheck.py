"""The gate's online check (design note 002, steps 35-39): the most recent ownership of a ticket, from the box office.

`OnlineOwnership` is the gate.decide.OwnershipLookup that `ownership.boxoffice_url` wires into the gate's
Decider: before a holder ticket is redeemed, the gate asks ``GET /tickets/{event}/{ticket_id}`` for
the generation the box office holds now, and records a newer one in its store, so an older code is
REVOKED superseded even when the generation stream has not reached this gate (a gate cut off from
the arbiter, or the box office's publish not through yet).

What a caller may rely on:

* `current` never raises and waits at most `timeout` seconds; None when the box office does not
  know the ticket, answers something else than a status, or does not answer;
* after a box office that did not answer, it does not ask again for `backoff` seconds: the gate
  decides offline meanwhile, at its offline speed (a queue at the door never waits on a dead box office);
* it can only ever make the gate refuse more: a generation it learns supersedes older codes, it
  admits nothing on its own;
* it takes only an answer signed by the box office whose chain id it pinned (`boxoffice`,
  ``ownership.boxoffice_id``), for the very ticket it asked about, dated within `skew` seconds of the
  gate's clock (gate.ownership.protocol.verify_status).  Any other answer (unsigned, another box
  office's key, another ticket's, an old one) is no answer: a warning, then the gate decides without the
  online check for `backoff` seconds.  So whoever answers on the box office's URL in its place (a
  spoofed box office, a man in the middle on the venue network) cannot supersede a holder's ticket.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gate.ownership.client import BoxOfficeClient
from gate.ownership.exc import ChainError, Refused
from gate.ownership.protocol import STATUS_SKEW, verify_status

log = logging.getLogger(__name__)


class OnlineOwnership:
    """Asks the box office at `url` for a ticket's current generation (see the module docstring)."""

    def __init__(self, url: str, *, boxoffice: str, timeout: float = 0.5, backoff: float = 30.0,
                 skew: float = STATUS_SKEW, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        if not boxoffice:
            raise ValueError(f"the online check at {url} needs the box office's chain id (ownership.boxoffice_id): "
                             "without it any answer on that URL would be trusted")
        self.client = BoxOfficeClient(url, timeout=timeout)
        self.boxoffice = boxoffice
        self.skew = skew
        self.wall = wall  # the gate's clock, for the answer's date (`clock` times the back-off)
        self.backoff = backoff
        self.clock = clock
        self.asked = 0  # answers received
        self.missed = 0  # no answer (then quiet for `backoff` s)
        self._quiet_until = 0.0

    def current(self, event: str, ticket_id: str) -> int | None:
        if self.clock() < self._quiet_until:
            return None
        try:
            status = verify_status(self.client.status(event, ticket_id), boxoffice=self.boxoffice, event=event,
                                   ticket_id=ticket_id, now=self.wall(), skew=self.skew)
        except Refused as exc:
            if exc.code == "unknown_ticket":  # not sold by this box office: nothing to learn
                return None
            self._missed(exc)
            return None
        except ChainError as exc:  # no answer, not the box office's JSON, or not signed by it for this ticket now
            self._missed(exc)
            return None
        except Exception as exc:  # a bug here must not cost a decision: decide without the online check
            log.exception("online check of %s/%s failed: %s", event, ticket_id, exc)
            return None
        self.asked += 1
        generation = status.get("generation")
        return generation if isinstance(generation, int) and not isinstance(generation, bool) and generation > 0 \
            else None

    def _missed(self, exc: ChainError) -> None:
        self.missed += 1
        self._quiet_until = self.clock() + self.backoff
        log.warning("online check: no usable answer from the box office at %s (%s): deciding without it for %.0f s",
                    self.client.url, exc, self.backoff)
