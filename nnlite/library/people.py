"""Group the library's faces into people: Chinese whispers on the "same person" graph.

Two faces are linked when their descriptor distance is below ``threshold`` (face-api.js calls two
faces the same person below 0.6). Plain connected components would chain look-alikes into one
giant group through a few borderline links; Chinese whispers (Biemann, 2006; the method dlib uses
for face clustering) instead lets each face repeatedly adopt the label that weighs most among its
neighbours, so densely linked groups win and a stray link does not merge two people. Edges weigh
``1 - d / threshold`` (closer faces pull harder). Visiting order is shuffled with a fixed seed, so
results are reproducible.

Cost: building the graph compares every pair, in row blocks (O(N^2) time, O(block * N) memory).
"""

from __future__ import annotations

import numpy as np

from ..errors import LibraryError
from .index import LibraryIndex

DEFAULT_THRESHOLD = 0.5


def neighbour_graph(descriptors: np.ndarray, threshold: float, block: int = 1024) -> list[list[tuple[int, float]]]:
    """For each face, [(other face, weight)] over the pairs closer than ``threshold``."""
    x = np.asarray(descriptors, np.float32)           # (N, 128)
    sq = np.einsum("ij,ij->i", x, x)                  # (N,)
    graph: list[list[tuple[int, float]]] = [[] for _ in range(len(x))]
    for start in range(0, len(x), block):
        rows = x[start:start + block]
        d2 = sq[start:start + block, None] - 2.0 * rows @ x.T + sq[None, :]   # (b, N)
        d = np.sqrt(np.maximum(d2, 0.0))
        for i, j in zip(*np.nonzero(d < threshold)):
            a = start + int(i)
            if a != j:
                graph[a].append((int(j), float(1.0 - d[i, j] / threshold)))
    return graph


def chinese_whispers(graph: list[list[tuple[int, float]]], iterations: int = 30, seed: int = 0) -> np.ndarray:
    """Cluster label per node (labels are node numbers; isolated nodes keep their own)."""
    labels = np.arange(len(graph))
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = False
        for node in rng.permutation(len(graph)):
            if not graph[node]:
                continue
            weight: dict[int, float] = {}
            for other, w in graph[node]:
                weight[labels[other]] = weight.get(labels[other], 0.0) + w
            best = min(weight, key=lambda lab: (-weight[lab], lab))   # heaviest, then smallest label
            if best != labels[node]:
                labels[node] = best
                changed = True
        if not changed:
            break
    return labels


def cluster(descriptors: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> list[list[int]]:
    """Row numbers grouped by person, largest group first (ties: earliest row first)."""
    if threshold <= 0:
        raise LibraryError(f"the people threshold must be > 0, got {threshold}")
    labels = chinese_whispers(neighbour_graph(descriptors, threshold))
    groups: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        groups.setdefault(int(label), []).append(row)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def people(library: LibraryIndex, *, threshold: float = DEFAULT_THRESHOLD, min_faces: int = 2) -> list[dict]:
    """[{"faces": [{"face_id", "image_id", "path", "box"}, ...]}, ...], largest group first."""
    ids, descriptors = library.descriptors()
    groups = [g for g in cluster(descriptors, threshold) if len(g) >= min_faces]
    where = library.face_locations(ids[[row for g in groups for row in g]])
    result = []
    for group in groups:
        faces = [int(ids[row]) for row in group]
        result.append({"faces": [{"face_id": f, "image_id": where[f][0], "path": where[f][1], "box": where[f][2]}
                                 for f in faces if f in where]})
    return result
