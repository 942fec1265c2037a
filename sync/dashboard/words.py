"""Reason codes in words, as the dashboard's page shows them (the codes: gate/outcomes.py).

A caller may rely on `words` answering a short phrase for every code (an unknown one as the code with
spaces), and `REASONS` holding every refusal code of gate.outcomes.Reason, the check-in lists' included.
"""

from __future__ import annotations

#: code -> a phrase short enough for a chart's label (the gate's own `detail` says the rest)
REASONS = {
    "malformed": "malformed",
    "bad_signature": "bad signature",
    "unknown_key": "unknown issuer key",
    "retired_key": "retired issuer key",
    "wrong_event": "another event",
    "not_yet_valid": "not valid yet",
    "expired": "expired",
    "revoked": "revoked",
    "superseded": "resold or given away",
    "already_used": "already used",
    "store_fault": "gate store fault",
    "offline": "arbiter out of reach",
    "stale_code": "old holder code",
    "bad_backstep": "bad holder code",
    "refused": "refused by the arbiter",
    "untrusted_time": "gate clock untrusted",
    "exit": "exit",
    "already_inside": "already inside",
    "not_this_list": "not on this list",
    "outside_time_window": "list closed now",
    "entries_exhausted": "no entries left",
    "too_soon": "too soon again",
    "area_full": "area full",
}


def words(code: str) -> str:
    return REASONS.get(code) or code.replace("_", " ")
