"""Writing a secret (or a public) file whole, so that a planted symlink cannot redirect it.

What a caller may rely on:

* `write_file` replaces `path` atomically (a temporary file beside it, fsync, rename): a reader sees the
  old content or the new, never half.  The file is created with `mode` (never widened afterwards).
* It never writes through a symbolic link: the temporary file is opened with ``O_CREAT | O_EXCL |
  O_NOFOLLOW`` after any stale one is removed (unlink removes a link, not its target), and a `path`
  that is itself a link is refused with `SymlinkRefused` (an ``OSError``, errno ``ELOOP``) instead of
  being replaced.  So someone who can write the folder of a key file but not the key file's target
  cannot make us overwrite, say, /etc/passwd or a file they will read later.
* A file that is replaced keeps its owner and group (as far as we may set them): an operator running
  `sudo gate dashboard user add` leaves the file readable by the service's group as before.
* It returns False (and writes nothing) when the file already holds exactly `data` with `mode`.

Standard library only: the decision core, deployment and the dashboard share it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path


class SymlinkRefused(OSError):
    """The path to write is a symbolic link."""


def write_file(path: Path, data: bytes, mode: int = 0o600) -> bool:
    path = Path(path)
    if path.is_symlink():
        raise SymlinkRefused(errno.ELOOP, "refusing to write through a symbolic link", str(path))
    old = path.stat() if path.exists() else None
    if old is not None and path.read_bytes() == data and (old.st_mode & 0o777) == mode:
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover (or a planted link): the link itself goes, never what it points at
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have narrowed it
            if old is not None and (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
                with contextlib.suppress(PermissionError):
                    os.fchown(f.fileno(), old.st_uid, old.st_gid)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True
