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

from typing import TYPE_CHECKING

import numpy as np

from ..errors import LibraryError

if TYPE_CHECKING:  # the index module brings in the models and Numba: `nnlite --help` reads DEFAULT_THRESHOLD
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


def people(library: LibraryIndex, *, threshold: float = DEFAULT_THRESHOLD, min_faces: int = 2,
           recognizer: str | None = None) -> list[dict]:
    """[{"count", "representative": face, "faces": [face, ...]}, ...], largest group first, where a face is
    {"face_id", "image_id", "path", "box"}. Only one recognizer's faces are clustered (descriptors of
    different recognizers cannot be compared; default: the one with most faces). The representative
    is the face nearest the group's mean descriptor: the most typical picture of that person."""
    if not threshold > 0:   # also NaN
        raise LibraryError(f"the people threshold must be > 0, got {threshold}")
    from .index import DEFAULT_RECOGNIZER
    if recognizer is None:   # the recognizer that described most faces (face-api.js's on a tie or none)
        counts = library.recognizers()
        recognizer = max(counts, key=lambda r: (counts[r], r == DEFAULT_RECOGNIZER)) if counts else DEFAULT_RECOGNIZER
    ids, descriptors = library.descriptors(recognizer=recognizer)
    groups = [g for g in cluster(descriptors, threshold) if len(g) >= min_faces]
    where = library.face_locations(ids[[row for g in groups for row in g]])
    result = []
    for group in groups:
        rows = descriptors[group]                                            # (n, D)
        central = group[int(np.argmin(np.linalg.norm(rows - rows.mean(axis=0), axis=1)))]
        faces = [{"face_id": int(ids[row]), "image_id": where[int(ids[row])][0], "path": where[int(ids[row])][1],
                  "box": where[int(ids[row])][2]} for row in group if int(ids[row]) in where]
        if not faces:
            continue   # its photos were re-indexed meanwhile
        representative = next((f for f in faces if f["face_id"] == int(ids[central])), faces[0])
        result.append({"count": len(faces), "representative": representative, "faces": faces})
    return result


def face_thumbnail(path: str, box, size: int = 160, margin: float = 0.25) -> bytes:
    """JPEG of one face with a margin (some hair and chin around the detector's tight box), fitted in
    size x size, in the same orientation as the indexed boxes (EXIF applied)."""
    import io

    from PIL import Image

    from ..image import load_image
    picture = Image.fromarray(load_image(path))
    x, y, w, h = box
    m = margin * max(w, h)
    picture = picture.crop((int(max(x - m, 0)), int(max(y - m, 0)),
                            int(min(x + w + m, picture.width)), int(min(y + h + m, picture.height))))
    picture.thumbnail((size, size))
    out = io.BytesIO()
    picture.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()
