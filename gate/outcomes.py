"""Stable outcome codes of a scan.

These strings are a wire format: they appear in the audit log, in MQTT
payloads, in `gate check` output and drive the LED/buzzer patterns.  Never
rename a member's value; add new ones instead.
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """What the gate decided for one scan."""

    ADMIT = "ADMIT"
    ALREADY_USED = "ALREADY_USED"
    REVOKED = "REVOKED"
    INVALID = "INVALID"
    #: the local store could not record the scan: deny, show the fault pattern
    FAULT = "FAULT"

    @property
    def admits(self) -> bool:
        return self is Outcome.ADMIT



class Reason(enum.StrEnum):
    """Why a scan was not admitted (or how it was admitted)."""

    NONE = ""
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    RETIRED_KEY = "retired_key"
    WRONG_EVENT = "wrong_event"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ALREADY_USED = "already_used"
    STORE_FAULT = "store_fault"
    #: (with FAULT) no usable answer from the arbiter and the offline policy denies
    OFFLINE = "offline"
    #: (with INVALID) a genuine holder code of another time slot: a screenshot (docs/ownership.md)
    STALE_CODE = "stale_code"
    #: (with INVALID) a holder code whose value does not hash to the signed anchor, or no code at all
    BAD_BACKSTEP = "bad_backstep"
    #: (with REVOKED) an older ownership generation: the ticket was resold or given away
    SUPERSEDED = "superseded"
    #: (with INVALID) the arbiter would not spend it: its own check of the code failed (the detail says why,
    #: sync/arbiter/trust.py); the gate's keyring or events differ from the arbiter's, or the claim was forged
    REFUSED = "refused"
    #: (with INVALID) the ticket has a validity window and this gate has no trustworthy time to check it
    #: against (gate.untrusted_time = "deny", gate/clock.py)
    UNTRUSTED_TIME = "untrusted_time"
    # check-in lists (gate/rules.py, gate/admission.py, docs/checkin-lists.md) --------------------------------
    #: (with ADMIT) an exit scan: the ticket is now outside the list's area
    EXIT = "exit"
    #: (with ALREADY_USED) the list allows re-entry after an exit, and the ticket has not left
    ALREADY_INSIDE = "already_inside"
    #: (with INVALID) the ticket's product is not one this gate's list admits
    NOT_THIS_LIST = "not_this_list"
    #: (with INVALID) the list admits nobody at this time
    OUTSIDE_TIME_WINDOW = "outside_time_window"
    #: (with ALREADY_USED) every entry the list allows (in total, or today) has been used
    ENTRIES_EXHAUSTED = "entries_exhausted"
    #: (with ALREADY_USED) the list requires minutes between two entries
    TOO_SOON = "too_soon"
    #: (with ALREADY_USED) the area holds its capacity already (decided where the inside count is exact)
    AREA_FULL = "area_full"
