"""Reason codes in words, as the dashboard's page shows them (the codes: gate/outcomes.py).

A caller may rely on `words` answering a short phrase for every code (an unknown one as the code with
spaces), and `REASONS` holding every refusal code of gate.outcomes.Reason, the check-in lists' included.
`conflict_words` says a conflict in one sentence, for the dashboard and `gate conflicts` alike.
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


#: a list conflict's reason code -> how it reads after "entered at GATE" (the gate let the person in offline)
CONFLICT_WORDS = {"already_inside": "while already inside", "entries_exhausted": "with no entries left",
                  "area_full": "while the area was full", "already_used": "although already used",
                  "too_soon": "too soon after its last entry", "revoked": "although the ticket is revoked",
                  "superseded": "although the ticket was resold or given away",
                  "not_this_list": "although not on this list", "outside_time_window": "while the list was closed"}


def conflict_words(reason: str, gate: str, first_gate: str | None, *, double: bool = False) -> str:
    """"entered at b-in while already inside since a-in" (a list conflict), "entered at gate-b although
    already used at gate-a" (`double`: a single-use double entry)."""
    if double:
        return f"entered at {gate} although already used" + (f" at {first_gate}" if first_gate else "")
    said = f"entered at {gate} {CONFLICT_WORDS.get(reason, 'although ' + words(reason))}"
    return said + (f" since {first_gate}" if first_gate and reason == "already_inside" else "")
