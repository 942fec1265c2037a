"""`gate boxoffice`, `gate wallet`, `gate fake-agent`, `gate supersede`: the Alice-to-Bob story with the real command."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from chain_fixtures import SECRET_PRICE_TEXTS, traces
from conftest import ROOT, gate_env


class Cli:
    """Runs `python -m gate.cli --home <dir>/<who> ...` in `dir` (message files live there)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, who: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "gate.cli", "--home", str(self.root / who), *args],
                                capture_output=True, text=True, env=gate_env(self.root / who), cwd=self.root,
                                timeout=120)
        if ok:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result


def test_the_story_with_the_real_command(tmp_path: Path) -> None:
    g = Cli(tmp_path)
    now = int(time.time())
    g("bo", "keys", "new", "--event", "show7")
    g("bo", "boxoffice", "init", "--name", "Town Hall")
    g("agent", "fake-agent", "init", "--out", "agent.id.json")
    g("bo", "boxoffice", "trust-agent", "agent.id.json")
    g("bo", "boxoffice", "add", "--event", "show7", "--seat", "12B", "--id", "9f2", "--price", "25.00",
      "--valid-from", str(now - 60), "--valid-until", str(now + 86400))
    g("bo", "boxoffice", "catalog", "--out", "catalog.json")
    for who in ("alice", "bob"):
        g(who, "wallet", "new", "--name", who)
        g(who, "wallet", "trust", "catalog.json")
        g(who, "wallet", "trust", "agent.id.json")
    g("alice", "wallet", "buy", "--event", "show7", "--ticket", "9f2", "--out", "req.json")
    assert "reservation" in g("bo", "boxoffice", "handle", "req.json", "--out", "reply.json").stdout
    g("alice", "wallet", "pay", "reply.json", "--fake-agent", "agent", "--out", "paid.json")
    g("bo", "boxoffice", "confirm", "paid.json", "--out", "owned.json")
    assert "ownership from Town Hall" in g("alice", "wallet", "accept", "owned.json").stdout
    alice_code = g("alice", "wallet", "code", "--event", "show7", "--ticket", "9f2", "--qr", "a.png").stdout.strip()
    assert alice_code.startswith("QH:") and (tmp_path / "a.png").stat().st_size > 0
    # the resale, the price never reaching the box office
    g("alice", "wallet", "identity", "--out", "alice.id.json")
    g("bob", "wallet", "buy", "--event", "show7", "--ticket", "9f2", "--from", "alice.id.json", "--out", "b.json")
    g("bo", "boxoffice", "handle", "b.json", "--out", "hold.json")
    g("bob", "wallet", "accept", "hold.json")  # Bob pays only once the box office holds the ticket for him
    g("alice", "wallet", "sell", "b.json", "--price", SECRET_PRICE_TEXTS[1], "--out", "invoice.json")
    g("bob", "wallet", "pay", "invoice.json", "--fake-agent", "agent", "--out", "bobpaid.json")
    g("alice", "wallet", "release", "bobpaid.json", "--out", "release.json")
    moved = g("bo", "boxoffice", "transfer", "release.json", "--out", "bobowned.json")
    assert "gate supersede 9f2 --event show7 --generation 2" in moved.stderr
    g("bob", "wallet", "accept", "bobowned.json")
    g("alice", "wallet", "accept", "bobowned.json")
    rows = [json.loads(line) for line in g("bo", "boxoffice", "list", "--json").stdout.splitlines()]
    assert [(r["ticket_id"], r["generation"]) for r in rows] == [("9f2", 2)]
    assert traces(SECRET_PRICE_TEXTS, tmp_path / "bo") == []  # the box office's whole home, its files' WAL too
    assert traces(SECRET_PRICE_TEXTS, tmp_path / "alice") and traces(SECRET_PRICE_TEXTS, tmp_path / "bob")
    # a gate with only the exported keyring: Bob in, Alice's old code out
    g("bo", "keys", "export", "--event", "show7", "--out", "ring.json")
    g("gate", "keys", "import", "ring.json")
    g("gate", "supersede", "9f2", "--event", "show7", "--generation", "2")
    bob_code = g("bob", "wallet", "code", "--event", "show7", "--ticket", "9f2").stdout.strip()
    old = g("gate", "check", "--json", alice_code, ok=False)
    assert old.returncode == 1 and json.loads(old.stdout)["reason"] in ("superseded", "stale_code")
    assert g("gate", "check", bob_code).stdout.startswith("ADMIT")
    refused = g("alice", "wallet", "code", "--event", "show7", "--ticket", "9f2", ok=False)
    assert refused.returncode == 1 and "refused: not_holder" in refused.stderr


def test_refusals_exit_1_and_usage_errors_exit_2(tmp_path: Path) -> None:
    g = Cli(tmp_path)
    assert g("w", "wallet", "tickets", ok=False).returncode == 2  # no wallet yet
    g("w", "wallet", "new", "--name", "w")
    assert g("w", "wallet", "new", "--name", "w", ok=False).returncode == 2
    (tmp_path / "junk.json").write_text("{}")
    bad = g("w", "wallet", "accept", "junk.json", ok=False)
    assert bad.returncode == 1 and "refused: malformed" in bad.stderr
    assert g("w", "wallet", "sell", "junk.json", "--price", "ten", ok=False).returncode == 2
    assert g("w", "wallet", "buy", "--event", "show7", "--ticket", "x", ok=False).returncode == 1


def test_every_new_command_has_an_example() -> None:
    from gate.cli import build_parser

    parser = build_parser()
    help_text = subprocess.run([sys.executable, "-m", "gate.cli", "wallet", "--help"], capture_output=True,
                               text=True, cwd=ROOT, env=gate_env(ROOT)).stdout
    assert "serve" in help_text and "code" in help_text
    for group in ("boxoffice", "wallet", "fake-agent"):
        sub = next(a for a in parser._subparsers._group_actions if group in a.choices).choices[group]  # type: ignore[union-attr]
        for name, leaf in next(a for a in sub._actions if hasattr(a, "choices") and a.choices).choices.items():
            assert "Example: gate " in (leaf.epilog or ""), f"gate {group} {name}"


def test_every_server_on_a_busy_port_names_the_address_and_exits_2(tmp_path: Path) -> None:
    """`gate wallet serve` on a busy port said "unexpected OSError"; the box office and the dashboard must say
    the same plain thing (the FAKE agent's server is the box office's JsonServer)."""
    import socket

    g = Cli(tmp_path)
    g("bo", "boxoffice", "init", "--name", "Town Hall")
    g("alice", "wallet", "new", "--name", "alice")
    subprocess.run([sys.executable, "-m", "gate.cli", "--home", str(tmp_path / "bo"), "dashboard", "user", "add",
                    "admin"], input="a long enough password\n", text=True, env=gate_env(tmp_path / "bo"), check=True,
                   capture_output=True, cwd=tmp_path, timeout=60)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        for who, args in [("alice", ("wallet", "serve", "--port", port)),
                          ("bo", ("boxoffice", "serve", "--port", port)),
                          ("bo", ("dashboard", "--broker", "mqtt://127.0.0.1:1", "--host", "127.0.0.1", "--port", port))]:
            result = g(who, *args, ok=False)
            assert result.returncode == 2, (args, result.stderr)
            assert result.stderr.strip().endswith(f"cannot listen on 127.0.0.1:{port}: the port is in use: another "
                                                  "process listens there (stop it, or choose another port)"), args
            assert result.stderr.count("\n") == 1 and "unexpected" not in result.stderr, result.stderr
