"""Whether a gate's clock can be trusted with validity windows (docs/security.md: time).

A Raspberry Pi has no real-time clock: after a power cut it starts at the
time it last saved, until NTP sets it.  A ticket's validity window checked
against such a clock admits an expired ticket or refuses a valid one.

What a caller may rely on:

* `TimeTrust.source()` is "synced" while the kernel says the system clock is
  synchronised (adjtimex: any NTP client, systemd-timesyncd or chrony, keeps
  it so), else "arbiter" while the arbiter's clock, read from its replies in
  the last `fresh` seconds, agrees with ours within `skew`, else "untrusted".
* With `policy` "deny", a ticket that has a validity window is refused
  (Reason.UNTRUSTED_TIME) while the source is "untrusted"; tickets without a
  window are unaffected.  With "local" (the default) the local clock decides
  as it is, and the status says it is untrusted.
* Never raises: a platform without adjtimex is simply never "synced".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
import time
from collections.abc import Callable
from typing import Literal

Policy = Literal["local", "deny"]
#: adjtimex's return value for "clock not synchronised" (TIME_ERROR, linux/timex.h)
TIME_ERROR = 5


@functools.lru_cache(maxsize=1)
def _adjtimex() -> Callable[[ctypes.Array[ctypes.c_char]], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.adjtimex
    except (OSError, AttributeError):
        return None


def kernel_synced() -> bool:
    """True when the kernel's clock status says synchronised (a read-only adjtimex call, modes = 0)."""
    call = _adjtimex()
    if call is None:
        return False
    buf = ctypes.create_string_buffer(512)  # struct timex is 208 bytes on 64-bit Linux; modes (offset 0) = 0
    try:
        state = call(buf)
    except OSError:
        return False
    return 0 <= state < TIME_ERROR


class TimeTrust:
    """Safe to share between the decide thread and the sync worker."""

    def __init__(self, policy: Policy = "local", *, skew: float = 120.0, fresh: float = 600.0,
                 synced: Callable[[], bool] = kernel_synced, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.skew = skew
        self.fresh = fresh
        self.synced = synced
        self.clock = clock
        self._lock = threading.Lock()
        self._arbiter: tuple[float, float] | None = None  # (when read, offset)

    def note_arbiter(self, offset: float) -> None:
        """The arbiter's clock minus ours, from a reply just read (sync/gateside)."""
        with self._lock:
            self._arbiter = (self.clock(), offset)

    def source(self) -> str:
        if self.synced():
            return "synced"
        with self._lock:
            seen = self._arbiter
        if seen is not None and self.clock() - seen[0] <= self.fresh and abs(seen[1]) <= self.skew:
            return "arbiter"
        return "untrusted"

    def denies_windows(self) -> bool:
        """True when validity windows must not be judged on this clock (policy "deny", no trusted time)."""
        return self.policy == "deny" and self.source() == "untrusted"
