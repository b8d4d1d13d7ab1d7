"""End to end with the real models: index a few photos, search them from the CLI, and drive the web
demo in a real headless Chromium (Debian's chromium + chromium-driver, via selenium). The browser
screenshot is saved under .cache/artifacts/ (path printed)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from nnlite.cli import main
from nnlite.library.analyze import AnalyzerSpec
from nnlite.library.indexer import index_folder
from nnlite.web.app import LibraryApp
from nnlite.web.server import make_server, serve_in_thread

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / ".cache" / "artifacts"
SPEC = AnalyzerSpec.of(None, model="mobilenet_v2", top_k=5)   # what `nnlite index` and `serve` use
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1400")


@pytest.fixture(scope="module")
def library(tmp_path_factory, shared_dir):
    base = tmp_path_factory.mktemp("e2e")
    root = base / "photos"
    root.mkdir()
    shutil.copy(shared_dir / "data" / "faceapi" / "test-images" / "faces.jpg", root / "faces.jpg")
    shutil.copy(REPO / "nnlite" / "data" / "samples" / "chelsea.png", root / "chelsea.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    db = base / "lib.db"
    report = index_folder(root, db, spec=SPEC)
    assert (report.analyzed, len(report.errors)) == (3, 1)
    return root, db


def cli_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_real_models_index_and_cli_search(library, capsys):
    root, db = library
    cats = cli_json(capsys, "search", "cat", "--db", str(db), "--json")["results"]
    assert [os.path.basename(r["path"]) for r in cats] == ["chelsea.png"]
    assert cats[0]["label"] in {"tabby", "tiger_cat", "Egyptian_cat"}
    # the same photo as the query: its own faces come back first, at distance ~0
    hits = cli_json(capsys, "search", "--face", str(root / "faces.jpg"), "--db", str(db), "--json",
                    "--top", "3")["results"]
    assert os.path.basename(hits[0]["path"]) == "faces.jpg" and hits[0]["distance"] < 1e-4
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    # six different people in faces.jpg: no two of its faces should group together at 0.5
    groups = cli_json(capsys, "people", "--db", str(db), "--json", "--min-faces", "1")["people"]
    faces_in_photo = sum(len(g["faces"]) for g in groups if g["faces"][0]["path"].endswith("faces.jpg"))
    assert faces_in_photo >= 4


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    profile = ARTIFACTS / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options,
                              service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_web_demo_in_headless_chromium(library, browser, shared_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    root, db = library
    app = LibraryApp(db, SPEC)
    server = make_server(app, port=0, quiet=True)
    serve_in_thread(server)
    wait = WebDriverWait(browser, 120)
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait.until(lambda d: "photos" in d.find_element(By.ID, "status").text)
        assert browser.find_element(By.ID, "status").text.startswith("3 photos")   # corrupt.jpg counts,
        assert "1 unreadable" in browser.find_element(By.ID, "status").text         # flagged

        # upload: labels and face boxes with age / gender / expression captions
        browser.find_element(By.ID, "upload").send_keys(str(root / "faces.jpg"))
        wait.until(lambda d: d.find_element(By.ID, "picture").get_attribute("data-ready") == "true")
        boxes = browser.find_elements(By.CSS_SELECTOR, "#picture .face-box")
        assert len(boxes) >= 4 and all("age" in b.text for b in boxes)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#labels li")) == 5

        # click a face: the same person is found in the library (the indexed faces.jpg)
        boxes[0].click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "results-title"), "Same person"))
        tiles = browser.find_elements(By.CSS_SELECTOR, "#gallery .tile")
        assert tiles and "faces.jpg" in tiles[0].text and "distance 0.000" in tiles[0].text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "web_demo_same_person.png"))

        # keyword search through WordNet: "cat" finds the Egyptian cat
        browser.find_element(By.ID, "query").send_keys("cat")
        browser.find_element(By.ID, "search-button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "results-title"), "cat"))
        wait.until(lambda d: all(img.get_attribute("naturalWidth") not in (None, "0")
                                 for img in d.find_elements(By.CSS_SELECTOR, "#gallery img")))
        tiles = browser.find_elements(By.CSS_SELECTOR, "#gallery .tile")
        assert [t.text.splitlines()[-1] for t in tiles] == ["chelsea.png"]

        # a bad upload shows the server's error
        browser.find_element(By.ID, "upload").send_keys(str(root / "corrupt.jpg"))
        wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
        assert "not a readable image" in browser.find_element(By.ID, "error").text
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "web_demo.png"
        browser.save_screenshot(str(shot))
        print(f"\nscreenshot: {shot}")
        server.shutdown()
        server.server_close()
        app.close()
