"""A decoder for tests and the demo that reads what it is told to."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["FakeDecoder"]

Script = Mapping[int, str | Sequence[str]] | Callable[[np.ndarray | None], Sequence[str]]


class FakeDecoder:
    """Returns scripted texts instead of looking at the frame.

    ``script`` is either a mapping from the call index (0 for the first frame
    decoded, 1 for the next, ...) to a text or texts, with calls not in it
    reading nothing, or a callable from the frame to texts.  Every frame passed
    in is kept in ``frames`` so a test can check what the caller decoded.
    """

    def __init__(self, script: Script | None = None) -> None:
        self._script: Script = script if script is not None else {}
        self.frames: list[np.ndarray | None] = []

    def decode(self, image: np.ndarray | None) -> list[str]:
        index = len(self.frames)
        self.frames.append(image)
        if callable(self._script):
            texts: str | Sequence[str] = self._script(image)
        else:
            texts = self._script.get(index, ())
        if isinstance(texts, str):
            return [texts]
        return list(dict.fromkeys(texts))
