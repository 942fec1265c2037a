"""The docs are executable: every shell block in README.md and docs/*.md is marked, just before it, either
`<!-- doc-block NAME: run -->` (this file runs it as written, in a temporary HOME with `gate` on PATH, and
checks what it printed) or `<!-- doc-block NAME: not run here: WHY -->` (a Pi, root, a venue's addresses),
in which case NOT_RUN holds a fingerprint of its text: a block that changes fails here until someone has
looked at it again and updated the fingerprint (or made it runnable)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKED = re.compile(r"<!-- doc-block ([a-z0-9-]+): (run|not run here: [^>]*) -->\n```sh\n(.*?)^```", re.S | re.M)
#: a command in a run block that exits non-zero says so on stderr (bash's ERR trap), with its exit status
TRAP = "set -o errtrace\ntrap 'echo \"doc-block: exit $? from: $BASH_COMMAND\" >&2' ERR\n"


@dataclass(frozen=True)
class Block:
    doc: str
    name: str
    rule: str
    text: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]


#: the README's first block, the two commands, has no marker: it must come first (tests/test_project.py)
FIRST = re.compile(r"\A# qrgate\n\n```sh\n(.*?)^```", re.S | re.M)


def marked(doc: Path) -> list[tuple[str, str, str]]:
    """(name, rule, text) of each marked block in `doc`, and of the README's unmarked first one."""
    text = doc.read_text()
    first = FIRST.match(text) if doc.name == "README.md" else None
    found = [("readme-two-commands", "not run here: they install qrgate and run this suite", first[1])] if first else []
    return found + MARKED.findall(text)


def blocks() -> dict[str, Block]:
    found: dict[str, Block] = {}
    for doc in DOCS:
        for name, rule, text in marked(doc):
            assert name not in found, f"two doc blocks named {name!r}"
            found[name] = Block(doc.name, name, rule, text)
    return found


@dataclass(frozen=True)
class Ran:
    stdout: str
    stderr: str
    home: Path
    work: Path

    def exits(self) -> list[str]:
        """The commands that exited non-zero, as `STATUS COMMAND`."""
        return [line.removeprefix("doc-block: exit ").replace(" from: ", " ", 1)
                for line in self.stderr.splitlines() if line.startswith("doc-block: exit ")]


def run(block: Block, tmp_path: Path, *, in_repo: bool) -> Ran:
    """The block as a bash script: HOME is a fresh folder, `gate` is this checkout's, no QRGATE_ variables; it
    runs in the repository (for images/) or in an empty work folder (for the files it writes)."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRGATE_")}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    result = subprocess.run(["bash", "-c", TRAP + block.text], capture_output=True, text=True, env=env,
                            cwd=ROOT if in_repo else work, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    ran = Ran(result.stdout, result.stderr, home, work)
    assert all(e.startswith("1 ") for e in ran.exits()), (
        f"{block.doc} block {block.name}: a command failed (exit 2 is a usage, config or key error):\n"
        f"{result.stderr}")
    return ran


def using_it(ran: Ran) -> None:
    assert "ADMIT - show7/9f2 seat=12B" in ran.stdout and "ALREADY_USED already_used show7/9f2" in ran.stdout
    assert ran.stdout.count('"outcome": "ADMIT"') == 500
    assert (ran.work / "tickets" / "9f2.png").exists() and "retired" in ran.stdout
    assert [e.split()[1:3] for e in ran.exits()] == [["gate", "check"]]  # only the ALREADY_USED line exits 1


def sample_frames(ran: Ran) -> None:
    assert "imported" in ran.stdout and "ADMIT" in ran.stdout and "ALREADY_USED" in ran.stdout, ran.stdout
    assert "INVALID (malformed)" in ran.stdout and ran.exits() == []


def ownership(ran: Ran) -> None:
    assert "show7/9f2 seat=12B sold holder=" in ran.stdout and "show7/9f2 generation=2 held" in ran.stdout
    assert "ADMIT - show7/9f2 seat=12B" in ran.stdout, ran.stdout
    assert "REVOKED superseded show7/9f2" in ran.stdout  # Alice's code from before the resale
    assert len(ran.exits()) == 1 and not (ran.home / "boxoffice" / "wallet.db").exists()


@dataclass(frozen=True)
class Runnable:
    check: Callable[[Ran], None]
    in_repo: bool = False


RUN = {
    "readme-using-it": Runnable(using_it),
    "readme-sample-frames": Runnable(sample_frames, in_repo=True),
    "readme-ownership": Runnable(ownership),
}

#: blocks that cannot run here, and the fingerprint of the text last looked at (update it when you change one)
NOT_RUN = {
    "readme-two-commands": "fad74ae957cb",
    "readme-boxoffice-server": "d27b277e9e82",
    "readme-at-the-gate": "d8f5046e9235",
    "readme-arbiter": "d1473b9278b1",
    "readme-dashboard": "0eacb632159a",
    "readme-wallet-page": "1a6b1a1e2853",
    "readme-server": "6ddb3408ad31",
    "readme-pi": "68e0c357d00b",
    "readme-pi-unit": "98c6750f0db5",
    "dashboard-start": "1881fad8cff9",
    "dashboard-accounts": "43d00e7e4211",
    "mqtt-commands": "d7ceb63574bb",
    "mqtt-watch-all": "8617afffef2c",
    "mqtt-watch-scans": "cdb66e0e1d65",
    "scale-instances": "af502d602229",
    "checkin-mint": "49b941b1d0ee",
    "checkin-sign": "928ded1d156f",
    "operations-day-to-day": "b633011e7c32",
    "checkin-conflicts": "30273cbdcb21",
    "checkin-show": "333156928d7e",
}


def test_every_shell_block_is_marked() -> None:
    for doc in DOCS:
        assert doc.read_text().count("```sh\n") == len(marked(doc)), (
            f"{doc.name}: a ```sh block without <!-- doc-block NAME: run --> or <!-- doc-block NAME: not run here: "
            "WHY --> on the line before it")


def test_every_block_is_known_here_and_the_ones_not_run_are_unchanged() -> None:
    found = blocks()
    assert set(found) == set(RUN) | set(NOT_RUN), "a doc block this file does not know, or one that is gone"
    for name, block in found.items():
        assert (block.rule == "run") == (name in RUN), f"{block.doc} block {name}: marked {block.rule!r}"
        if name in NOT_RUN:
            assert block.fingerprint == NOT_RUN[name], (
                f"{block.doc} block {name} changed (fingerprint {block.fingerprint}): check it by hand (or make it "
                "run here) and update NOT_RUN in tests/test_docs.py")


@pytest.mark.parametrize("name", sorted(RUN))
def test_a_runnable_block_runs_as_written(name: str, tmp_path: Path) -> None:
    runnable = RUN[name]
    runnable.check(run(blocks()[name], tmp_path, in_repo=runnable.in_repo))
