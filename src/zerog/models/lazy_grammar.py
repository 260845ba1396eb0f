"""Grammar-constrained greedy decoding that checks the grammar only where it matters.

llama-cpp-python applies a grammar to the whole vocabulary (151,936 tokens for Qwen2.5) at
every step: each token's text is matched against the grammar's stacks, a fixed cost per
step that made JSON decode at a third to a half of the free-text rate on the 0.5B model.
At temperature 0 the answer is the most likely token the grammar accepts, so most of that
work is wasted: the most likely token is usually acceptable.

:class:`LazyGrammar` is a logits processor that keeps its own grammar sampler and, at
each step, asks it about the most likely token alone; only when that token is rejected does
it ask about the next most likely ones (a few hundred), and about the whole vocabulary only
when none of those is accepted. The token it leaves standing is the one full masking
followed by greedy choice would pick (ties go to the lower token id, as llama.cpp's greedy
sampler does), so the output is the same, token for token. It is used for greedy requests
only; sampled requests keep llama.cpp's own grammar sampler, which must see every token's
probability.

The processor learns which tokens were chosen from the sequence it is shown at the next
step (llama-cpp-python evaluates each sampled token before sampling the next) and feeds
them to its grammar then.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

# How many of the most likely tokens are checked together after the first is rejected.
SHORTLIST = 256


@dataclass
class LazyStats:
    """What a lazy grammar did over one answer."""

    steps: int = 0
    first: int = 0  # steps where the most likely token was accepted
    shortlist: int = 0  # steps settled among the next most likely tokens
    full: int = 0  # steps that needed the whole vocabulary


class GrammarTemplate:
    """A grammar sampler in its start state, parsed once (about 0.5 ms for the plan's
    schema) and copied for each answer (a few microseconds)."""

    def __init__(self, llama: Llama, grammar: LlamaGrammar) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._sampler = llama_cpp.llama_sampler_init_grammar(
            llama._model.vocab,  # llama-cpp-python has no public way to the vocabulary
            grammar._grammar.encode("utf-8"),
            grammar._root.encode("utf-8"),
        )
        if not self._sampler:
            raise ValueError("llama.cpp could not build a sampler from the grammar")

    def copy(self) -> Any:
        """A new sampler in the start state; the caller frees it."""
        if not self._sampler:
            raise ValueError("the grammar template is closed")
        return self._lib.llama_sampler_clone(self._sampler)

    def close(self) -> None:
        if self._sampler:
            self._lib.llama_sampler_free(self._sampler)
            self._sampler = None

    def __del__(self) -> None:
        self.close()


class LazyGrammar:
    """A logits processor that enforces a grammar at temperature 0 (see the module doc).

    One instance serves one answer; :meth:`close` frees its grammar sampler."""

    def __init__(self, template: GrammarTemplate, shortlist: int = SHORTLIST) -> None:
        import llama_cpp

        if shortlist < 1:
            raise ValueError("the shortlist holds at least one token")
        self._shortlist = shortlist
        self._lib = llama_cpp
        self._sampler = template.copy()
        self._seen: int | None = None  # length of the sequence already fed to the grammar
        self.stats = LazyStats()

    def close(self) -> None:
        if self._sampler:
            self._lib.llama_sampler_free(self._sampler)
            self._sampler = None

    def _feed(self, input_ids: npt.NDArray[np.intc]) -> None:
        """Feed the grammar the tokens chosen since the last step."""
        if self._seen is None:
            self._seen = len(input_ids)  # the prompt: not the grammar's business
            return
        for token in input_ids[self._seen :]:
            self._lib.llama_sampler_accept(self._sampler, int(token))
        self._seen = len(input_ids)

    def _accepted(
        self, tokens: npt.NDArray[np.signedinteger[Any]], logits: npt.NDArray[np.single]
    ) -> int:
        """The index in ``tokens`` of the first token the grammar accepts, or -1."""
        lib = self._lib
        size = len(tokens)
        data = (lib.llama_token_data * size)()
        for i in range(size):
            data[i].id = int(tokens[i])
            data[i].logit = float(logits[i])
            data[i].p = 0.0
        array = lib.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
        lib.llama_sampler_apply(self._sampler, ctypes.byref(array))
        for i in range(size):
            if data[i].logit != float("-inf"):
                return i
        return -1

    def _accepted_all(self, scores: npt.NDArray[np.single]) -> npt.NDArray[np.bool_]:
        """Which tokens of the whole vocabulary the grammar accepts."""
        import numpy as np

        lib = self._lib
        size = len(scores)
        data = (lib.llama_token_data * size)()
        view = np.frombuffer(
            data, dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)])
        )
        view["id"] = np.arange(size, dtype=np.intc)
        view["logit"] = scores
        array = lib.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
        lib.llama_sampler_apply(self._sampler, ctypes.byref(array))
        return np.asarray(view["logit"] != -np.inf)

    def __call__(
        self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]
    ) -> npt.NDArray[np.single]:
        import numpy as np

        self._feed(input_ids)
        self.stats.steps += 1
        top = int(np.argmax(scores))
        if self._accepted(np.array([top], dtype=np.intc), scores[top : top + 1]) == 0:
            self.stats.first += 1
            return scores  # greedy choice picks ``top``, as after full masking
        count = min(self._shortlist, len(scores))
        near = np.argpartition(-scores, count - 1)[:count]
        # Most likely first, lower id first among equals: greedy's order.
        near = np.asarray(near[np.lexsort((near, -scores[near]))], dtype=np.intc)
        found = self._accepted(near, scores[near])
        chosen = np.full_like(scores, -np.inf)
        if found >= 0 and _shortlist_holds(scores, near, found):
            self.stats.shortlist += 1
            token = int(near[found])
            chosen[token] = scores[token]
            return chosen
        self.stats.full += 1
        allowed = self._accepted_all(scores)
        return np.where(allowed, scores, chosen)


def _shortlist_holds(
    scores: npt.NDArray[np.single], near: npt.NDArray[np.signedinteger[Any]], found: int
) -> bool:
    """Whether the token found in the shortlist is greedy's pick over the whole
    vocabulary: no token outside the shortlist ties with it (a tie with a lower id
    outside would be the pick)."""
    import numpy as np

    value = scores[near[found]]
    if len(near) == len(scores) or scores[near[-1]] < value:
        return True  # every token outside scores at most the last entry's, below ``value``
    outside = np.ones(len(scores), dtype=bool)
    outside[near] = False
    return not bool(np.any(scores[outside] >= value))
