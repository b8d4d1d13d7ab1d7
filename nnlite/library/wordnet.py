"""Offline WordNet 3.0 hypernyms of the 1000 ImageNet classes, for keyword search.

ImageNet ids are WordNet 3.0 noun offsets ("n02123045" is synset 02123045, {tabby, tabby_cat}),
so "which classes does the word *cat* cover" is: the classes with a synset named "cat" among
themselves or their ancestors. The hierarchy lives in ``nnlite/data/wordnet_imagenet.json``,
built from WordNet's own database by ``tools/build_wordnet_hypernyms.py`` (licence alongside).

Matching rule of :func:`classes_matching`, in tiers (the first tier that finds something wins):
  1. the query is a lemma of the class or of any ancestor ("cat" -> tabby, Siamese_cat, lion, ...;
     "dog" -> every breed, but not hotdog, whose ancestors are foods);
  2. every query word is a word of one of the class's own lemmas ("siamese" -> Siamese_cat);
  3. the query is a substring of one of the class's own lemmas ("retriev" -> the retrievers).
Comparison ignores case, and spaces/hyphens count as underscores ("golden retriever").
"""

from __future__ import annotations

import json
import re
from functools import cached_property, lru_cache

from ..errors import LibraryError
from ..paths import data_dir

DATA_FILE = "wordnet_imagenet.json"


def normalize(text: str) -> str:
    """Lower case, runs of spaces/hyphens/underscores -> one underscore: "Golden Retriever" -> "golden_retriever"."""
    return re.sub(r"[\s\-_]+", "_", text.strip().lower()).strip("_")


class WordNet:
    """The WordNet noun hierarchy above a set of ImageNet classes."""

    def __init__(self, classes: list[str], synsets: dict[str, list]):
        self.classes = list(classes)                                   # wnids, "n02123045"
        self._lemmas = {k: [normalize(w) for w in v[0]] for k, v in synsets.items()}
        self._parents = {k: list(v[1]) for k, v in synsets.items()}

    def lemmas(self, wnid: str) -> list[str]:
        """The class's own lemmas, normalized: ["tabby", "tabby_cat"]."""
        return self._lemmas.get(wnid[1:], [])

    def ancestors(self, wnid: str) -> list[str]:
        """Offsets of the class and all its hypernyms (several paths may lead up)."""
        seen: list[str] = []
        stack = [wnid[1:]]
        while stack:
            offset = stack.pop()
            if offset in seen:
                continue
            seen.append(offset)
            stack.extend(self._parents.get(offset, []))
        return seen

    def ancestor_lemmas(self, wnid: str) -> set[str]:
        return {lemma for offset in self.ancestors(wnid) for lemma in self._lemmas.get(offset, [])}

    def classes_matching(self, query: str) -> list[str]:
        """wnids of the classes the query names (see the module docstring for the tiers)."""
        q = normalize(query)
        if not q:
            return []
        if re.fullmatch(r"n\d{8}", q):
            return [q] if q in self.classes else []
        exact = [w for w in self.classes if q in self._class_ancestor_lemmas[w]]
        if exact:
            return exact
        words = set(q.split("_"))
        by_word = [w for w in self.classes if any(words <= set(l.split("_")) for l in self.lemmas(w))]
        if by_word:
            return by_word
        return [w for w in self.classes if any(q in l for l in self.lemmas(w))]

    @cached_property
    def _class_ancestor_lemmas(self) -> dict[str, frozenset[str]]:
        """Every class's ancestor lemmas, built once per instance on the first query."""
        return {w: frozenset(self.ancestor_lemmas(w)) for w in self.classes}


@lru_cache(maxsize=1)
def imagenet_wordnet() -> WordNet:
    """The bundled hierarchy (1000 classes, about 1900 synsets)."""
    path = data_dir() / DATA_FILE
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        return WordNet(table["classes"], table["synsets"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LibraryError(f"cannot read the WordNet table {path}: {exc} "
                           f"(rebuild it with tools/build_wordnet_hypernyms.py)") from exc
