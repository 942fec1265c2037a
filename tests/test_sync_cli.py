"""The sync side of the CLI and config: every key from the command line or the environment, clear errors."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gate.cli import _overrides, build_parser
from gate.config import describe, load_config
from gate.exc import ConfigError

Cli = Callable[..., subprocess.CompletedProcess[str]]
SYNC_KEYS = {key: kind for key, kind, *_ in describe() if key.startswith("sync.")}


def text_for(kind: str) -> str:
    """A valid value of a key's type, as text on a command line or in the environment."""
    if kind.startswith("Literal["):
        return kind.split("'")[1]
    return {"bool": "true", "int": "7", "float": "7.5"}.get(kind, "x7")


def config_from(argv: list[str], env: dict[str, str] | None = None, home: Path = Path("/nonexistent")) -> object:
    args = build_parser().parse_args(argv)
    for name, default in {"gate_id": None, "broker": None, "settings": []}.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return load_config(home, env=env or {}, overrides=_overrides(args))


def test_broker_gate_id_and_home_from_the_command_line() -> None:
    config = config_from(["--broker", "mqtt://10.0.0.2:1884", "--gate-id", "gate-7", "check"])
    assert (config.sync.broker, config.gate_id) == ("mqtt://10.0.0.2:1884", "gate-7")  # type: ignore[attr-defined]


@pytest.mark.parametrize("key", sorted(SYNC_KEYS))
def test_every_sync_key_can_be_set_on_the_command_line_and_in_the_environment(key: str) -> None:
    section, name = key.split(".")
    value = text_for(SYNC_KEYS[key])
    default = getattr(load_config(Path("/nonexistent"), env={}).sync, name)
    by_option = getattr(config_from(["check", "--set", f"{key}={value}"]).sync, name)  # type: ignore[attr-defined]
    by_env = getattr(config_from(["check"], env={f"QRGATE_{section}_{name}".upper(): value}).sync, name)  # type: ignore[attr-defined]
    assert by_option == by_env and (by_option != default or str(default).lower() == value)


def test_the_command_line_beats_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    (tmp_path / "gate.toml").write_text('[sync]\nbroker = "mqtt://file:1"\nclaim_budget = 0.2\n')
    env = {"QRGATE_SYNC_BROKER": "mqtt://env:1"}
    assert config_from(["check"], home=tmp_path).sync.broker == "mqtt://file:1"  # type: ignore[attr-defined]
    assert config_from(["check"], env, tmp_path).sync.broker == "mqtt://env:1"  # type: ignore[attr-defined]
    cli = config_from(["check", "--broker", "mqtt://cli:1", "--set", "sync.claim_budget=0.5"], env, tmp_path)
    assert (cli.sync.broker, cli.sync.claim_budget) == ("mqtt://cli:1", 0.5)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("setting", "message"), [
    ("sync.nope=1", r"option --set 'sync.nope=1': unknown key sync.nope \(docs/configuration.md lists every key\)$"),
    ("sync.brokr=mqtt://h:1", r"unknown key sync.brokr; did you mean sync.broker\?$"),  # not all 56 keys
    ("claim_budget", "expected KEY=VALUE"),
    ("sync.claim_budget=soon", "sync.claim_budget must be a number"),
    ("sync.claim_budget=60", "sync.claim_budget must be at most 10"),
    ("sync.offline_policy=maybe", "sync.offline_policy must be one of 'admit-if-unseen', 'deny'"),
])
def test_bad_settings_name_the_key(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from(["check", "--set", setting])


def test_commands_refuse_a_missing_or_bad_broker_without_a_traceback(gate_cli: Cli) -> None:
    for args, message in [(["arbiter"], "no broker: give --broker"),
                          (["sync", "--once"], "no broker"),
                          (["check", "--broker", "http://x:1", "QG:X"], "not mqtt://host[:port]"),
                          (["check", "--broker", "mqtt://h:1", "--gate-id", "a/b", "QG:X"], "cannot be an MQTT topic")]:
        result = gate_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_conflicts_on_a_fresh_gate_lists_none_and_exits_0(gate_cli: Cli) -> None:
    result = gate_cli("conflicts", "--json")
    assert (result.returncode, result.stdout) == (0, "")
    assert gate_cli("conflicts", "--arbiter").returncode == 2  # no arbiter store here


def test_conflicts_at_the_arbiter_says_what_to_give_and_reads_it(gate_cli: Cli, tmp_path: Path) -> None:
    """`gate conflicts --arbiter` read the gate's home and said only "no arbiter store here (sync.arbiter_db)"."""
    from sync.arbiter.store import ArbiterStore

    missing = gate_cli("conflicts", "--arbiter")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "give the arbiter's home (--home DIR, as given to `gate arbiter`) or its store (--store" in missing.stderr
    ArbiterStore.open(tmp_path / "arbiter" / "arbiter.db").close()  # as `gate arbiter --home tmp/arbiter` left it
    for where in (["--home", str(tmp_path / "arbiter")], ["--store", str(tmp_path / "arbiter" / "arbiter.db")]):
        found = gate_cli("conflicts", "--arbiter", "--json", *where)
        assert (found.returncode, found.stdout, found.stderr) == (0, "", ""), where


def test_conflicts_at_the_arbiter_without_a_home_reads_the_installed_arbiters_store(tmp_path: Path) -> None:
    """The README's arbiter and a provisioned one keep their store in /var/lib/qrgate-arbiter: with no home
    given, that is where `gate conflicts --arbiter` looks once the default home has none."""
    from gate.cli.sync import INSTALLED_ARBITER_DB, arbiter_store_found
    from gate.deploy.provision import INSTALL

    assert INSTALLED_ARBITER_DB.parent == Path(INSTALL["arbiter"][1])  # systemd/qrgate-arbiter.service agrees
    config = load_config(tmp_path / "default-home", env={})
    installed = tmp_path / "installed.db"
    with pytest.raises(ConfigError, match="no arbiter store here"):
        arbiter_store_found(config, "", home_given=False, installed=installed)
    installed.touch()
    assert arbiter_store_found(config, "", home_given=False, installed=installed) == installed
    with pytest.raises(ConfigError, match="give the arbiter's home"):  # a home given is the one meant
        arbiter_store_found(config, "", home_given=True, installed=installed)


def test_sync_once_says_in_words_what_stays_in_the_outbox(gate_cli: Cli, home: Path) -> None:
    """It printed `outbox {"late": 1}; {}`: now what stays and why, in words an operator reads."""
    from conftest import mint
    from sync_fixtures import free_port

    from gate.keys import IssuerKey, KeyStore

    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    nobody = ["--broker", f"mqtt://127.0.0.1:{free_port()}", "--set", "sync.connect_wait=0.2",
              "--set", "sync.drain_wait=0.3"]
    assert "provisional" in gate_cli("check", *nobody, mint(key)).stdout  # admitted offline: a late claim
    result = gate_cli("sync", "--once", *nobody)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("outbox: 1 offline admission not yet delivered (`gate sync` delivers them)")
    assert "{" not in result.stdout


def test_the_arbiters_closing_line_is_in_words() -> None:
    """It printed `arbiter stopped: {}`."""
    from gate.cli.sync import stopped_line

    assert stopped_line({}) == "arbiter stopped: 0 claims answered"
    assert stopped_line({"answer_won": 1, "claims": 1, "catchups": 2}) == \
        "arbiter stopped: 1 claim answered; answer won 1, catchups 2"
