"""Config: TOML + environment + options, validated once with errors that name file, key and expectation."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gate.config import describe, load_config
from gate.exc import ConfigError

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_defaults_need_no_file(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={})
    assert config.source == "defaults"
    assert config.store_path == tmp_path / "gate.db"
    assert config.gate.events == ()


def test_file_then_environment_then_options(tmp_path: Path) -> None:
    (tmp_path / "gate.toml").write_text('[gate]\nid = "from-file"\nevents = ["show7", "show8"]\nclock_skew = 30\n')
    assert load_config(tmp_path, env={}).gate.id == "from-file"
    assert load_config(tmp_path, env={}).gate.events == ("show7", "show8")
    env = {"QRGATE_GATE_ID": "from-env", "QRGATE_GATE_EVENTS": "a, b", "QRGATE_GATE_CLOCK_SKEW": "5.5"}
    config = load_config(tmp_path, env=env)
    assert (config.gate.id, config.gate.events, config.gate.clock_skew) == ("from-env", ("a", "b"), 5.5)
    assert load_config(tmp_path, env=env, overrides={"gate.id": "from-option"}).gate.id == "from-option"


@pytest.mark.parametrize(("toml", "message"), [
    ('[gate]\nclock_skew = "soon"\n', r"gate\.toml: gate\.clock_skew must be a number, not 'soon'"),
    ("[gate]\nclock_skew = -1\n", r"gate\.toml: gate\.clock_skew must be at least 0"),
    ('[gate]\nevents = "show7"\n', r"gate\.toml: gate\.events must be a list"),
    ("[gate]\nidd = 3\n", r"gate\.toml: unknown key gate\.idd"),
    ("[gaet]\nid = 3\n", r"gate\.toml: unknown section or key 'gaet'; did you mean gate\?$"),
    ('[sync]\nbrokr = "mqtt://h:1"\n', r"gate\.toml: unknown key sync\.brokr; did you mean sync\.broker\?$"),
    ("[gate]\nid = 3\n", r"gate\.toml: gate\.id must be a string, not 3"),
    ("[gate\nid = 3\n", r"gate\.toml: not valid TOML"),
    ("gate = 3\n", r"gate\.toml: \[gate\] must be a table"),
    ('[ownership]\nboxoffice_url = "http://10.0.0.5:8770"\n',  # never an online check that trusts any answer
     r"gate\.toml: ownership\.boxoffice_url is set but ownership\.boxoffice_id is empty"),
    ('[ownership]\nboxoffice_url = "http://10.0.0.5:8770"\nboxoffice_id = "Town Hall"\n',
     r"gate\.toml: ownership\.boxoffice_id must be a box office's chain id \(32 hex digits"),
])
def test_broken_config_names_file_key_and_expectation(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "gate.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, env={})


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environment QRGATE_STORE_BUSY_TIMEOUT: store\.busy_timeout must be a number"):
        load_config(tmp_path, env={"QRGATE_STORE_BUSY_TIMEOUT": "lots"})


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read config"):
        load_config(tmp_path, tmp_path / "nope.toml", env={})


def test_cli_reports_a_broken_config_without_a_traceback(home: Path,
                                                        gate_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    (home / "gate.toml").write_text("[gate]\nclock_skew = 'x'\n")
    result = gate_cli("check", "QG:ABC")
    assert result.returncode == 2
    assert "gate.toml" in result.stderr and "gate.clock_skew" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_configuration_doc_lists_every_key_with_its_default() -> None:
    text = DOC.read_text()
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", text, re.M))
    keys = {key for key, *_ in describe()}
    assert documented == keys, f"docs/configuration.md is out of step: missing {keys - documented}, stale {documented - keys}"
    for key, _type, default, _help in describe():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))
        assert f"`{default}`" in row, f"{key}: default {default} not in {row!r}"


def test_a_config_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "gate.toml").write_bytes(b"\xff\xfe[gate]\n")
    with pytest.raises(ConfigError, match=r"gate\.toml: not UTF-8 text"):
        load_config(tmp_path, env={})
