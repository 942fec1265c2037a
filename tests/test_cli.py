"""The `gate` command end to end, as scripts and ops staff use it (real processes, real files)."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gate.cli import build_parser

Cli = Callable[..., subprocess.CompletedProcess[str]]
README = Path(__file__).resolve().parent.parent / "README.md"


def test_keys_are_private_files_and_the_export_holds_no_secret(home: Path, gate_cli: Cli, tmp_path: Path) -> None:
    kid = gate_cli("keys", "new", "--event", "show7", check=True).stdout.split()[0]
    key_file = home / "keys" / f"issuer-{kid}.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700
    secret = json.loads(key_file.read_text())["secret"]
    out = tmp_path / "show7.keyring.json"
    gate_cli("keys", "export", "--event", "show7", "--out", str(out), check=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert secret not in out.read_text()


def test_a_gate_with_only_the_exported_keyring_verifies_but_cannot_mint(gate_cli: Cli, tmp_path: Path) -> None:
    gate_cli("keys", "new", "--event", "show7", "--scheme", "ed25519", check=True)
    ring = tmp_path / "ring.json"
    gate_cli("keys", "export", "--event", "show7", "--out", str(ring), check=True)
    tickets = gate_cli("mint", "--event", "show7", "--count", "3", check=True).stdout.splitlines()
    gate_home = tmp_path / "gate-home"
    gate = lambda *a: gate_cli("--home", str(gate_home), *a)  # noqa: E731
    assert gate("keys", "import", str(ring)).returncode == 0
    assert gate("check", *tickets).returncode == 0
    refused = gate("mint", "--event", "show7")
    assert refused.returncode == 2 and "no active issuer" in refused.stderr


def test_several_key_ids_valid_at_once_and_retiring_one(gate_cli: Cli) -> None:
    old = gate_cli("keys", "new", "--event", "show7", check=True).stdout.split()[0]
    old_ticket = gate_cli("mint", "--event", "show7", "--id", "a1", check=True).stdout.strip()
    new = gate_cli("keys", "new", "--event", "show7", check=True).stdout.split()[0]
    new_ticket = gate_cli("mint", "--event", "show7", "--id", "b1", check=True).stdout.strip()
    listed = gate_cli("keys", "list", check=True).stdout
    assert old in listed and new in listed
    assert gate_cli("check", old_ticket, new_ticket).returncode == 0
    assert gate_cli("keys", "retire", old).returncode == 0
    again = gate_cli("mint", "--event", "show7", "--id", "a2", "--kid", old)
    assert again.returncode == 2  # a retired key mints nothing
    result = gate_cli("check", old_ticket, "--json")
    assert json.loads(result.stdout)["reason"] == "retired_key"
    assert gate_cli("keys", "retire", "deadbeef").returncode == 2


def test_mint_count_ids_and_qr_images(gate_cli: Cli, tmp_path: Path) -> None:
    gate_cli("keys", "new", "--event", "show7", check=True)
    out = gate_cli("mint", "--event", "show7", "--seat", "12B", "--id", "vip", "--count", "3",
                   "--qr", str(tmp_path / "qr"), check=True).stdout.splitlines()
    assert len(out) == 3 and len(set(out)) == 3
    assert sorted(p.name for p in (tmp_path / "qr").iterdir()) == [
        "vip-1.png", "vip-1.svg", "vip-2.png", "vip-2.svg", "vip-3.png", "vip-3.svg"]
    assert (tmp_path / "qr" / "vip-1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in gate_cli("check", "--json", *out).stdout.splitlines()]
    assert [r["ticket_id"] for r in rows] == ["vip-1", "vip-2", "vip-3"]
    random_ids = gate_cli("mint", "--event", "show7", "--count", "50", check=True).stdout.splitlines()
    assert len(set(random_ids)) == 50


def test_the_qr_image_decodes_to_the_ticket_text(gate_cli: Cli, tmp_path: Path) -> None:
    import cv2
    import zxingcpp

    gate_cli("keys", "new", "--event", "show7", check=True)
    text = gate_cli("mint", "--event", "show7", "--seat", "12B", "--id", "9f2", "--qr", str(tmp_path),
                    check=True).stdout.strip()
    image = cv2.imread(str(tmp_path / "9f2.png"), cv2.IMREAD_GRAYSCALE)
    assert [r.text for r in zxingcpp.read_barcodes(image)] == [text]


def test_validity_window_from_iso_times(gate_cli: Cli) -> None:
    gate_cli("keys", "new", "--event", "show7", check=True)
    future = gate_cli("mint", "--event", "show7", "--valid-from", "2999-01-01T00:00:00Z", check=True).stdout.strip()
    past = gate_cli("mint", "--event", "show7", "--valid-until", "2001-01-01", check=True).stdout.strip()
    reasons = [json.loads(line)["reason"] for line in gate_cli("check", "--json", future, past).stdout.splitlines()]
    assert reasons == ["not_yet_valid", "expired"]
    bad = gate_cli("mint", "--event", "show7", "--valid-from", "tomorrow")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr


def test_check_exit_codes_and_stdin(gate_cli: Cli) -> None:
    gate_cli("keys", "new", "--event", "show7", check=True)
    tickets = gate_cli("mint", "--event", "show7", "--count", "2", check=True).stdout
    ok = gate_cli("check", input=tickets)
    assert ok.returncode == 0 and ok.stdout.count("ADMIT ") == 2
    mixed = gate_cli("check", input=tickets + "not a ticket\n\n")
    assert mixed.returncode == 1
    assert [line.split()[0] for line in mixed.stdout.splitlines()] == ["ALREADY_USED", "ALREADY_USED", "INVALID"]
    assert gate_cli("check", "--no-such-flag").returncode == 2
    assert gate_cli("mint", "--event", "nokey").returncode == 2


def test_revoke_and_history(gate_cli: Cli) -> None:
    gate_cli("keys", "new", "--event", "show7", check=True)
    text = gate_cli("mint", "--event", "show7", "--id", "r1", check=True).stdout.strip()
    assert "revoked" in gate_cli("revoke", "r1", "--event", "show7", "--reason", "refunded", check=True).stdout
    assert "already" in gate_cli("revoke", "r1", "--event", "show7", check=True).stdout
    result = gate_cli("check", text)
    assert result.returncode == 1 and result.stdout.startswith("REVOKED revoked show7/r1")
    history = gate_cli("history", "r1", "--json")
    assert [json.loads(line)["outcome"] for line in history.stdout.splitlines()] == ["REVOKED"]
    assert gate_cli("history", "never-seen").returncode == 1


def test_every_command_has_help_with_an_example_and_is_in_the_readme() -> None:
    readme = README.read_text()
    parser = build_parser()
    commands = _leaf_commands(parser)
    assert {"check", "mint", "keys new", "keys export", "revoke", "demo"} <= set(commands)
    for name, sub in commands.items():
        assert "Example: gate " in (sub.epilog or ""), f"`gate {name}` has no example in its help"
        assert f"gate {name}" in readme, f"`gate {name}` is not in README.md"


def _leaf_commands(parser, prefix: str = "") -> dict[str, object]:  # type: ignore[no-untyped-def]
    import argparse

    out: dict[str, object] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix}{name}"
                children = _leaf_commands(sub, full + " ")
                out.update(children or {full: sub})
    return out


@pytest.mark.parametrize("args", [["--help"], ["check", "--help"], ["keys", "new", "--help"]])
def test_help_runs(gate_cli: Cli, args: list[str]) -> None:
    result = gate_cli(*args)
    assert result.returncode == 0 and "usage: gate" in result.stdout


def test_a_home_that_is_not_there_is_an_error_not_a_new_empty_home(gate_cli: Cli, home: Path, tmp_path: Path) -> None:
    """A mistyped --home used to be made on the spot: checks said `unknown_key` and `keys list` printed nothing."""
    gate_cli("keys", "new", "--event", "show7", check=True)
    [ticket] = gate_cli("mint", "--event", "show7", check=True).stdout.splitlines()  # it may hold spaces
    typo = tmp_path / "hmoe"
    for args in (["check", ticket], ["keys", "list"], ["history", "9f2"], ["wallet", "identity"]):
        result = gate_cli("--home", str(typo), *args)
        assert result.returncode == 2 and f"{typo}: no such folder (--home or QRGATE_HOME; mistyped?)" in result.stderr, (
            args, result.stderr)
        assert not typo.exists(), args
    # a home that is there but holds no wallet: no stray wallet.db in the box office's (or gate's) home
    result = gate_cli("wallet", "identity")
    assert result.returncode == 2 and "no wallet in" in result.stderr and "gate wallet new" in result.stderr
    assert not (home / "wallet.db").exists()
    assert gate_cli("--home", str(tmp_path / "new"), "keys", "new", "--event", "show7").returncode == 0  # makes it


def test_times_relative_to_now_never_go_stale() -> None:
    from gate.cli.common import parse_time

    now = lambda: 1_800_000_000.5  # noqa: E731
    assert [parse_time(t, now) for t in ("now", "+1d", "-2h", "now+90m", "now-30s")] == [
        1_800_000_000, 1_800_086_400, 1_799_992_800, 1_800_005_400, 1_799_999_970]
    assert parse_time("2026-11-21T18:00Z") == 1_795_284_000
    for bad in ("+1w", "now+", "tomorrow", "+-1d"):
        with pytest.raises(ValueError, match="now/"):
            parse_time(bad, now)


def test_the_box_office_will_not_list_a_ticket_whose_window_is_over(gate_cli: Cli) -> None:
    gate_cli("keys", "new", "--event", "show7", check=True)
    gate_cli("boxoffice", "init", check=True)
    old = gate_cli("boxoffice", "add", "--event", "show7", "--price", "25.00", "--valid-from", "2026-01-01T18:00Z",
                   "--valid-until", "2026-01-02T18:00Z")
    assert old.returncode == 2 and "is over already" in old.stderr and "--valid-until +1d" in old.stderr
    assert gate_cli("boxoffice", "add", "--event", "show7", "--price", "25.00", "--valid-from", "now",
                    "--valid-until", "+1d").returncode == 0
