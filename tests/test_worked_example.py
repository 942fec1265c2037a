"""The worked example every build must pass: show7 / 12B / 9f2."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from conftest import mint

from gate.keys import IssuerKey
from gate.outcomes import Outcome, Reason

Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_worked_example_in_process(make_decider: Callable[..., object], scheme: str) -> None:
    key = IssuerKey.new("show7", scheme)
    decider = make_decider(key, gate_id="gate-north-1", now=1_800_000_000.0)
    text = mint(key)
    first = decider.decide(text)  # type: ignore[attr-defined]
    assert (first.outcome, first.reason) == (Outcome.ADMIT, Reason.NONE)
    assert (first.event, first.ticket_id, first.seat) == ("show7", "9f2", "12B")
    again = decider.decide(text)  # type: ignore[attr-defined]
    assert (again.outcome, again.reason) == (Outcome.ALREADY_USED, Reason.ALREADY_USED)
    assert again.first_gate == "gate-north-1"
    assert again.first_at == first.at


def test_worked_example_through_the_cli(gate_cli: Cli) -> None:
    created = gate_cli("keys", "new", "--event", "show7", check=True)
    assert created.stdout.split()[1:3] == ["ed25519", "show7"]  # the default: gates hold public keys only
    text = gate_cli("mint", "--event", "show7", "--seat", "12B", "--id", "9f2", check=True).stdout.strip()
    assert text.startswith("QG:")
    first = gate_cli("check", "--gate-id", "gate-north-1", text)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("ADMIT ")
    screenshot = gate_cli("check", "--gate-id", "gate-south-2", "--json", input=text + "\n")
    assert screenshot.returncode == 1
    row = json.loads(screenshot.stdout)
    assert row["outcome"] == "ALREADY_USED"
    assert row["reason"] == "already_used"
    assert row["first_gate"] == "gate-north-1"
    assert row["gate_id"] == "gate-south-2"
    assert row["first_at"] is not None and row["first_at"] <= row["at"]
    line = gate_cli("check", text).stdout
    assert line.startswith("ALREADY_USED already_used show7/9f2 seat=12B first_used_at=gate-north-1 first_used=20")


def test_worked_example_qr_is_version_3_at_level_m() -> None:
    import segno

    text = mint(IssuerKey.new("show7", "hmac"))
    qr = segno.make_qr(text, error="m", boost_error=False)
    assert (qr.version, qr.error, qr.mode) == (3, "M", "alphanumeric")


def test_a_claim_path_that_raises_denies_with_fault_never_admit(make_decider: Callable[..., object]) -> None:
    class Broken:
        def redeem(self, scan: object) -> object:
            raise RuntimeError("bug in the claim path")

    key = IssuerKey.new("show7", "hmac")
    decider = make_decider(key)
    decider.claimer = Broken()  # type: ignore[attr-defined]
    decision = decider.decide(mint(key))  # type: ignore[attr-defined]
    assert (decision.outcome, decision.reason) == (Outcome.FAULT, Reason.STORE_FAULT)
    assert "bug in the claim path" in decision.detail


def test_cli_bad_port_is_a_usage_error(gate_cli: Cli) -> None:
    result = gate_cli("dashboard", "--port", "80000")
    assert result.returncode == 2 and "0 to 65535" in result.stderr and "Traceback" not in result.stderr
