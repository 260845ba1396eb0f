"""Token confidence summed up over an answer's code (models/confidence.py)."""

from __future__ import annotations

import math

import pytest

from zerog.models.confidence import LOW, code_span, measure


def test_only_the_longest_code_block_is_scored() -> None:
    pieces = [b"Sure", b"!\n```python\n", b"x", b" = ", b"1", b"\n```", b"\nDone", b"."]
    probs = [0.1, 0.9, 0.4, 0.99, 0.8, 0.95, 0.2, 0.3]
    confidence = measure(pieces, probs)
    assert confidence is not None
    assert confidence.tokens == 3  # "x", " = ", "1": the fences and the prose do not count
    assert confidence.low_tokens == 1
    assert confidence.min_prob == pytest.approx(0.4)
    assert confidence.score == pytest.approx((0.4 * 0.99 * 0.8) ** (1 / 3), rel=1e-5)


def test_an_answer_without_a_block_is_scored_whole() -> None:
    confidence = measure([b"a", b"b", b""], [0.5, 0.25, 0.01])
    assert confidence is not None
    assert confidence.tokens == 2  # an empty piece (end of text) is not a token of the text
    assert confidence.low_tokens == 1  # 0.25; 0.5 is not below LOW
    assert LOW == 0.5
    assert confidence.mean_logprob == pytest.approx((math.log(0.5) + math.log(0.25)) / 2)


def test_edge_cases() -> None:
    assert measure([], []) is None
    assert measure([b"```\n", b"```"], [1.0, 1.0]) is None  # an empty block: nothing scored
    with pytest.raises(ValueError, match="one probability per token"):
        measure([b"a"], [])
    text = b"```py\nlong block\n```\n```\nx\n```"
    start, end = code_span(text)
    assert text[start:end] == b"long block"
    unclosed = b"```python\ndef f(): pass"
    start, end = code_span(unclosed)
    assert unclosed[start:end] == b"def f(): pass"
    assert measure([b"z"], [0.0]) is not None  # a zero probability does not crash the log
