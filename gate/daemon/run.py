"""`gate run`: the gate daemon, from a Config: camera, decoder, decision, lights, until SIGTERM.

What a caller may rely on: the store is opened (and its integrity checked)
before systemd hears READY=1; the amber offline light follows the arbiter
link; a `both` gate's exit button (gate.exit_button, gate/daemon/ways.py) gives each scan its
way, as does its exit scanner (scanner.exit_source: its every scan an exit), and a `both` gate with neither
says once that every scan is an entry; refused wedge scans (a flood past `scanner.line_queue`) show in
systemd's STATUS line and the retained MQTT status (`scans_refused`); the
systemd watchdog is fed by the scan loop itself (a wedge scanner, which
blocks in a read while nobody scans, by a keeper thread); a first
SIGTERM/SIGINT stops after the current frame and the queued decisions; a
second one ends the outbox drain at once (what is left stays in the outbox
for `gate sync`, and the gate says how many).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext

from gate.config import Config
from gate.daemon.scanloop import ScanLoop
from gate.daemon.sdnotify import Notifier, Watchdog
from gate.daemon.signals import on_stop_signals
from gate.decide import Decider
from gate.wiring import (
    build_decoder,
    build_feedback,
    build_loop,
    build_ways,
    camera_factory,
    exit_scanner,
    gate_session,
)
from hardware import Feedback

log = logging.getLogger(__name__)


def run(config: Config, *, camera: str | None = None, source: str | None = None, feedback_kind: str | None = None,
        verbose: bool = False) -> str:
    """Run the daemon until the source ends or a stop signal; the last health line."""
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.INFO)
    notifier = Notifier.from_env()  # systemd (Type=notify): READY, WATCHDOG, STATUS; a no-op elsewhere
    watchdog = Watchdog(notifier)
    feedback = build_feedback(config, feedback_kind)
    try:
        ways = build_ways(config)  # a missing pin library is refused before the store is opened
        exits = exit_scanner(config, camera, source)
    except BaseException:
        feedback.close()
        raise
    # gate_session opens the store, which runs PRAGMA quick_check: READY=1 only once that passed.  With
    # sync.broker set, every scan is claimed at the arbiter (the same path as `gate check --broker`).
    with feedback, ways or nullcontext(), gate_session(config) as decider:
        loop = build_loop(config, camera_factory(config, camera, source), build_decoder(config), feedback,
                          decider, on_alive=watchdog.feed, on_refused=_count_refused(decider), way=ways,
                          exit_camera=exits)
        _show_link_state(decider, feedback, loop)
        watchdog.status = loop.stats.health

        def on_term(signum: int) -> None:
            log.info("signal %d: stopping after the current frame", signum)
            loop.stop()
        on_stop_signals(on_term, again=_hurry(decider))
        kind = camera or config.camera.kind
        log.info("gate %s scanning (camera %s, decoder %s, feedback %s)", config.gate_id,
                 kind, config.decoder.kind, feedback_kind or config.feedback.kind)
        notifier.ready(f"gate {config.gate_id} scanning; store {config.store_path} checked")
        running = threading.Event()
        running.set()
        if kind == "wedge" and watchdog.every is not None:
            # A wedge scanner blocks in a read while nobody scans: no frames, yet nothing is hung.  Its
            # watchdog says only that the process runs (a dead capture thread ends the loop, and the
            # service is restarted then).
            threading.Thread(target=_keep_fed, args=(watchdog, running), name="watchdog", daemon=True).start()
        try:
            stats = loop.run()
        finally:
            running.clear()
        notifier.stopping(stats.health())
    return stats.health()


def _show_link_state(decider: Decider, feedback: Feedback, loop: ScanLoop) -> None:
    """Keep the amber offline light in step with the arbiter link (only for a gate with a broker)."""
    claimer = decider.claimer
    sync = getattr(claimer, "sync", None)
    if sync is None:
        return

    def watch() -> None:
        while not loop.stopped:
            feedback.offline(not sync.can_claim())
            time.sleep(1.0)
    threading.Thread(target=watch, name="link-state", daemon=True).start()


def _hurry(decider: Decider) -> Callable[[int], None]:
    """What a second stop signal does: the outbox drain at exit ends now (what is left stays for `gate sync`)."""
    sync = getattr(decider.claimer, "sync", None)
    return lambda _signum: sync.hurry() if sync is not None else None


def _count_refused(decider: Decider) -> Callable[[str], None] | None:
    """A wedge scan refused under a flood also counts in the retained MQTT status (`scans_refused`)."""
    sync = getattr(decider.claimer, "sync", None)
    if sync is None:
        return None
    return lambda _text: sync.counters.add("scans_refused")


def _keep_fed(watchdog: Watchdog, running: threading.Event) -> None:
    pause = (watchdog.every or 1.0) / 2
    while running.is_set():
        watchdog.feed()
        time.sleep(pause)


