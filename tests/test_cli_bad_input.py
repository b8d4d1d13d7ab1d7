"""Bad input to every subcommand: one typed ``nnlite COMMAND: error: ...`` line on stderr naming the file
or problem, exit status 2, nothing on stdout (so --json never prints half a document), no traceback and no
output file left behind. Odd but valid images (PNG named .jpg, 16-bit, CMYK, 1x1, RGBA, grey) work.

Everything runs in-process through ``nnlite.cli.main`` so the models load once for the whole file."""

from __future__ import annotations

import json
import os
import socket
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from nnlite.cli import main
from nnlite.library.index import LibraryIndex
from nnlite.paths import data_dir

SAMPLES = data_dir() / "samples"
FACES = str(SAMPLES / "faces.jpg")
CHELSEA = str(SAMPLES / "chelsea.png")


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression-bomb probe)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("qa_inputs")
    jpeg = (SAMPLES / "faces.jpg").read_bytes()
    rng = np.random.default_rng(7)
    made = {
        "empty.jpg": b"",
        "random.jpg": rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(),
        "truncated.jpg": jpeg[:len(jpeg) // 3],
        "header_only.jpg": jpeg[:200],
        "bomb.png": _png_header(100_000, 100_000),        # above Pillow's own limit
        "huge.png": _png_header(9000, 9000),              # above nnlite's max_pixels
    }
    for name, data in made.items():
        (root / name).write_bytes(data)
    (root / "a_dir.jpg").mkdir()
    Image.open(CHELSEA).save(root / "png_named.jpg", format="PNG")
    Image.fromarray((rng.random((64, 80)) * 65535).astype(np.uint16)).save(root / "sixteen.png")
    Image.open(FACES).convert("CMYK").save(root / "cmyk.jpg")
    Image.new("RGB", (1, 1), (255, 0, 0)).save(root / "one.png")
    Image.new("RGBA", (90, 70), (10, 20, 30, 0)).save(root / "rgba.png")
    Image.new("L", (120, 100), 128).save(root / "grey.png")
    paths = {p.name: str(p) for p in root.iterdir()}
    paths["missing.jpg"] = str(root / "missing.jpg")
    paths["root"] = str(root)
    db = root / "library.db"
    with LibraryIndex(db):   # an empty, valid index for search / people / serve
        pass
    paths["db"] = str(db)
    return paths


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:   # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _assert_error(code, out, err, command: str, *needles: str) -> None:
    assert "Traceback" not in err
    assert code == 2, err
    assert out == "", "an error must not print to stdout"
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"nnlite {command}: error: "), err
    for needle in needles:
        assert needle in last, f"{needle!r} not in {last!r}"


BAD_FILES = {   # file -> words the message must contain (besides the file's name)
    "missing.jpg": "not found", "a_dir.jpg": "directory", "empty.jpg": "empty", "random.jpg": "not an image",
    "truncated.jpg": "truncated", "header_only.jpg": "", "bomb.png": "bomb", "huge.png": "bomb",
}
IMAGE_COMMANDS = {
    "classify": lambda f, img: ["classify", img, "--json"],
    "faces": lambda f, img: ["faces", img, "--json", "--out", os.path.join(f["root"], "annotated.png")],
    "compare": lambda f, img: ["compare", img, FACES, "--json"],
    "compare-crops": lambda f, img: ["compare", "--crops", img, FACES],
    "inspect": lambda f, img: ["inspect", "mobilenet_v2", "--image", img, "--layer", "features.0.0",
                               "--out", os.path.join(f["root"], "maps.png")],
    "search-face": lambda f, img: ["search", "--face", img, "--db", f["db"], "--json"],
}


@pytest.mark.parametrize("name", BAD_FILES)
@pytest.mark.parametrize("command", IMAGE_COMMANDS)
def test_bad_image_file_is_one_typed_line(capsys, files, command, name):
    argv = IMAGE_COMMANDS[command](files, files[name])
    code, out, err = _run(capsys, argv)
    _assert_error(code, out, err, argv[0], files[name], BAD_FILES[name])
    leftovers = {"annotated.png", "maps.png"} & set(os.listdir(files["root"]))
    assert not leftovers and not [n for n in os.listdir(files["root"]) if n.endswith(".part")]


@pytest.mark.parametrize("name", ["png_named.jpg", "sixteen.png", "cmyk.jpg", "one.png", "rgba.png", "grey.png"])
@pytest.mark.parametrize("command", ["classify", "faces"])
def test_odd_but_valid_images_give_one_json_document(capsys, files, command, name):
    code, out, err = _run(capsys, [command, files[name], "--json"])
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["image"] == files[name]
    assert doc["predictions" if command == "classify" else "faces"] is not None


OPTION_CASES = [   # argv (FILES[...] placeholders resolved below), words the message must contain
    (["classify", CHELSEA, "--top", "0"], "--top"),
    (["classify", CHELSEA, "--top", "-1"], "--top"),
    (["classify", CHELSEA, "--top", "abc"], "'abc'"),
    (["classify", CHELSEA, "--model", "nosuch"], "unknown model 'nosuch'"),
    (["classify", CHELSEA, "--model", "ssd_mobilenetv1", "--json"], "not an image classifier"),
    (["faces", FACES, "--min-score", "2"], "--min-score"),
    (["faces", FACES, "--min-score", "0"], "--min-score"),
    (["faces", FACES, "--min-score", "nan"], "--min-score"),
    (["faces", FACES, "--out", "{root}/no_such_dir/a.png", "--json"], "does not exist"),
    (["faces", FACES, "--out", "{root}/a_dir.jpg"], "directory"),
    (["inspect", "mobilenet_v2", "--image", CHELSEA, "--layer", "features.0.0", "--out", "{root}/x/m.png"],
     "does not exist"),
    (["inspect", "mobilenet_v2", "--image", CHELSEA, "--layer", "features.0.0", "--out", "{root}/m.png",
      "--max-maps", "0"], "--max-maps"),
    (["inspect", "mobilenet_v2", "--image", CHELSEA, "--layer", "nosuch", "--out", "{root}/m.png"], "nosuch"),
    (["inspect", "nosuch"], "unknown model"),
    (["models", "--family", "nope"], "nope"),
    (["fetch", "nosuch"], "nosuch"),
    (["fetch", "resnet50", "--url", "file://{root}/random.jpg"], "HDF5"),
    (["index", "{root}/missing_dir", "--db", "{root}/lib2.db"], "missing_dir"),
    (["index", "{root}", "--db", "{root}/lib2.db", "--top-k", "0"], "--top-k"),
    (["index", "{root}", "--db", "{root}/lib2.db", "--model", "age_gender"], "not an ImageNet classifier"),
    (["index", "{root}", "--db", "{root}/random.jpg"], "random.jpg"),
    (["search", "cat", "--db", "{root}/none.db"], "none.db"),
    (["search", "cat", "--db", "{root}/random.jpg", "--json"], "random.jpg"),
    (["search", "cat", "--db", "{db}", "--top", "0"], "--top"),
    (["search", "--face", FACES, "--db", "{db}", "--threshold", "-1"], "--threshold"),
    (["search", "--db", "{db}"], "QUERY"),
    (["people", "--db", "{root}/none.db", "--json"], "none.db"),
    (["people", "--db", "{db}", "--min-faces", "0"], "--min-faces"),
    (["serve", "--db", "{db}", "--port", "99999"], "--port"),
    (["serve", "--db", "{db}", "--max-upload-mb", "0"], "--max-upload-mb"),
    (["serve", "--db", "{db}", "--model", "age_gender"], "not an ImageNet classifier"),
    (["serve", "--db", "{root}/none.db", "--port", "0"], "none.db"),
]


@pytest.mark.parametrize("argv, needle", OPTION_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_option_or_target_is_one_typed_line(capsys, monkeypatch, files, argv, needle):
    monkeypatch.setenv("NNLITE_HOME", os.path.join(files["root"], "home"))   # fetch: never the user's cache
    argv = [a.format(**files) for a in argv]
    code, out, err = _run(capsys, argv)
    _assert_error(code, out, err, argv[0], needle)
    assert not os.path.exists(os.path.join(files["root"], "lib2.db"))


def test_unwritable_out_after_the_run_leaves_nothing(capsys, files):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux's /proc as a folder nobody can create files in")
    code, out, err = _run(capsys, ["faces", FACES, "--json", "--out", "/proc/nnlite-qa.png"])
    _assert_error(code, out, err, "faces", "/proc/nnlite-qa.png")


def test_serve_on_a_taken_port_is_one_typed_line(capsys, files):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, out, err = _run(capsys, ["serve", "--db", files["db"], "--port", port])
    _assert_error(code, out, err, "serve", port)


@pytest.mark.parametrize("threshold", [-1.0, 0.0, float("nan")])
def test_web_people_with_a_bad_threshold_is_a_400(files, threshold):
    from nnlite.web.app import HttpError, LibraryApp
    app = LibraryApp(files["db"])
    try:
        with pytest.raises(HttpError) as caught:
            app.people(threshold=threshold)
        assert caught.value.status == 400
    finally:
        app.close()
