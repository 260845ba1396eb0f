"""The embedded default: a GGUF model run in-process by llama-cpp-python.

Structured output is JSON-schema-constrained decoding: the request's schema becomes a
llama.cpp grammar (compiled once per schema), so the model can only write a JSON object
of the requested shape. Generation is greedy at temperature 0 and seeded otherwise, on a
fixed number of threads, so a run is repeatable on the same machine.

Every answer is streamed through a :class:`~zerog.models.degenerate.LoopGuard`: an answer
that starts repeating itself is stopped there (closing the stream stops llama.cpp's
decoding), cut where the loop began, and ends with ``finish="degenerate"`` instead of
running to ``max_tokens``. A stream carries no usage, so a logits processor that changes
nothing counts the prompt's tokens and the sampled ones.

One ``Llama`` object serves every call of a model, so llama-cpp-python keeps the tokens it
evaluated last and re-evaluates only what follows the longest common prefix with the next
prompt (the system prompt and stable context of an iteration's calls). The reused tokens
are reported as the response's ``usage.cached_tokens``: ``input_tokens - cached_tokens``
were evaluated.

``llama_cpp`` is imported when a model is built, never when zerog is imported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from zerog.errors import ConfigError, ModelError
from zerog.models.base import Finish, Request, Response, estimate_tokens
from zerog.models.confidence import Confidence, measure
from zerog.models.degenerate import DEGENERATE, LOOPS, LoopGuard, LoopRule, trim_loop
from zerog.models.lazy_grammar import GrammarTemplate, LazyGrammar
from zerog.models.schema import SchemaMemo, decoding_schema
from zerog.types import Usage

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from llama_cpp import Llama, LogitsProcessorList
    from llama_cpp.llama_grammar import LlamaGrammar

INSTALL_HINT = "pip install 'zerog[local]'"
# llama.cpp's JSON grammar lets a string hold raw control characters (a literal newline),
# which strict JSON parsers reject. Escapes such as \n stay allowed.
_LOOSE_CHAR = '[^"\\\\]'
_STRICT_CHAR = '[^"\\\\\\x7F\\x00-\\x1F]'


def json_grammar_text(schema: Mapping[str, object]) -> str:
    """The llama.cpp grammar (GBNF) text that admits only JSON objects of ``schema``."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    text = str(json_schema_to_gbnf(json.dumps(decoding_schema(schema))))
    return text.replace(f"char ::= {_LOOSE_CHAR}", f"char ::= {_STRICT_CHAR}")


def _compile(schema: Mapping[str, object]) -> LlamaGrammar:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(json_grammar_text(schema), verbose=False)


class _Probe:
    """A logits processor that changes nothing and notes, at each step of a greedy answer,
    the token chosen (the most likely one) and its probability."""

    def __init__(self) -> None:
        self.chosen: list[int] = []
        self.probs: list[float] = []

    def __call__(
        self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]
    ) -> npt.NDArray[np.single]:
        import numpy as np

        top = int(np.argmax(scores))
        # softmax of the top logit, computed stably: 1 / sum(exp(l - max))
        self.probs.append(float(1.0 / np.exp(scores - scores[top]).sum()))
        self.chosen.append(top)
        return scores

    def confidence(self, llama: Llama) -> Confidence | None:
        pieces = [llama.detokenize([token]) for token in self.chosen]
        return measure(pieces, self.probs)


class _Tally:
    """A logits processor that changes nothing and notes the prompt's tokens (what it sees
    at the first step) and how many steps were sampled: a stream carries no usage."""

    def __init__(self) -> None:
        self.prompt: npt.NDArray[np.intc] | None = None
        self.steps = 0

    def __call__(
        self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]
    ) -> npt.NDArray[np.single]:
        if self.prompt is None:
            self.prompt = input_ids.copy()
        self.steps += 1
        return scores


def _processors(
    tally: _Tally, probe: _Probe | None, lazy: LazyGrammar | None
) -> LogitsProcessorList:
    from llama_cpp import LogitsProcessorList

    chain: LogitsProcessorList = LogitsProcessorList([tally])
    chain.extend(x for x in (probe, lazy) if x is not None)
    return chain


def _common_prefix(a: npt.NDArray[np.intc], b: npt.NDArray[np.intc]) -> int:
    size = min(len(a), len(b))
    differ = (a[:size] != b[:size]).nonzero()[0]
    return int(differ[0]) if len(differ) else size


class LlamaCppModel:
    """A local GGUF model. Not thread-safe: one engine drives it at a time."""

    def __init__(
        self,
        path: Path,
        *,
        name: str = "local",
        n_ctx: int = 8192,
        n_threads: int = 2,
        seed: int = 0,
        loop_rule: LoopRule | None = LOOPS,
        lazy_grammar: bool = True,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ConfigError(
                f"the local model backend needs llama-cpp-python; install it with: {INSTALL_HINT}"
            ) from None
        if not path.is_file():
            raise ConfigError(f"model file {path} does not exist")
        self._name = name
        self._seed = seed
        self._n_ctx = n_ctx
        self._loop_rule = loop_rule  # None: no degenerate-output guard
        # False: llama.cpp's grammar over the whole vocabulary at every step (the baseline
        # of `zerog bench models`); greedy constrained answers are the same either way.
        self.lazy_grammar = lazy_grammar
        self._grammars: SchemaMemo[LlamaGrammar] = SchemaMemo(_compile)
        self._templates: SchemaMemo[GrammarTemplate] = SchemaMemo(
            lambda schema: GrammarTemplate(self._llama, self.grammar(schema))
        )
        try:
            self._llama: Llama = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                seed=seed,
                verbose=False,
            )
        except ValueError as exc:
            raise ConfigError(f"cannot load {path} as a GGUF model: {exc}") from None

    @property
    def name(self) -> str:
        return self._name

    @property
    def llama(self) -> Llama:
        """The underlying llama-cpp-python object (for benchmarks against the raw call)."""
        return self._llama

    def grammar(self, schema: Mapping[str, object]) -> LlamaGrammar:
        """The compiled grammar of ``schema``, built once per schema."""
        return self._grammars(schema)

    def complete(self, request: Request) -> Response:
        grammar = self.grammar(request.json_schema) if request.json_schema is not None else None
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        # Token probabilities are only the chosen tokens' when decoding is greedy and free.
        wanted = request.confidence and grammar is None and request.temperature == 0.0
        probe = _Probe() if wanted else None
        llama = self._llama
        # Greedy and constrained: check the grammar only where the greedy pick needs it
        # (same tokens, a fraction of the work; see models/lazy_grammar.py).
        lazy = None
        schema = request.json_schema
        if schema is not None and self.lazy_grammar and request.temperature == 0.0:
            lazy = LazyGrammar(self._templates(schema))
        before = llama.input_ids[: llama.n_tokens].copy()  # the tokens llama.cpp holds
        tally = _Tally()
        guard = LoopGuard(self._loop_rule) if self._loop_rule is not None else None
        pieces: list[str] = []
        finish: Finish = "stop"
        stream: object = None
        try:
            # Streamed so that a looping answer can be stopped where it starts looping;
            # closing the generator stops llama.cpp's decoding.
            stream = llama.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                seed=self._seed if request.seed is None else request.seed,
                grammar=None if lazy is not None else grammar,
                logits_processor=_processors(tally, probe, lazy),
                stream=True,
            )
            if isinstance(stream, dict):
                raise ModelError("the local model answered at once where a stream was expected")
            for chunk in stream:
                choice = chunk["choices"][0]
                piece = str(choice["delta"].get("content") or "")
                pieces.append(piece)
                if choice.get("finish_reason") == "length":
                    finish = "length"
                if guard is not None and guard.feed(piece):
                    finish = DEGENERATE
                    break
        except ValueError as exc:
            # llama-cpp-python signals a prompt longer than the context window this way.
            raise ModelError(
                f"the local model cannot take this prompt: {exc} (n_ctx={self._n_ctx}; raise "
                "it in the [local] section of the config file)"
            ) from None
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            if lazy is not None:
                lazy.close()
        text = "".join(pieces)
        if finish == DEGENERATE:
            text, _ = trim_loop(text, self._loop_rule or LOOPS)
        prompt = tally.prompt
        if prompt is not None:
            # The last step samples the end-of-answer token, which is not part of it.
            generated = tally.steps - 1 if finish == "stop" else tally.steps
            counted = Usage(
                input_tokens=len(prompt),
                output_tokens=max(generated, 0),
                cached_tokens=_reused(before, prompt),
            )
        else:
            counted = Usage(
                input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
                output_tokens=estimate_tokens(text),
            )
        confidence = probe.confidence(self._llama) if probe is not None else None
        return Response(
            text=text,
            usage=counted,
            cost=0.0,
            model=self._name,
            confidence=confidence,
            finish=finish,
        )


def _reused(cached: npt.NDArray[np.intc], prompt: npt.NDArray[np.intc]) -> int:
    """How many of ``prompt``'s tokens llama-cpp-python took from the tokens it held
    (``cached``) instead of evaluating them: the common prefix, less the last token when
    the whole prompt matched (it is evaluated again to refresh the logits)."""
    shared = _common_prefix(cached, prompt)
    return shared - 1 if shared and shared == len(prompt) else shared
