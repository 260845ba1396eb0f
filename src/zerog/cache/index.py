"""Nearest neighbours over unit vectors: a binary prefilter, then exact cosine.

Measured on this 2-core machine (``zerog bench cache``, BENCHMARKS.md): numpy brute force
over 100k x 384 float32 vectors takes tens of milliseconds a query (it streams 150 MB);
an HNSW index (usearch) answered in a few ms but took minutes to build and missed true
neighbours of random vectors. So: each vector is also kept as 384 sign bits (48 bytes);
a query counts differing bits against all rows (4.8 MB at 100k), keeps the rows whose
Hamming distance is compatible with the similarity threshold (at most ``shortlist`` of
them, the closest), and ranks only those by exact cosine. A vector at cosine ``t`` from
the query differs in about ``acos(t) / pi`` of its bits, so the cut loses no neighbour
above the threshold except by a many-sigma fluke; the rerank makes the result exact.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]
    Bits = npt.NDArray[np.uint64]
    Ids = npt.NDArray[np.int64]

WORDS = 6  # 384 bits as 64-bit words


class VectorIndex:
    """Append, remove and search unit vectors (ids are the cache's plan ids)."""

    def __init__(self, dimensions: int = 384, *, shortlist: int = 64) -> None:
        import numpy as np

        self._np = np
        self.dimensions = dimensions
        self.shortlist = shortlist
        self._ids = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, dimensions), dtype=np.float32)
        self._bits = np.empty((dimensions // 64, 0), dtype=np.uint64)
        self._alive = np.empty(0, dtype=bool)
        self._pending: list[tuple[int, Vectors]] = []

    def __len__(self) -> int:
        self._flush()
        return int(self._alive.sum())

    def _pack(self, vectors: Vectors) -> Bits:
        np = self._np
        packed = np.packbits(vectors > 0, axis=1).view(np.uint64)
        result: Bits = np.ascontiguousarray(packed.T)
        return result

    def add(self, row_id: int, vector: Vectors) -> None:
        self._pending.append((row_id, vector))

    def add_many(self, ids: Ids, vectors: Vectors) -> None:
        np = self._np
        self._flush()
        self._ids = np.concatenate([self._ids, ids.astype(np.int64)])
        self._vectors = np.concatenate([self._vectors, vectors.astype(np.float32)])
        self._bits = np.concatenate([self._bits, self._pack(vectors)], axis=1)
        self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])

    def _flush(self) -> None:
        if self._pending:
            np = self._np
            pending, self._pending = self._pending, []
            ids = np.array([i for i, _ in pending], dtype=np.int64)
            self.add_many(ids, np.stack([v for _, v in pending]))

    def remove(self, row_id: int) -> None:
        self._flush()
        self._alive[self._ids == row_id] = False

    def search(self, query: Vectors, threshold: float, k: int = 5) -> list[tuple[int, float]]:
        """Up to ``k`` (id, cosine) pairs with cosine >= threshold, best first."""
        np = self._np
        self._flush()
        n = len(self._ids)
        if n == 0:
            return []
        bits = self._pack(query.reshape(1, -1))[:, 0]
        distance = np.zeros(n, dtype=np.uint16)
        word = np.empty(n, dtype=np.uint64)
        count = np.empty(n, dtype=np.uint8)
        for row, value in zip(self._bits, bits, strict=True):
            np.bitwise_xor(row, value, out=word)
            np.bitwise_count(word, out=count)
            np.add(distance, count, out=distance)
        angle = math.acos(max(min(threshold, 1.0), -1.0)) / math.pi
        expected = angle * self.dimensions
        cut = expected + 5 * math.sqrt(self.dimensions * angle * (1 - angle)) + 8
        rows = np.flatnonzero((distance <= cut) & self._alive)
        if len(rows) > self.shortlist:
            rows = rows[np.argpartition(distance[rows], self.shortlist)[: self.shortlist]]
        if len(rows) == 0:
            return []
        scores = self._vectors[rows] @ query.astype(np.float32)
        order = np.argsort(-scores)[:k]
        return [
            (int(self._ids[rows[i]]), float(scores[i])) for i in order if scores[i] >= threshold
        ]
