"""The scan loop: camera -> decoder -> debounce -> decide -> feedback.

What a caller may rely on:

* The loop never dies on a bad frame, a decoder error or a failing camera:
  each is counted, a camera failure shows the fault pattern and the camera is
  reopened with backoff.
* The same code held in view is one decision: it is decided again only after
  it has left the view (absent from `leave_frames` frames in a row) or after
  `holdoff` seconds of frame time.
* Decisions run on one worker thread behind one FIFO, so a slow store never
  makes the camera fall behind, and scans are decided in the order they came.
* Camera codes: when `queue_size` codes already wait, a new one is dropped
  (counted) and decided when a later frame shows it again.
* Line sources (a keyboard-wedge scanner, stdin: frames that carry `texts`):
  every line is a deliberate scan.  Each is decided, in order, none dropped,
  up to `line_queue` waiting at once (far more than a person can scan while
  one decision runs).  Past that a line is refused: counted (`refused`), shown
  with the fault pattern and reported through `on_refused`, never silent.
  The same line again within `holdoff` of its decision is not decided again
  (it is the scanner's double read, not a second person): it is answered with
  `Feedback.repeat`, the light of the decision a moment ago with its own
  sound and never the relay, and counted (`repeats`).
* `way` (a `both` gate's exit button, gate/daemon/ways.py) is asked once per scan when it is read (a
  camera code when handed on, a line when it arrives): a queued scan keeps its way, passed on as
  `decide(text, direction=...)` (None: `decide(text)`, the default way).  A line repeating one decided
  as an exit is a repeat whatever the button says; one scanned as an exit after its entry is decided.
* `exit_camera` (scanner.exit_source) is a line source on a thread of its own whose every line is an
  exit, in the same FIFO, repeats and refusals; reopened after a fault like the camera, its end ends
  only its reading, and it never feeds `on_alive`.  Its image frames are bad frames, never decoded.
* `stop()` (SIGTERM in `gate run`) ends the loop after the current frame; the
  worker finishes the decisions already queued (people are waiting for them).
* `on_alive` is called from the capture thread after each frame has been
  handled and before each camera retry: proof that the capture loop is not
  hung (`gate run` feeds the systemd watchdog with it).  A camera or decoder
  stuck in a call stops it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from gate.admission import Direction
from gate.decide import Decision
from hardware import BackendUnavailable, Camera, CameraError, Decoder, Feedback, HardwareError, UnknownBackend
from hardware.cameras import Frame

log = logging.getLogger(__name__)

#: decide(text), or decide(text, direction="out") for a scan whose way was read (Decider.decide)
Decide = Callable[..., Decision]
#: the way of the scan being read now; None: the gate's default
Way = Callable[[], Direction | None]


@dataclass
class ScanStats:
    """Counters a health line and the gate status are made from."""

    frames: int = 0
    bad_frames: int = 0
    decode_errors: int = 0
    camera_faults: int = 0
    dropped: int = 0
    refused: int = 0
    repeats: int = 0
    feedback_errors: int = 0
    way_errors: int = 0
    decode_ms_total: float = 0.0
    decisions: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    #: when the loop ended: a health line made after that (at exit, after the drain) gives the same rates
    ended: float | None = None

    def health(self) -> str:
        elapsed = max((self.ended or time.monotonic()) - self.started, 1e-9)
        ms = self.decode_ms_total / self.frames if self.frames else 0.0
        by = " ".join(f"{k}={v}" for k, v in sorted(self.decisions.items())) or "none"
        return (f"health: {self.frames / elapsed:.1f} frames/s, decode {ms:.2f} ms/frame, decisions {by}, "
                f"bad frames {self.bad_frames}, camera faults {self.camera_faults}, dropped {self.dropped}, "
                f"refused {self.refused}, repeats {self.repeats}, feedback errors {self.feedback_errors}")


class _Released:
    """The decoder of a loop that has ended: reads nothing (its library's objects are freed)."""

    def decode(self, image: object) -> list[str]:
        return []


_RELEASED = _Released()


class Debouncer:
    """Turns texts seen per frame into 'decide this now' events (one per presentation)."""

    def __init__(self, holdoff: float = 5.0, leave_frames: int = 5) -> None:
        self.holdoff = holdoff
        self.leave_frames = leave_frames
        self._in_view: dict[str, tuple[float, int]] = {}  # text -> (time decided, frames missed)

    def fresh(self, texts: list[str], ts: float) -> list[str]:
        """The texts of this frame that deserve a decision now (call `accepted` for each handed on)."""
        for text in list(self._in_view):
            if text not in texts:
                decided, missed = self._in_view[text]
                if missed + 1 >= self.leave_frames:
                    del self._in_view[text]  # it has left the view
                else:
                    self._in_view[text] = (decided, missed + 1)
        out = []
        for text in texts:
            seen = self._in_view.get(text)
            if seen is None or ts - seen[0] >= self.holdoff:
                out.append(text)
            else:
                self._in_view[text] = (seen[0], 0)
        return out

    def accepted(self, text: str, ts: float) -> None:
        self._in_view[text] = (ts, 0)


class LineRepeats:
    """Which lines of a line source repeat one decided less than `holdoff` ago (frame time)."""

    def __init__(self, holdoff: float = 5.0) -> None:
        self.holdoff = holdoff
        self._decided: dict[str, tuple[float, Direction | None]] = {}  # text -> time and way of its last decision

    def is_repeat(self, text: str, ts: float, way: Direction | None = None) -> bool:
        """True for a repeat; otherwise records `text` as decided at `ts` going `way`.

        A line read with a way (an exit) is a repeat only of a line decided with the same way; a line read
        without one repeats whatever was decided."""
        self._decided = {t: seen for t, seen in self._decided.items() if ts - seen[0] < self.holdoff}
        seen = self._decided.get(text)
        if seen is not None and (way is None or way == seen[1]):
            return True
        self._decided[text] = (ts, way)
        return False


@dataclass(frozen=True)
class _Job:
    """One scan handed to the worker: decide `text` (going `way`), or answer it as a repeat."""

    text: str
    repeat: bool = False
    way: Direction | None = None


#: Decisions the worker remembers (by text) to answer repeats with; more than
#: a person can scan within any holdoff.
REMEMBERED = 256


class ScanLoop:
    """Runs one gate's camera until the source ends or `stop()` is called."""

    def __init__(
        self,
        open_camera: Callable[[], Camera],
        decoder: Decoder,
        decide: Decide,
        feedback: Feedback,
        *,
        debouncer: Debouncer | None = None,
        queue_size: int = 4,
        line_queue: int = 256,
        retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0),
        max_camera_faults: int | None = None,
        health_every: float = 60.0,
        on_decision: Callable[[Decision], None] | None = None,
        on_frame: Callable[[], None] | None = None,
        on_alive: Callable[[], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
        way: Way | None = None,
        exit_camera: Callable[[], Camera] | None = None,
    ) -> None:
        self.open_camera = open_camera
        self.decoder = decoder
        self.decide = decide
        self.feedback = feedback
        self.debouncer = debouncer or Debouncer()
        self.retry_delays = retry_delays
        self.max_camera_faults = max_camera_faults
        self.health_every = health_every
        self.on_decision = on_decision
        self.on_frame = on_frame
        self.on_alive = on_alive
        self.on_refused = on_refused
        self.way = way
        self.exit_camera = exit_camera
        self._reading = threading.Lock()  # the camera's and the exit scanner's threads hand scans on one at a time
        self.queue_size = queue_size
        self.lines = LineRepeats(self.debouncer.holdoff)
        self.stats = ScanStats()
        self.stop_grace = 2.0
        self.fatal: HardwareError | None = None
        # One FIFO for both kinds of scan, bounded for lines; camera codes stop at `queue_size`.
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max(queue_size, line_queue))
        self._answers: OrderedDict[str, Decision] = OrderedDict()  # worker thread only
        self._stop = threading.Event()
        self._last_health = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> ScanStats:
        """Scan until the camera's frames end or stop(); return the counters.

        Raises BackendUnavailable / UnknownBackend (after a clean stop) when the
        camera's library is missing or its kind unknown: retrying cannot help.
        """
        worker = threading.Thread(target=self._work, name="decide", daemon=True)
        capture = threading.Thread(target=self._capture_safely, args=(self.open_camera, False), name="capture",
                                   daemon=True)
        worker.start()
        capture.start()
        if self.exit_camera is not None:
            threading.Thread(target=self._capture_safely, args=(self.exit_camera, True), name="exits",
                             daemon=True).start()
        try:
            while capture.is_alive() and not self._stop.is_set():
                capture.join(0.2)
            # A source blocked in a read (a wedge scanner with nobody scanning) cannot see stop():
            # give it a moment, then leave it behind (the thread is a daemon).
            capture.join(self.stop_grace)
        finally:
            self._finish(worker)
            self.stats.ended = time.monotonic()  # the caller reports the last health line (`gate run` prints it)
            # A thread left behind (a blocked read, the link light) must not keep the decoder library's objects
            # alive until the interpreter exits: zxing-cpp (nanobind) prints a leak report for each of them then.
            self.decoder = _RELEASED
        if self.fatal is not None:
            raise self.fatal
        return self.stats

    def _finish(self, worker: threading.Thread) -> None:
        """Let the worker decide what is queued, then end it; never wait on a worker that is gone."""
        while worker.is_alive():
            try:
                self._queue.put(None, timeout=0.5)  # after the queued texts: the worker drains them first
                break
            except queue.Full:
                continue
        worker.join(10)

    def _capture_safely(self, open_camera: Callable[[], Camera], exits: bool) -> None:
        """Read one source until it ends; the camera's end (or any source's missing library) ends the loop."""
        try:
            self._capture(open_camera, exits)
            if not exits:
                self._stop.set()
        except (BackendUnavailable, UnknownBackend) as exc:
            self.fatal = exc  # software or config missing: retrying cannot help, run() raises it
            self._stop.set()
        except Exception as exc:  # a bug in a camera backend: report it, stop cleanly, never hang the daemon
            self.stats.camera_faults += 1
            log.exception("%s stopped: %s", "exit scanner" if exits else "capture", exc)
            self.feedback.fault()
            self._stop.set()

    # capture side ------------------------------------------------------------------
    def _capture(self, open_camera: Callable[[], Camera], exits: bool) -> None:
        faults_in_a_row = 0
        while not self._stop.is_set():
            try:
                with open_camera() as camera:
                    for frame in camera.frames():
                        faults_in_a_row = 0
                        self._frame(frame, exits)
                        if self.on_alive is not None and not exits:  # the exit scanner proves nothing of the camera
                            self.on_alive()
                        if self._stop.is_set():
                            return
                return  # the source ended (a file replayed): done
            except CameraError as exc:
                self.stats.camera_faults += 1
                faults_in_a_row += 1
                log.error("%s fault %d: %s", "exit scanner" if exits else "camera", self.stats.camera_faults, exc)
                self.feedback.fault()
                if self.max_camera_faults is not None and self.stats.camera_faults >= self.max_camera_faults:
                    return
                delay = self.retry_delays[min(faults_in_a_row, len(self.retry_delays)) - 1]
                if self.on_alive is not None and not exits:
                    self.on_alive()  # failing, but not hung: retrying is the loop's work now
                self._stop.wait(delay)

    def _frame(self, frame: Frame, exits: bool = False) -> None:
        codes = self._decode(frame) if frame.texts is None and not exits else []  # decoding holds no lock
        with self._reading:
            self.stats.frames += 1
            if self.on_frame is not None:
                self.on_frame()
            if frame.texts is not None:
                for text in frame.texts:
                    self._line(text, frame.ts, "out" if exits else self._read_way())
            elif exits:
                self.stats.bad_frames += 1  # an exit scanner is a line source
            else:
                self._codes(codes, frame.ts)
            if time.monotonic() - self._last_health >= self.health_every:
                self._last_health = time.monotonic()
                log.info(self.stats.health())

    def _codes(self, texts: list[str], ts: float) -> None:
        for text in self.debouncer.fresh(texts, ts):
            if self._queue.qsize() >= self.queue_size:  # puts hold _reading: the size can only shrink meanwhile
                self.stats.dropped += 1  # not marked as decided: a later frame hands it on again
                continue
            self._queue.put_nowait(_Job(text, way=self._read_way()))
            self.debouncer.accepted(text, ts)

    def _line(self, text: str, ts: float, way: Direction | None) -> None:
        """A scan from a line source: queued for a decision (or a repeat's answer), or refused out loud."""
        job = _Job(text, repeat=self.lines.is_repeat(text, ts, way), way=way)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.stats.refused += 1
            log.warning("scan refused: %d scans already wait for a decision (%d refused so far); scan it again",
                        self._queue.maxsize, self.stats.refused)
            self.feedback.fault()
            if self.on_refused is not None:
                self.on_refused(text)

    def _read_way(self) -> Direction | None:
        """The way of the scan read now; a failing button is counted and the scan keeps the default way."""
        if self.way is None:
            return None
        try:
            return self.way()
        except Exception as exc:  # a broken button must not stop the gate: counted, logged, the default way
            self.stats.way_errors += 1
            log.error("exit button unreadable (%d so far), scan taken as the default way: %s",
                      self.stats.way_errors, exc)
            return None

    def _decode(self, frame: Frame) -> list[str]:
        if frame.image is None:
            self.stats.bad_frames += 1
            return []
        t0 = time.perf_counter()
        try:
            texts = self.decoder.decode(frame.image)
        except Exception as exc:  # a decoder library bug must not stop the gate: counted and logged
            self.stats.decode_errors += 1
            log.warning("decoder error on frame %d: %s", self.stats.frames, exc)
            return []
        finally:
            self.stats.decode_ms_total += (time.perf_counter() - t0) * 1000
        return texts

    # decision side -------------------------------------------------------------------
    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            answered = self._answers.get(job.text) if job.repeat else None
            if answered is not None:
                self.stats.repeats += 1
                self._signal(answered, repeat=True)
                continue
            try:
                decision = self.decide(job.text) if job.way is None else self.decide(job.text, direction=job.way)
            except Exception as exc:  # decide() promises not to raise; if it does, deny loudly, keep going
                self.stats.decisions["ERROR"] += 1
                log.error("decision failed, denied: %s", exc)
                self.feedback.fault()
                continue
            self.stats.decisions[decision.outcome.value] += 1
            self._remember(job.text, decision)
            self._signal(decision, repeat=False)

    def _remember(self, text: str, decision: Decision) -> None:
        self._answers[text] = decision
        self._answers.move_to_end(text)
        while len(self._answers) > REMEMBERED:
            self._answers.popitem(last=False)

    def _signal(self, decision: Decision, *, repeat: bool) -> None:
        try:
            if repeat:
                self.feedback.repeat(decision.outcome, decision.reason)
                return
            self.feedback.show(decision.outcome, decision.reason, provisional=decision.provisional)
            if self.on_decision is not None:
                self.on_decision(decision)
        except Exception as exc:  # a broken LED driver or pipe must not stop the next decision
            self.stats.feedback_errors += 1
            log.error("feedback for scan %s failed: %s", decision.scan_id, exc)
