"""The systemd units and sysusers files as shipped: `systemd-analyze verify` clean, hardened, in step with
`gate provision`'s install paths.

There is no running systemd here: `verify` runs with --root on a throwaway root holding the distribution's
unit folder, our units in /etc/systemd/system and a stub at the ExecStart path (verify insists that the
binary exists), and `security --offline=true` scores the unit files alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

from gate.deploy.provision import INSTALL

UNITS = {"gate": "qrgate-gate.service", "arbiter": "qrgate-arbiter.service", "dashboard": "qrgate-dashboard.service"}
SYSTEMD = ROOT / "systemd"
#: the exposure score `systemd-analyze security` gives each unit must stay at or below this
MAX_EXPOSURE = {"gate": 2.5, "arbiter": 2.5, "dashboard": 2.5}


def directives(unit: str) -> dict[str, list[str]]:
    """Key -> every value it is given (in order), comments and sections dropped."""
    out: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("root")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS.values():
        shutil.copy(SYSTEMD / unit, root / "etc/systemd/system" / unit)
        binary = root / directives(unit)["ExecStart"][0].split()[0].lstrip("/")
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    yield root


def verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", str(root / "etc/systemd/system" / unit)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("role", UNITS)
def test_systemd_analyze_verify_is_clean(root: Path, role: str) -> None:
    result = verify(root, UNITS[role])
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_verify_would_see_a_mistake(root: Path) -> None:
    """The clean verdict above means something: a typo in a key or a value is reported."""
    text = (SYSTEMD / UNITS["arbiter"]).read_text().replace("ProtectSystem=strict", "ProtectSystem=strictt")
    (root / "etc/systemd/system/broken.service").write_text(text.replace("Restart=always", "Restrat=always"))
    out = verify(root, "broken.service").stderr
    assert "Unknown key 'Restrat'" in out and "strictt" in out


def exposure(root: Path, unit: str) -> float:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={root}", unit],
                            capture_output=True, text=True, timeout=60)
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


@pytest.mark.parametrize("role", UNITS)
def test_security_exposure_is_low(root: Path, role: str) -> None:
    score = exposure(root, UNITS[role])
    print(f"{UNITS[role]}: exposure {score}")
    assert score <= MAX_EXPOSURE[role]


def test_the_gate_unit_is_a_watched_restarting_notify_service() -> None:
    d = directives(UNITS["gate"])
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] and d["Restart"] == ["always"]
    assert d["User"] == ["qrgate"] and {"gpio", "video"} <= set(d["SupplementaryGroups"][0].split())
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                       "ProtectHome": "yes", "CapabilityBoundingSet": "", "MemoryDenyWriteExecute": "yes",
                       "ProtectProc": "invisible", "IPAddressDeny": "any"}.items():
        assert d[key] == [value], key
    allow = d["IPAddressAllow"][0].split()
    assert "localhost" in allow and "0.0.0.0/0" not in allow and "any" not in allow  # the venue's networks only
    assert d["DevicePolicy"] == ["closed"]  # and the GPIO and camera devices are let through:
    allowed = {v.split()[0] for v in d["DeviceAllow"]}
    assert {"char-gpiochip", "char-video4linux", "char-media", "char-dma_heap"} <= allowed


@pytest.mark.parametrize("role", UNITS)
def test_units_and_provisioned_bundles_agree_on_paths(role: str) -> None:
    d = directives(UNITS[role])
    home, state = INSTALL[role]
    exec_start = d["ExecStart"][0].split()
    assert exec_start[exec_start.index("--home") + 1] == home
    assert f"/var/lib/{d['StateDirectory'][0]}" == state
    assert f"/etc/{d['ConfigurationDirectory'][0]}" == home
    assert d["ProtectSystem"] == ["strict"] and d["UMask"] == ["0077"]


def test_the_dashboard_unit_runs_gate_dashboard() -> None:
    assert directives(UNITS["dashboard"])["ExecStart"][0].split()[1] == "dashboard"


def test_sysusers_files_create_the_users_in_their_groups(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    files = sorted((SYSTEMD / "sysusers").glob("*.conf"))
    result = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", "--dry-run", *map(str, files)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for user in ("qrgate", "qrgate-arbiter", "qrgate-dashboard"):
        assert f"Creating user '{user}'" in result.stdout + result.stderr
    gate = (SYSTEMD / "sysusers" / "qrgate-gate.conf").read_text()
    assert {"m qrgate gpio", "m qrgate video"} <= set(gate.splitlines())
    for role, unit in UNITS.items():
        user = directives(unit)["User"][0]
        assert any(f"u {user} " in f.read_text() for f in files), f"{role}: no sysusers entry for {user}"


MDWE = """
import ctypes, mmap, runpy, sys
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) == 0
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("W+X memory was allowed: the check means nothing")
except PermissionError:
    pass
sys.argv = ["gate", *sys.argv[1:]]
runpy.run_module("gate.cli", run_name="__main__")
"""


def test_the_gate_runs_without_writable_executable_memory(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes in the gate unit: the kernel's own W^X switch (PR_SET_MDWE, what the unit
    asks systemd for) under the demo, which mints, renders frames, decodes them (OpenCV, zxing-cpp) and
    decides, as a gate does."""
    from conftest import gate_env

    result = subprocess.run([sys.executable, "-c", MDWE, "demo"], capture_output=True, text=True, cwd=ROOT,
                            env=gate_env(tmp_path), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ADMIT" in result.stdout and "ALREADY_USED" in result.stdout
