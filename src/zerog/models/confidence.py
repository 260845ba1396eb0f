"""How sure a model was of its answer, from the probabilities of the tokens it chose.

A local model can report, for every token of a greedy answer, the probability it gave
that token. Most tokens of a code answer are near-certain (syntax, names copied from the
prompt); the few it hesitated over are where answers go wrong. :func:`measure` sums them
up as a :class:`Confidence`. When the answer holds a fenced code block, only the tokens
inside its longest block count: the prose around code is always uncertain and says
nothing about the code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from zerog.types import Frozen

LOW = 0.5  # a token chosen with less probability than this is a "hesitation"
_FENCE = re.compile(rb"```[^\n]*\n(.*?)(?:\n?```|\Z)", re.DOTALL)


class Confidence(Frozen):
    """The token probabilities of one answer, summed up."""

    tokens: int  # tokens scored
    mean_logprob: float  # mean natural-log probability of the chosen tokens
    min_prob: float  # the least likely chosen token
    low_tokens: int  # tokens chosen with probability below LOW

    @property
    def score(self) -> float:
        """One number in [0, 1]: the geometric mean of the chosen tokens' probability."""
        return math.exp(self.mean_logprob)


def code_span(text: bytes) -> tuple[int, int]:
    """The byte range of the longest fenced block of ``text``; all of it without one."""
    blocks = [m.span(1) for m in _FENCE.finditer(text)]
    if not blocks:
        return 0, len(text)
    return max(blocks, key=lambda span: span[1] - span[0])


def measure(pieces: Sequence[bytes], probs: Sequence[float]) -> Confidence | None:
    """The confidence of an answer made of token ``pieces`` chosen with ``probs``."""
    if len(pieces) != len(probs):
        raise ValueError("one probability per token piece")
    start, end = code_span(b"".join(pieces))
    chosen: list[float] = []
    offset = 0
    for piece, prob in zip(pieces, probs, strict=True):
        if piece and start <= offset < end:
            chosen.append(min(max(prob, 1e-12), 1.0))
        offset += len(piece)
    if not chosen:
        return None
    return Confidence(
        tokens=len(chosen),
        mean_logprob=round(sum(math.log(p) for p in chosen) / len(chosen), 6),
        min_prob=round(min(chosen), 6),
        low_tokens=sum(p < LOW for p in chosen),
    )
