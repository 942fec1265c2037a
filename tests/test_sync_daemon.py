"""`gate run` with a broker: the scan daemon claims at the arbiter like `gate check --broker`."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.register_assert_rewrite("sync_fixtures")

from conftest import ROOT  # noqa: E402
from sync_fixtures import Site, wait_until  # noqa: E402


def start_run(site: Site, gate_id: str, frames: Path) -> subprocess.Popen[str]:
    home = site.home(gate_id)
    home.mkdir(parents=True, exist_ok=True)
    (home / "gate.toml").write_text(f'[camera]\nkind = "files"\nsource = "{frames}"\n'
                                    '[feedback]\nkind = "console"\n[scanner]\nholdoff = 3600\n')
    return subprocess.Popen([sys.executable, "-m", "gate.cli", "run", "--gate-id", gate_id], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=site.env(home), cwd=ROOT)


def test_two_daemons_same_code_one_admit_via_the_arbiter(site: Site, tmp_path: Path) -> None:
    from gate.cli.demo import write_frames

    site.start_arbiter()
    ticket = site.mint(1)[0]
    write_frames(tmp_path / "frames", [ticket])  # the code is shown once per replay
    first = start_run(site, "gate-a", tmp_path / "frames")
    out_a, err_a = first.communicate(timeout=60)  # loops = 1: the daemon ends with its source
    assert first.returncode == 0, err_a
    assert "✔ ADMIT" in out_a
    second = start_run(site, "gate-b", tmp_path / "frames")
    out_b, err_b = second.communicate(timeout=60)
    assert second.returncode == 0, err_b
    assert "ALREADY_USED" in out_b and "ADMIT" not in out_b.replace("ALREADY_USED", "")
    with site.arbiter_db() as db:
        holders = wait_until(lambda: db.execute("SELECT gate_id FROM claims").fetchall(), what="the arbiter's claim")
    assert [h[0] for h in holders] == ["gate-a"]


def test_daemon_with_broker_stops_cleanly_on_sigterm(site: Site, tmp_path: Path) -> None:
    from gate.cli.demo import write_frames

    site.start_arbiter()
    write_frames(tmp_path / "frames", site.mint(1))
    home = site.home("gate-c")
    home.mkdir(parents=True)
    (home / "gate.toml").write_text(f'[camera]\nkind = "files"\nsource = "{tmp_path / "frames"}"\nfps = 30\n'
                                    'loops = 0\n[feedback]\nkind = "console"\n')
    proc = subprocess.Popen([sys.executable, "-m", "gate.cli", "run", "--gate-id", "gate-c"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=site.env(home), cwd=ROOT)
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline()]
        while "ADMIT" not in lines[-1] and len(lines) < 5:
            lines.append(proc.stdout.readline())
        assert lines[-1] == "✔ ADMIT\n"
        assert "● online\n" in lines  # the amber light follows the arbiter link
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_burst_of_stop_signals_still_stops_the_arbiter(site: Site) -> None:
    """TERM and INT in quick succession (systemd then an impatient operator): no handler deadlock."""
    arbiter = site.start_arbiter()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        arbiter.proc.send_signal(sig)
    assert arbiter.proc.wait(timeout=20) == 0


def test_the_stop_handler_acts_once() -> None:
    from gate.daemon.signals import on_stop_signals

    calls: list[int] = []
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        on_stop_signals(calls.append)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        handler(signal.SIGTERM, None)
        handler(signal.SIGINT, None)
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def test_the_second_stop_signal_calls_again_once() -> None:
    from gate.daemon.signals import on_stop_signals

    calls: list[tuple[str, int]] = []
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        on_stop_signals(lambda s: calls.append(("stop", s)), again=lambda s: calls.append(("again", s)))
        handler = signal.getsignal(signal.SIGINT)
        assert callable(handler)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGINT, signal.SIGTERM):
            handler(sig, None)
        assert calls == [("stop", signal.SIGTERM), ("again", signal.SIGINT)]
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
