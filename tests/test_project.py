"""The project's own promises: the README's two commands, CI in step with them, ruff and mypy clean."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md must start with a sh block holding the two commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert text.index("```sh") < 40, "the two commands come first"
    demo, tests = readme_commands()
    assert demo.endswith("gate demo")
    assert "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = readme_commands()
    venv_part = tests[tests.index("python3 -m venv"):]
    ci = (ROOT / ".ci" / "run").read_text()
    assert venv_part in ci.splitlines(), ".ci/run must run the README's test command verbatim"
    for package in re.findall(r"apt-get install -y ([\w\s.-]+?) &&", tests)[0].split():
        assert package in ci, f".ci/run does not install {package}"


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_packages_ship_py_typed() -> None:
    for package in ("gate", "sync", "hardware"):
        assert (ROOT / package / "py.typed").exists()
