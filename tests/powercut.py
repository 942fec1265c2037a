"""What a disk would hold after a power cut: replay the log of tests/fixtures/powercut.c (an LD_PRELOAD shim).

A SIGKILL keeps the kernel's page cache, so a process-crash test passes even with no fsync at all.  Here
the shim logs, in order, every write to the process's SQLite files, every fsync/fdatasync that returned,
and every line it printed.  `Replay` rebuilds from that log the files as a disk would hold them if the
power went at any point of it: everything written before a file's last completed sync, and of what was
written after, nothing or any subset (a disk may have written some of its cache back, in any order).

Names, sizes, unlinks are taken as durable when they happen (the folder's own sync is not modelled).
"""

from __future__ import annotations

import random
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "fixtures" / "powercut.c"
HEADER = struct.Struct("=c3xiqq")


def build(folder: Path) -> Path:
    """Compile the shim into `folder`; its path."""
    lib = folder / "powercut.so"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(SOURCE), "-ldl", "-lpthread"], check=True)
    return lib


def env(lib: Path, watched: Path, log: Path) -> dict[str, str]:
    """The variables that make a child log its SQLite files under `watched` to `log`."""
    return {"LD_PRELOAD": str(lib), "POWERCUT_DIR": str(watched), "POWERCUT_LOG": str(log)}


@dataclass(frozen=True)
class Record:
    kind: str  # N, W, T, S, U, O (see powercut.c)
    file: int
    offset: int
    data: bytes


def records(log: Path) -> list[Record]:
    """The log's records; a record the kill cut short is dropped (its call never completed)."""
    raw = log.read_bytes() if log.exists() else b""
    out, at = [], 0
    while at + HEADER.size <= len(raw):
        kind, file, offset, length = HEADER.unpack_from(raw, at)
        if at + HEADER.size + length > len(raw):
            break
        out.append(Record(kind.decode(), file, offset, raw[at + HEADER.size:at + HEADER.size + length]))
        at += HEADER.size + length
    return out


def _apply(content: bytearray | None, r: Record) -> bytearray | None:
    if r.kind == "U":
        return None
    content = bytearray() if content is None else content
    if r.kind == "T":
        del content[r.offset:]
    else:  # W
        if len(content) < r.offset:
            content.extend(bytes(r.offset - len(content)))
        content[r.offset:r.offset + len(r.data)] = r.data
    return content


@dataclass
class FileState:
    durable: bytearray | None
    pending: list[Record] = field(default_factory=list)  # written (or truncated) since the last sync


class Replay:
    """The files' durable state, record by record, from `start` (path -> bytes, or absent)."""

    def __init__(self, start: dict[str, bytes]) -> None:
        self.files: dict[str, FileState] = {p: FileState(bytearray(b)) for p, b in start.items()}
        self.names: dict[int, str] = {}
        self.printed = b""

    def feed(self, r: Record) -> None:
        if r.kind == "N":
            self.names[r.file] = r.data.decode()
            self.files.setdefault(self.names[r.file], FileState(None))
        elif r.kind == "O":
            self.printed += r.data
        elif r.kind == "S":
            state = self.files[self.names[r.file]]
            for w in state.pending:
                state.durable = _apply(state.durable, w)
            state.pending.clear()
        elif r.kind == "U":
            self.files[self.names[r.file]] = FileState(None)
        else:
            self.files[self.names[r.file]].pending.append(r)

    def in_flight(self, suffix: str = "") -> bool:
        """Whether some write (to a file whose name ends in `suffix`) is not yet durable: a cut now lands
        inside a transaction (a WAL write) or a checkpoint (a database write)."""
        return any(state.pending for path, state in self.files.items() if path.endswith(suffix))

    def image(self, rng: random.Random | None) -> dict[str, bytes | None]:
        """The files after a cut now: with no `rng`, none of the pending writes; else a random subset."""
        out: dict[str, bytes | None] = {}
        for path, state in self.files.items():
            content = None if state.durable is None else bytearray(state.durable)
            for w in state.pending:
                if rng is not None and rng.random() < 0.5:
                    content = _apply(content, w)
            out[path] = None if content is None else bytes(content)
        return out


def snapshot(folder: Path) -> dict[str, bytes]:
    """The SQLite files under `folder`, as the shim tracks them (the -shm is rebuilt on open: not kept)."""
    return {str(p): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name.endswith((".db", ".db-wal", ".db-journal"))}


def install(image: dict[str, bytes | None], into: Path | None = None, under: Path | None = None) -> None:
    """Write `image` to disk: in place, or re-rooted from `under` into `into`; -shm files are dropped."""
    for path, content in image.items():
        target = Path(path) if into is None or under is None else into / Path(path).relative_to(under)
        target.parent.mkdir(parents=True, exist_ok=True)
        Path(str(target).removesuffix("-wal").removesuffix("-journal") + "-shm").unlink(missing_ok=True)
        if content is None:
            target.unlink(missing_ok=True)
        else:
            target.write_bytes(content)
