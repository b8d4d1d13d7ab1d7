"""Build ``nnlite/data/wordnet_imagenet.json``: the WordNet 3.0 noun hierarchy above the 1000 ImageNet classes.

Why: keyword search should find a tabby when the user types "cat", so every class needs its WordNet
ancestors (tabby -> domestic cat -> cat -> feline -> carnivore -> ... -> animal). ImageNet ids are
WordNet 3.0 noun offsets ("n" + the 8-digit offset in ``data.noun``), so the WordNet database
files are the whole source. They come from the Debian package ``wordnet-base``
(``apt-get install wordnet-base`` puts them in /usr/share/wordnet); the WordNet 3.0 licence is
permissive and asks that its notice travel with every copy, so this tool copies the notice at the
top of data.noun into ``LICENSE-WordNet.txt`` next to the JSON.

Output (compact, only the synsets reachable upward from the 1000 classes)::

    {"source": ..., "licence": "LICENSE-WordNet.txt", "data_noun_sha256": ...,
     "classes": ["n01440764", ...],                               # the ImageNet classes, sorted
     "synsets": {"02123045": [["tabby", "tabby_cat"], ["02121808"]], ...}}   # offset: [lemmas, parents]

Parents are the hypernym (``@``) and instance-hypernym (``@i``) pointers. Run:

    python tools/build_wordnet_hypernyms.py [--wordnet /usr/share/wordnet] [--out nnlite/data]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HYPERNYM_POINTERS = ("@", "@i")


def parse_data_noun(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Read WordNet's data.noun: offset -> (lemmas, hypernym offsets).

    Line format (wndb(5)): ``offset lex_filenum ss_type w_cnt(hex) [word lex_id]... p_cnt
    [pointer_symbol offset pos source/target]... | gloss``. Lines starting with two spaces are the licence.
    """
    synsets: dict[str, tuple[list[str], list[str]]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):
                continue
            fields = line.split(" | ", 1)[0].split()
            offset, n_words = fields[0], int(fields[3], 16)
            lemmas = [re.sub(r"\(.*\)$", "", w) for w in fields[4:4 + 2 * n_words:2]]  # drop "(a)" markers
            pos = 4 + 2 * n_words
            n_pointers = int(fields[pos])
            parents = []
            for i in range(n_pointers):
                symbol, target, target_pos = fields[pos + 1 + 4 * i: pos + 4 + 4 * i]
                if symbol in HYPERNYM_POINTERS and target_pos == "n":
                    parents.append(target)
            synsets[offset] = (lemmas, parents)
    return synsets


def licence_notice(path: Path) -> str:
    """The licence at the top of data.noun: numbered lines starting with two spaces."""
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("  "):
                break
            lines.append(re.sub(r"^\s+\d+ ?", "", line).rstrip())
    return "\n".join(lines).strip() + "\n"


def reachable(synsets: dict, starts: list[str]) -> dict:
    """The sub-hierarchy of ``synsets`` reachable upward from ``starts``."""
    keep: dict = {}
    stack = list(starts)
    while stack:
        offset = stack.pop()
        if offset in keep:
            continue
        if offset not in synsets:
            raise SystemExit(f"WordNet offset {offset} not found in data.noun (is it WordNet 3.0?)")
        keep[offset] = synsets[offset]
        stack.extend(synsets[offset][1])
    return keep


def class_wnids(class_index: Path) -> list[str]:
    table = json.loads(class_index.read_text(encoding="utf-8"))
    return sorted(str(row[0]) for row in table.values())


def build(wordnet_dir: Path, class_index: Path) -> dict:
    data_noun = wordnet_dir / "data.noun"
    wnids = class_wnids(class_index)
    synsets = reachable(parse_data_noun(data_noun), [w[1:] for w in wnids])
    return {
        "source": "WordNet 3.0 noun database (data.noun), Debian package wordnet-base; "
                  "built by tools/build_wordnet_hypernyms.py",
        "licence": "WordNet 3.0 licence, see LICENSE-WordNet.txt",
        "data_noun_sha256": hashlib.sha256(data_noun.read_bytes()).hexdigest(),
        "classes": wnids,
        "synsets": {k: [v[0], v[1]] for k, v in sorted(synsets.items())},
    }


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--classes", type=Path, default=REPO / "nnlite" / "data" / "imagenet_class_index.json")
    parser.add_argument("--out", type=Path, default=REPO / "nnlite" / "data")
    args = parser.parse_args(argv)
    if not (args.wordnet / "data.noun").exists():
        print(f"no data.noun in {args.wordnet}: apt-get install wordnet-base", file=sys.stderr)
        return 1
    table = build(args.wordnet, args.classes)
    # one synset per line: diffs stay readable and the file stays small
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in table.pop("synsets").items()]
    head = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in table.items())
    text = "{\n" + head + ',\n "synsets": {\n' + ",\n".join(lines) + "\n}}\n"
    write_atomic(args.out / "wordnet_imagenet.json", text)
    write_atomic(args.out / "LICENSE-WordNet.txt", licence_notice(args.wordnet / "data.noun"))
    print(f"wrote {args.out / 'wordnet_imagenet.json'}: {len(table['classes'])} classes, {len(lines)} synsets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
