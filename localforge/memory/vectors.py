"""The hnswlib index over routed requests' embeddings; its labels are `routes.id` row ids.

The index is a cache of what sqlite holds: it is saved next to the database with a small sidecar
(how many vectors, the largest label, the dimensions) and rebuilt from sqlite at start-up when the
file is missing, unreadable or disagrees with the table.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import hnswlib
import numpy as np

log = logging.getLogger(__name__)


class VectorIndex:
    def __init__(self, dimensions: int, capacity: int = 1024) -> None:
        self.dimensions = dimensions
        self._index = self._empty(max(capacity, 16))
        self._lock = threading.Lock()  # hnswlib's add and resize are not safe alongside a query
        self.max_label = -1

    def _empty(self, capacity: int) -> hnswlib.Index:
        index = hnswlib.Index(space="ip", dim=self.dimensions)
        index.init_index(max_elements=capacity, ef_construction=100, M=16, random_seed=7)
        index.set_ef(64)
        return index

    def __len__(self) -> int:
        return int(self._index.get_current_count())

    def add(self, label: int, vector: np.ndarray) -> None:
        with self._lock:
            if len(self) >= self._index.get_max_elements():
                self._index.resize_index(2 * self._index.get_max_elements())
            self._index.add_items(vector.reshape(1, -1).astype(np.float32), np.array([label]))
            self.max_label = max(self.max_label, label)

    def search(self, vector: np.ndarray, k: int, keep: Callable[[int], bool] | None = None,
               count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels, cosine similarities) of the k nearest stored vectors, nearest first; with
        `keep`, of those whose label it keeps (`count` of them)."""
        count = len(self) if count is None else min(count, len(self))
        k = min(k, count)
        query = vector.reshape(1, -1).astype(np.float32)
        while k > 0:
            try:
                with self._lock:
                    labels, distances = self._index.knn_query(query, k=k, filter=keep)
                return labels[0].astype(np.int64), 1.0 - distances[0]
            except RuntimeError:  # a filtered search the graph walk found fewer than k for
                k //= 2
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)

    def rebuild(self, rows: Iterable[tuple[int, np.ndarray]], count: int) -> None:
        with self._lock:
            self._index = self._empty(max(2 * count, 1024))
            self.max_label = -1
            for label, vector in rows:
                self._index.add_items(vector.reshape(1, -1).astype(np.float32), np.array([label]))
                self.max_label = max(self.max_label, label)

    def save(self, path: Path) -> None:
        with self._lock:
            self._index.save_index(str(path))
            sidecar = {"count": len(self), "max_label": self.max_label, "dimensions": self.dimensions}
        path.with_suffix(".json").write_text(json.dumps(sidecar))

    def load(self, path: Path, count: int, max_label: int) -> bool:
        """Read a saved index; False when it is missing or does not match the table."""
        sidecar = path.with_suffix(".json")
        try:
            meta = json.loads(sidecar.read_text())
            if (meta.get("count"), meta.get("max_label"), meta.get("dimensions")) != (
                    count, max_label, self.dimensions):
                return False
            index = hnswlib.Index(space="ip", dim=self.dimensions)
            index.load_index(str(path), max_elements=max(2 * count, 1024))
        except (OSError, ValueError, RuntimeError) as exc:
            log.info("vector index at %s not usable (%s); rebuilding", path, exc)
            return False
        if index.get_current_count() != count:
            return False
        index.set_ef(64)
        with self._lock:
            self._index, self.max_label = index, max_label
        return True
