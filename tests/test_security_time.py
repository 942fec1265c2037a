"""Validity windows and an untrustworthy clock (gate/clock.py, issue 12): a Pi has no real-time clock."""

from __future__ import annotations

from gate.clock import TimeTrust, kernel_synced
from gate.keys import IssuerKey, Keyring
from gate.outcomes import Reason
from gate.ticket import Ticket
from gate.verify import Verifier

T0 = 1.8e9


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_time_source_is_the_kernel_then_a_fresh_arbiter_reading_then_nothing() -> None:
    clock, synced = Clock(), [False]
    trust = TimeTrust("deny", skew=120, fresh=600, synced=lambda: synced[0], clock=clock)
    assert trust.source() == "untrusted" and trust.denies_windows()
    trust.note_arbiter(3.0)
    assert trust.source() == "arbiter" and not trust.denies_windows()
    clock.t += 601  # the arbiter has not answered for ten minutes
    assert trust.source() == "untrusted"
    trust.note_arbiter(-500.0)  # the arbiter answers, but our clock is 500 s off it
    assert trust.source() == "untrusted"
    synced[0] = True
    assert trust.source() == "synced" and not trust.denies_windows()
    assert isinstance(kernel_synced(), bool)  # the real call: never raises, whatever this machine is


def test_deny_refuses_only_windowed_tickets_while_the_time_is_untrusted_and_local_judges_anyway() -> None:
    key = IssuerKey.new("show7")
    windowed = key.sign(Ticket(event="show7", ticket_id="w1", valid_from=int(T0 - 3600), valid_until=int(T0 + 3600)))
    plain = key.sign(Ticket(event="show7", ticket_id="p1"))
    untrusted = TimeTrust("deny", synced=lambda: False)
    deny = Verifier(Keyring([key.verify_key()]), clock=lambda: T0, time_trust=untrusted)
    refused = deny.verify(windowed)
    assert refused.reason is Reason.UNTRUSTED_TIME and "untrusted_time" in refused.detail
    assert deny.verify(plain).ok
    local = Verifier(Keyring([key.verify_key()]), clock=lambda: T0, time_trust=TimeTrust("local", synced=lambda: False))
    assert local.verify(windowed).ok
    untrusted.note_arbiter(1.0)  # the arbiter vouches for our clock: windows are judged again
    assert deny.verify(windowed).ok
