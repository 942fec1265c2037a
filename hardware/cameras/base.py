"""The camera interface: a source of frames, closed when done."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import numpy as np

__all__ = ["Camera", "Frame"]


@dataclass(frozen=True, eq=False)
class Frame:
    """One thing a source saw.

    ``image`` is a 2-D uint8 grayscale array (C-contiguous) for image sources
    and None for text sources; ``texts`` is None for image sources and the
    texts a keyboard-wedge scanner already decoded for text sources, which
    skip the decoder.  ``ts`` is `time.monotonic()` seconds at capture.
    """

    image: np.ndarray | None
    ts: float
    texts: tuple[str, ...] | None = None


class Camera(abc.ABC):
    """A frame source.  Use as a context manager, or call `close` when done.

    `frames` yields frames until the source ends (a file replayed, a stream at
    EOF) and raises `CameraError` if the device fails, possibly after many
    frames.  A camera is iterated once; `close` is idempotent.
    """

    @abc.abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames as they arrive."""

    def close(self) -> None:  # noqa: B027 - a source with nothing to release need not override
        """Release the device.  The default has nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
