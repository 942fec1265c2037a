"""`gate run`, `gate demo` and `gate decode` as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import ROOT, gate_env, mint

from gate.keys import IssuerKey, KeyStore

Cli = Callable[..., subprocess.CompletedProcess[str]]
IMAGES = ROOT / "images"


def test_demo_tells_the_worked_example_story(gate_cli: Cli) -> None:
    result = gate_cli("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    story = [line for line in result.stdout.splitlines() if " -> " in line]
    assert [line.split(" -> ")[1].split()[0] for line in story] == ["ADMIT", "ALREADY_USED", "INVALID", "REVOKED"]
    assert "first_used_at=gate-north-1" in story[1]
    assert "Traceback" not in result.stderr


def test_run_scans_a_folder_until_sigterm_then_exits_cleanly(home: Path, tmp_path: Path) -> None:
    from gate.cli.demo import write_frames

    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    write_frames(tmp_path / "frames", [mint(key)])
    (home / "gate.toml").write_text(
        f'[gate]\nid = "gate-run-test"\n[camera]\nkind = "files"\nsource = "{tmp_path / "frames"}"\n'
        'fps = 50\nloops = 0\n[feedback]\nkind = "console"\n[scanner]\nholdoff = 3600\n')
    proc = subprocess.Popen([sys.executable, "-m", "gate.cli", "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=gate_env(home), cwd=ROOT)
    assert proc.stdout is not None
    seen = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "ALREADY_USED" not in " ".join(seen):
            seen.append(proc.stdout.readline())  # the replay loops: the 2nd showing is ALREADY_USED
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert [s.split()[1] for s in seen if s.strip()][:2] == ["ADMIT", "ALREADY_USED"]
    assert "health:" in out and "Traceback" not in err
    history = subprocess.run([sys.executable, "-m", "gate.cli", "history", "9f2", "--json"], capture_output=True,
                             text=True, env=gate_env(home), cwd=ROOT)
    assert json.loads(history.stdout.splitlines()[0])["gate_id"] == "gate-run-test"


def test_run_with_a_wedge_on_stdin_decides_every_line_of_a_burst_and_answers_a_repeat(home: Path) -> None:
    """50 scans typed at once by a handheld, then the last one read twice: 50 decisions and a repeat signal."""
    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    lines = [mint(key, f"h{i}") for i in range(50)]
    lines.append(lines[-1])
    result = subprocess.run([sys.executable, "-m", "gate.cli", "run", "--camera", "wedge", "--source", "-",
                             "--feedback", "console"], input="".join(f"{line}\n" for line in lines),
                            capture_output=True, text=True, env=gate_env(home), cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out.count("✔ ADMIT") == 50
    assert "↻ ADMIT, scanned again" in out
    assert "decisions ADMIT=50" in out[-1] and "dropped 0, refused 0, repeats 1" in out[-1]
    assert (result.stdout + result.stderr).count("health:") == 1  # it was logged at the loop's end, then printed


def test_run_reads_a_dark_mode_phone_from_camera_frames(home: Path, tmp_path: Path) -> None:
    """`gate run` on frames of a light-on-dark code (a dark-mode wallet): ADMIT on the light."""
    import cv2

    from hardware.scene import Conditions, render_frame

    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        dark = Conditions(module_px=4.5, tilt=10, rotation=-6, blur=0.4, noise=2, inverted=True)
        cv2.imwrite(str(frames / f"{i}.png"), render_frame(mint(key), seed=i, difficulty=dark))
    result = subprocess.run([sys.executable, "-m", "gate.cli", "run", "--camera", "files", "--source", str(frames),
                             "--feedback", "console"], capture_output=True, text=True, env=gate_env(home), cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line[:1] in "✔✖⊘⚠"] == ["✔ ADMIT"]


def test_run_without_picamera2_says_what_to_install(home: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gate.cli", "run", "--feedback", "console"],
                            capture_output=True, text=True, env=gate_env(home), cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "python3-picamera2" in result.stderr and "Traceback" not in result.stderr


def test_decode_prints_path_and_text_for_each_committed_image(gate_cli: Cli) -> None:
    manifest = json.loads((IMAGES / "manifest.json").read_text())
    paths = sorted(IMAGES.glob("*.png"))
    assert len(paths) >= 4
    result = gate_cli("decode", *map(str, paths))
    lines = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    for path in paths:
        texts = manifest[path.name]
        assert lines[str(path)] == (" | ".join(texts) if texts else "-"), path.name
    assert result.returncode == 1  # the empty frame reads nothing: a script can tell


def test_decode_reads_every_dark_mode_still(gate_cli: Cli, tmp_path: Path) -> None:
    import cv2

    from hardware.scene import Conditions, render_frame

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"dark{i}.png")
        cv2.imwrite(str(paths[-1]), render_frame(f"DARK-{i}", seed=i, difficulty=Conditions(module_px=5, inverted=True)))
    result = gate_cli("decode", *map(str, paths))
    assert result.returncode == 0, result.stdout
    assert [line.split("\t")[1] for line in result.stdout.splitlines()] == ["DARK-0", "DARK-1", "DARK-2"]


def test_decode_of_a_file_that_is_not_an_image(gate_cli: Cli, tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    result = gate_cli("decode", str(junk))
    assert result.returncode == 1 and "cannot read" in result.stdout


def test_readme_shows_ops_staff_the_real_patterns() -> None:
    from hardware import pattern_table

    readme = (ROOT / "README.md").read_text()
    for row in pattern_table().splitlines()[2:]:
        assert row in readme, f"README.md's pattern table is out of step: {row}"


def test_run_decides_the_committed_images_with_the_documented_test_keys(home: Path) -> None:
    from test_ticket_format import doc_vectors

    from gate.keys import IssuerKey

    store = KeyStore(home / "keys")
    for k in doc_vectors()["keys"]:
        secret = str(k.get("master_secret") or k["private_key"])
        store.add_issuer_key(IssuerKey(str(k["kid"]), str(k["scheme"]), str(k["event"]), bytes.fromhex(secret), 0.0))
    (home / "gate.toml").write_text(f'[camera]\nkind = "files"\nsource = "{IMAGES}"\n'
                                    '[feedback]\nkind = "console"\n[scanner]\nleave_frames = 1\n')
    result = subprocess.run([sys.executable, "-m", "gate.cli", "run"], capture_output=True, text=True,
                            env=gate_env(home), cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    shown = [line.split()[1] for line in result.stdout.splitlines() if line[:1] in "✔✖⊘⚠"]
    # sorted files: empty, not_a_ticket, ticket (HMAC), ticket_ed25519 (the same show7/9f2 under the
    # other key: still single use), two_codes (the HMAC one is back in view)
    assert shown == ["INVALID", "ADMIT", "ALREADY_USED", "ALREADY_USED"]


def test_demo_and_run_on_a_machine_without_libzbar(home: Path, tmp_path: Path) -> None:
    """pyzbar cannot load libzbar0: the demo says so and goes on; `gate run` refuses to start and names it."""
    shadow = tmp_path / "shadow" / "pyzbar"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('Unable to find zbar shared library')\n")
    env = gate_env(home)
    env["PYTHONPATH"] = f"{tmp_path / 'shadow'}:{env['PYTHONPATH']}"
    demo = subprocess.run([sys.executable, "-m", "gate.cli", "demo"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "libzbar0" in demo.stdout and "demo ok" in demo.stdout
    run = subprocess.run([sys.executable, "-m", "gate.cli", "run", "--camera", "files", "--source", str(IMAGES),
                          "--feedback", "console"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert run.returncode == 2 and "libzbar0" in run.stderr and "Traceback" not in run.stderr


def test_run_with_a_missing_files_source_refuses_to_start(home: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gate.cli", "run", "--camera", "files", "--source",
                             str(tmp_path / "nope"), "--feedback", "console"], capture_output=True, text=True,
                            env=gate_env(home), cwd=ROOT, timeout=60)
    assert result.returncode == 2 and "camera.source" in result.stderr and "Traceback" not in result.stderr


def test_run_marks_an_offline_admission_provisional_on_the_console(home: Path) -> None:
    """The arbiter unreachable (admit-if-unseen): the console said a plain `✔ ADMIT`, as if it were final."""
    from sync_fixtures import free_port

    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    result = subprocess.run([sys.executable, "-m", "gate.cli", "run", "--camera", "wedge", "--source", "-",
                             "--feedback", "console", "--broker", f"mqtt://127.0.0.1:{free_port()}",
                             "--set", "sync.connect_wait=0.2", "--set", "sync.drain_wait=0.2"],
                            input=f"{mint(key)}\n", capture_output=True, text=True, env=gate_env(home), cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "✔ ADMIT (offline, provisional)" in result.stdout.splitlines()


def test_a_second_ctrl_c_ends_the_drain_at_once_and_quietly(home: Path) -> None:
    """The arbiter unreachable, sync.drain_wait 60 s: the second SIGINT was ignored (and at exit zxing-cpp's
    nanobind printed a leak report for the decoder a wedge's blocked read still held)."""
    from sync_fixtures import free_port

    key = IssuerKey.new("show7", "hmac")
    KeyStore(home / "keys").add_issuer_key(key)
    scanner, typing = os.pipe()  # the scanner stays plugged in to the end: its read blocks
    proc = subprocess.Popen([sys.executable, "-m", "gate.cli", "run", "--camera", "wedge", "--source", "-",
                             "--feedback", "console", "--broker", f"mqtt://127.0.0.1:{free_port()}",
                             "--set", "sync.connect_wait=0.2", "--set", "sync.drain_wait=60"],
                            stdin=scanner, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=gate_env(home), cwd=ROOT)
    os.close(scanner)
    assert proc.stdout is not None
    try:
        os.write(typing, f"{mint(key)}\n".encode())
        while "ADMIT" not in proc.stdout.readline():
            pass
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)  # draining now
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        os.close(typing)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopping now; 1 scan not yet confirmed by the arbiter stays in the outbox: `gate sync` delivers them" in err
    assert "nanobind" not in err and "leaked" not in err and "Traceback" not in err
    assert out.splitlines()[-1].startswith("health:")
