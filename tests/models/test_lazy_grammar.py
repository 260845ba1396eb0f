"""The lazy grammar check: greedy constrained answers token for token the same as
llama.cpp's grammar over the whole vocabulary, on the real embedded model."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from llama_cpp import LogitsProcessorList

from zerog.models.base import Message, Request
from zerog.models.lazy_grammar import GrammarTemplate, LazyGrammar, _shortlist_holds
from zerog.models.llamacpp import LlamaCppModel
from zerog.structured import schema_of
from zerog.types import Plan

COUNT: Mapping[str, object] = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
    },
    "required": ["count", "colour"],
}
# A prompt that pulls the model away from the grammar: its first choices are prose.
OFF_GRAMMAR = (Message(role="user", content="Tell me a short story about a cat."),)
PLANNING = (
    Message(role="system", content="You are a planner. Reply with one JSON object."),
    Message(role="user", content="Plan two steps: write fib.py with fib(n), then test it."),
)


def _answer(
    model: LlamaCppModel,
    messages: tuple[Message, ...],
    schema: Mapping[str, object],
    lazy: LazyGrammar | None,
    max_tokens: int,
) -> str:
    llama = model.llama
    stream = llama.create_chat_completion(
        messages=[{"role": m.role, "content": m.content} for m in messages],  # type: ignore[misc]
        max_tokens=max_tokens,
        temperature=0.0,
        grammar=None if lazy is not None else model.grammar(schema),
        logits_processor=LogitsProcessorList([lazy]) if lazy is not None else None,
    )
    assert isinstance(stream, dict)
    return str(stream["choices"][0]["message"]["content"])


@pytest.mark.parametrize("shortlist", [256, 1])
def test_the_lazy_check_writes_what_the_full_grammar_writes(
    local_model: LlamaCppModel, shortlist: int
) -> None:
    full = _answer(local_model, OFF_GRAMMAR, COUNT, None, 40)
    template = GrammarTemplate(local_model.llama, local_model.grammar(COUNT))
    lazy = LazyGrammar(template, shortlist=shortlist)
    try:
        answer = _answer(local_model, OFF_GRAMMAR, COUNT, lazy, 40)
    finally:
        lazy.close()
    assert answer == full
    assert answer.startswith("{")
    stats = lazy.stats
    assert stats.steps == stats.first + stats.shortlist + stats.full
    assert stats.first > 0
    # The story prompt's first choice is prose: the grammar had to overrule it.
    if shortlist == 1:
        assert stats.full > 0
        assert stats.shortlist == 0
    else:
        assert stats.shortlist + stats.full > 0


def test_the_adapter_gives_the_same_plan_both_ways(local_model: LlamaCppModel) -> None:
    request = Request(messages=PLANNING, json_schema=schema_of(Plan), max_tokens=120)
    try:
        local_model.lazy_grammar = False
        full = local_model.complete(request)
    finally:
        local_model.lazy_grammar = True
    lazy = local_model.complete(request)
    assert lazy.text == full.text
    assert lazy.usage.output_tokens == full.usage.output_tokens
    assert lazy.finish == full.finish


def test_a_tie_outside_the_shortlist_is_noticed() -> None:
    scores = np.array([4.0, 1.0, 5.0, 4.0], dtype=np.single)
    # The two most likely: token 2, then one of the tied tokens 0 and 3 (the partition
    # may keep either); here it kept 3.
    near = np.array([2, 3], dtype=np.intc)
    # Token 2 accepted: it beats everything outside.
    assert _shortlist_holds(scores, near, 0)
    # Token 2 rejected, token 3 accepted: token 0, outside, ties with it and has the lower
    # id, so it would be greedy's pick if accepted: the whole vocabulary must decide.
    assert not _shortlist_holds(scores, near, 1)
    # The whole vocabulary in the shortlist: nothing outside to tie with.
    assert _shortlist_holds(scores, np.array([2, 0, 3, 1], dtype=np.intc), 2)
