"""Record what the real face-api.js finds on faces that reach past the image borders (a test fixture).

The scenes are made here, deterministically, from ../shared's identity photos: each 150x150 portrait is
enlarged to 200x200 and pasted onto a 360x360 grey canvas so that 40 px of it fall past one border (left,
right, top, bottom) or two (the four corners), plus one centred control. The bundled cat sample is added too
(its "face" box runs past the image bottom). face-api.js (npm @vladmandic/face-api 1.7.15, tfjs 4.22.0 wasm,
run by ../shared/tools/faceapi-node/peer.js on the decoded RGB) then writes boxes, landmarks and descriptors,
kept in tests/data/faceapi_border_reference.json.

    d=$(mktemp -d) && cp -r ../shared/tools/faceapi-node/. "$d" && (cd "$d" && npm install)
    python tools/faceapi_border_reference.py --node-dir "$d"

Needs Node.js 18+ and the npm registry once (for the install); nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "data" / "faceapi_border_reference.json"
CANVAS, SIZE, CUT, GREY = 360, 200, 40, (120, 120, 120)
# scene -> (identity photo, top-left corner of the pasted 200x200 portrait)
_FAR = CANVAS - SIZE + CUT
PLACES = {
    "left": ("amy/amy2.png", (-CUT, 80)),
    "right": ("leonard/leonard2.png", (_FAR, 80)),
    "top": ("howard/howard2.png", (80, -CUT)),
    "bottom": ("leonard/leonard2.png", (80, _FAR)),
    "top_left": ("penny/penny2.png", (-CUT, -CUT)),
    "top_right": ("raj/raj2.png", (_FAR, -CUT)),
    "bottom_left": ("sheldon/sheldon2.png", (-CUT, _FAR)),
    "bottom_right": ("stuart/stuart2.png", (_FAR, _FAR)),
    "centre": ("amy/amy2.png", (80, 80)),
}


def border_scenes(shared: Path) -> dict[str, np.ndarray]:
    """{scene name: (360, 360, 3) uint8 RGB}, the same bytes on every machine (Pillow's bilinear resize)."""
    scenes = {}
    for name, (photo, corner) in PLACES.items():
        with Image.open(shared / "data" / "faceapi" / "identities" / photo) as im:
            face = im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (CANVAS, CANVAS), GREY)
        canvas.paste(face, corner)
        scenes[name] = np.asarray(canvas)
    return scenes


def cat_sample() -> np.ndarray:
    with Image.open(REPO / "nnlite" / "data" / "samples" / "chelsea.png") as im:
        return np.asarray(im.convert("RGB"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-dir", type=Path, required=True, help="a copy of faceapi-node with npm installed")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    images = {**border_scenes(args.shared), "chelsea": cat_sample()}
    with tempfile.TemporaryDirectory() as tmp:
        items = []
        for name, rgb in images.items():
            path = Path(tmp) / f"{name}.rgb"
            rgb.tofile(path)
            items.append({"name": name, "rgb": str(path), "shape": list(rgb.shape)})
        (Path(tmp) / "list.json").write_text(json.dumps(items))
        subprocess.run(["node", "peer.js", str(Path(tmp) / "list.json"), str(Path(tmp) / "out.json")],
                       cwd=args.node_dir, check=True)
        results = json.loads((Path(tmp) / "out.json").read_text())
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    keep = ("box", "score", "landmarks", "descriptor")
    doc = {"about": f"face-api.js (npm @vladmandic/face-api 1.7.15, tfjs 4.22.0 wasm, Node {node}) on the scenes "
                    "of tools/faceapi_border_reference.py; SsdMobilenetv1 minConfidence 0.5. Regenerate with "
                    "that tool.",
           "images": [{"name": r["name"], "faces": [{k: f[k] for k in keep} for f in r["faces"]]} for r in results]}
    args.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    for r in results:
        print(r["name"], [([round(v, 1) for v in f["box"]], round(f["score"], 3)) for f in r["faces"]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
