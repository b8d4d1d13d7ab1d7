"""ImageNet-1k class labels: index -> (WordNet id, human-readable label).

The table is ``nnlite/data/imagenet_class_index.json`` in Keras's format,
``{"284": ["n02123597", "Siamese_cat"], ...}``. Index order is the sorted WordNet ids, which is the
output order of every ImageNet-1k model nnlite bundles (torchvision, Keras, Caffe ports alike);
there is no background class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ModelError
from ..paths import data_dir


@dataclass(frozen=True)
class Labels:
    """Class names of a classifier, by output index."""
    wnids: tuple[str, ...]    # WordNet ids, e.g. "n02124075"
    names: tuple[str, ...]    # labels, e.g. "Egyptian_cat"

    def __len__(self) -> int:
        return len(self.names)

    def index_of(self, name_or_wnid: str) -> int:
        """Output index of a label or WordNet id (raises ModelError when unknown)."""
        for table in (self.names, self.wnids):
            if name_or_wnid in table:
                return table.index(name_or_wnid)
        raise ModelError(f"unknown class {name_or_wnid!r}: neither a label nor a WordNet id of these "
                         f"{len(self)} classes")


def read_class_index(path: str | Path) -> Labels:
    """Read a Keras-format class index JSON: keys "0".."N-1", values [wnid, label]."""
    path = Path(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read class index {path}: {exc}") from exc
    n = len(table)
    try:
        rows = [table[str(i)] for i in range(n)]
        wnids = tuple(str(r[0]) for r in rows)
        names = tuple(str(r[1]) for r in rows)
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelError(f"class index {path}: expected keys '0'..'{n - 1}' mapping to [wnid, label], "
                         f"found a malformed entry ({exc!r})") from exc
    return Labels(wnids, names)


@lru_cache(maxsize=1)
def imagenet_labels() -> Labels:
    """The 1000 ImageNet-1k classes bundled with nnlite."""
    return read_class_index(data_dir() / "imagenet_class_index.json")
