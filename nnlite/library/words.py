"""Keyword search in the words people type: ImageNet labels (through WordNet) and what the faces say.

ImageNet has no class for a person, so "person", "woman" or "child" would find nothing from labels
alone, while the index knows every face with its gender, age and expression. A query is split into
*terms*; every term must match (AND). The face vocabulary (:data:`FACE_WORDS`, singular and plural
forms) is checked first, so a word in it never falls through to ImageNet's substring tier
("man" is not German_shepherd):

  ========================================  ===============================================
  person, people, face, portrait            at least one face
  man, woman                                a face with that gender, probability >= 0.8
  child, kid, baby                          a face with estimated age < 13
  group                                     at least 3 faces
  happy, smiling, sad, angry, surprised     a face whose most probable expression is that one
  ========================================  ===============================================

The remaining words are matched as ImageNet labels (:meth:`.wordnet.WordNet.classes_matching`): first
all together as one phrase ("golden retriever"), else each word as its own term ("dog cat" = both).

Scores: a label term scores the image's best matching label probability; a face term scores the
confidence of its best matching face (detection score; times the gender probability for man/woman;
times the expression probability for expressions; group: the third best detection score). An image's
score is the geometric mean of its term scores, so it stays in 0..1 and an image that matches every
term well ranks above one that matches one term very well and another barely. Each result says which
terms matched and how (``matched``).
"""

from __future__ import annotations

import json
import math
import re

from .index import LibraryIndex
from .wordnet import imagenet_wordnet, normalize

GENDER_MIN_PROBABILITY = 0.8
CHILD_MAX_AGE = 13.0
GROUP_MIN_FACES = 3
EXPRESSIONS = ("happy", "sad", "angry", "surprised")

# word -> (rule name, explanation)
FACE_WORDS: dict[str, tuple[str, str]] = {}
for _words, _rule, _why in (
        (("person", "persons", "people", "face", "faces", "portrait", "portraits", "human", "humans"),
         "face", "at least one face"),
        (("man", "men", "male"), "male", f"a face estimated male with probability >= {GENDER_MIN_PROBABILITY}"),
        (("woman", "women", "female"), "female",
         f"a face estimated female with probability >= {GENDER_MIN_PROBABILITY}"),
        (("child", "children", "kid", "kids", "baby", "babies"), "child",
         f"a face with estimated age < {CHILD_MAX_AGE:g}"),
        (("group", "groups", "crowd"), "group", f"at least {GROUP_MIN_FACES} faces"),
        (("happy", "smiling", "smile", "smiles"), "happy", "a face whose top expression is happy"),
        (("sad",), "sad", "a face whose top expression is sad"),
        (("angry",), "angry", "a face whose top expression is angry"),
        (("surprised", "surprise"), "surprised", "a face whose top expression is surprised")):
    for _word in _words:
        FACE_WORDS[_word] = (_rule, _why)

# Everyday words offered as suggestions when some indexed photo's best label falls under them.
COMMON_WORDS = ("dog", "cat", "bird", "car", "boat", "aircraft", "train", "bicycle", "food", "fruit",
                "flower", "fish", "insect", "monkey", "bear", "horse", "building", "furniture", "clothing",
                "musical_instrument", "computer", "ball", "bottle", "cup")


def vocabulary() -> list[dict]:
    """The face words and what each one means: [{"word", "rule", "meaning"}], in a stable order."""
    return [{"word": w, "rule": rule, "meaning": why} for w, (rule, why) in FACE_WORDS.items()]


def parse_query(query: str) -> list[dict]:
    """Split a query into terms: [{"term", "kind": "face", "rule", "meaning"} | {"term", "kind": "label",
    "wnids"}]. A label term with no wnids can only match labels by exact name (other classifiers)."""
    words = [w for w in re.split(r"[\s,;+]+", query.strip().lower()) if w]
    terms = [{"term": w, "kind": "face", "rule": FACE_WORDS[w][0], "meaning": FACE_WORDS[w][1]}
             for w in dict.fromkeys(words) if w in FACE_WORDS]
    rest = [w for w in words if w not in FACE_WORDS]
    if not rest:
        return terms
    wordnet = imagenet_wordnet()
    phrase = " ".join(rest)
    wnids = wordnet.classes_matching(phrase)
    if wnids or len(rest) == 1:
        return terms + [{"term": phrase, "kind": "label", "wnids": wnids}]
    return terms + [{"term": w, "kind": "label", "wnids": wordnet.classes_matching(w)} for w in dict.fromkeys(rest)]


def keyword_search(library: LibraryIndex, query: str, *, limit: int = 50, min_score: float = 0.0) -> list[dict]:
    """Images matching every term of ``query``, best first:
    [{"id", "path", "label", "score", "matched": [{"term", ...why}]}]. ``label`` is the best matching
    ImageNet label (None for a query of face words only)."""
    terms = parse_query(query)
    if not terms:
        return []
    found: dict[int, list[dict]] | None = None
    for term in terms:
        hits = _label_hits(library, term, min_score) if term["kind"] == "label" else _face_hits(library, term)
        if found is None:
            found = {image_id: [hit] for image_id, hit in hits.items()}
        else:
            found = {image_id: found[image_id] + [hits[image_id]] for image_id in found if image_id in hits}
        if not found:
            return []
    paths = _paths(library, list(found))
    results = []
    for image_id, matched in found.items():
        score = math.exp(sum(math.log(max(m["score"], 1e-12)) for m in matched) / len(matched))
        label = next((m["label"] for m in matched if "label" in m), None)
        results.append({"id": image_id, "path": paths[image_id], "label": label, "score": score,
                        "matched": matched})
    results.sort(key=lambda r: (-r["score"], r["path"]))
    return results[:limit]


def _label_hits(library: LibraryIndex, term: dict, min_score: float) -> dict[int, dict]:
    wnids = term["wnids"]
    marks = ",".join("?" * len(wnids))
    where = f"(wnid IN ({marks}) OR label = ? COLLATE NOCASE)" if wnids else "label = ? COLLATE NOCASE"
    # SQLite rule: with max(), the bare columns come from the row holding the maximum
    rows = library.conn.execute(
        f"SELECT image_id, label, max(score) FROM labels WHERE {where} AND score >= ? GROUP BY image_id",
        (*wnids, normalize(term["term"]), min_score)).fetchall()
    return {r[0]: {"term": term["term"], "kind": "label", "label": r[1], "score": r[2]} for r in rows}


def _face_hits(library: LibraryIndex, term: dict) -> dict[int, dict]:
    rule = term["rule"]
    rows = library.conn.execute(
        "SELECT image_id, score, age, gender, gender_probability, expression FROM faces").fetchall()
    per_image: dict[int, list[float]] = {}
    for image_id, score, age, gender, gender_probability, expression in rows:
        value = _face_value(rule, score, age, gender, gender_probability, expression)
        if value is not None:
            per_image.setdefault(image_id, []).append(value)
    hits = {}
    for image_id, values in per_image.items():
        values.sort(reverse=True)
        if rule == "group":
            if len(values) < GROUP_MIN_FACES:
                continue
            score = values[GROUP_MIN_FACES - 1]
        else:
            score = values[0]
        hits[image_id] = {"term": term["term"], "kind": "face", "rule": rule, "faces": len(values),
                          "score": float(score)}
    return hits


def _face_value(rule, score, age, gender, gender_probability, expression) -> float | None:
    """How strongly one face satisfies a rule (None: not at all)."""
    if rule in ("face", "group"):
        return score
    if rule in ("male", "female"):
        ok = gender == rule and (gender_probability or 0.0) >= GENDER_MIN_PROBABILITY
        return score * gender_probability if ok else None
    if rule == "child":
        return score if age is not None and age < CHILD_MAX_AGE else None
    probabilities = json.loads(expression or "{}")
    if not probabilities:
        return None
    top = max(probabilities, key=probabilities.get)
    return score * probabilities[top] if top == rule else None


def _paths(library: LibraryIndex, image_ids: list[int]) -> dict[int, str]:
    out = {}
    for start in range(0, len(image_ids), 500):   # SQLite's bound-parameter limit
        chunk = image_ids[start:start + 500]
        out.update(library.conn.execute(
            f"SELECT id, path FROM images WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
    return out


def suggestions(library: LibraryIndex, limit: int = 12) -> list[dict]:
    """Words worth typing for this library, each with how many photos it finds: face words that match
    something (person, woman, group, happy, ...), then everyday words and best labels by photo count.
    [{"word", "count", "kind": "face" | "label"}]; never a word that finds nothing."""
    out: list[dict] = []
    for word in ("person", "woman", "man", "child", "group", "happy", "surprised", "sad", "angry"):
        count = len(_face_hits(library, {"term": word, "kind": "face", "rule": FACE_WORDS[word][0]}))
        if count:
            out.append({"word": word, "count": count, "kind": "face"})
    best = library.conn.execute(
        "SELECT label, wnid, count(*) FROM labels WHERE rank = 0 GROUP BY label, wnid").fetchall()
    wordnet = imagenet_wordnet()
    label_words: dict[str, int] = {}
    for word in COMMON_WORDS:
        covered = set(wordnet.classes_matching(word))
        count = sum(n for _, wnid, n in best if wnid in covered)
        if count:
            label_words[word.replace("_", " ")] = count
    for label, _, count in sorted(best, key=lambda r: (-r[2], r[0])):
        word = label.replace("_", " ")
        if word not in label_words:
            label_words[word] = count
    common = [w for w in label_words if w in {c.replace("_", " ") for c in COMMON_WORDS}]
    ordered = common + [w for w in label_words if w not in common]
    out += [{"word": w, "count": label_words[w], "kind": "label"} for w in ordered]
    return out[:limit]
