"""The owner's side of a back-step chain (gate/backstep.py): any value v_k, from checkpoints kept along it."""

from __future__ import annotations

from dataclasses import dataclass, field

from gate.backstep import MAX_N, SIZE, forward
from gate.ownership.exc import ChainExhausted


@dataclass
class Ladder:
    """The owner's side of a chain: v_k for any k from checkpoints kept every `every` positions."""

    seed: bytes
    salt: bytes
    n: int
    every: int = 256
    _marks: list[bytes] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.n <= MAX_N:
            raise ValueError(f"chain length {self.n} is outside 1..{MAX_N}")
        if len(self.seed) != SIZE or len(self.salt) != SIZE:
            raise ValueError(f"seed and salt must be {SIZE} bytes")

    def _checkpoints(self) -> list[bytes]:
        if not self._marks:
            x, marks = self.seed, [self.seed]
            for start in range(0, self.n - self.every + 1, self.every):
                x = forward(x, self.salt, start, self.every)
                marks.append(x)
            self._marks = marks
        return self._marks

    @property
    def anchor(self) -> bytes:
        return self.value(0)

    def value(self, k: int) -> bytes:
        """v_k = x_{N-k}; ChainExhausted past N."""
        if k > self.n:
            raise ChainExhausted(f"back-step value {k} asked of a chain of {self.n}")
        if k < 0:
            raise ValueError(f"back-step index {k} is negative")
        pos = self.n - k
        mark = pos // self.every
        return forward(self._checkpoints()[mark], self.salt, mark * self.every, pos - mark * self.every)
