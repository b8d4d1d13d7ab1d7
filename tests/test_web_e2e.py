"""End to end with the real models: index a small library, search it from the CLI, and drive every view
of the web page in headless Chromium (Debian's chromium + chromium-driver, through selenium) at a
desktop and a phone width, with the keyboard alone as well. In the page it checks that no two face
labels overlap, no image is broken, every image has alt text, every control a name, and the focus is
visible. One screenshot per view goes to $NNLITE_TEST_OUTPUT (default .cache/screenshots)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from nnlite.cli import main
from nnlite.library.analyze import AnalyzerSpec
from nnlite.library.index import LibraryIndex
from nnlite.library.indexer import index_folder
from nnlite.web.app import LibraryApp
from nnlite.web.server import make_server, serve_in_thread

REPO = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("NNLITE_TEST_OUTPUT") or REPO / ".cache" / "screenshots")
SPEC = AnalyzerSpec.of(None, model="mobilenet_v2", top_k=5)   # what `nnlite index` and `serve` use
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars")
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
INSTALL = "apt-get install chromium chromium-driver"


@pytest.fixture(scope="module")
def library(tmp_path_factory, shared_dir):
    base = tmp_path_factory.mktemp("e2e")
    root = base / "photos"
    root.mkdir()
    faceapi = shared_dir / "data" / "faceapi"
    shutil.copy(faceapi / "test-images" / "faces.jpg", root / "faces.jpg")
    shutil.copy(REPO / "nnlite" / "data" / "samples" / "chelsea.png", root / "chelsea.png")
    for scene in ("bbt1.jpg", "bbt2.jpg"):
        shutil.copy(faceapi / "scenes" / scene, root / scene)
    for person in ("sheldon", "penny"):
        for k in (1, 2):
            shutil.copy(faceapi / "identities" / person / f"{person}{k}.png", root / f"{person}{k}.png")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    db = base / "lib.db"
    report = index_folder(root, db, spec=SPEC)
    assert (report.analyzed, len(report.errors)) == (9, 1)
    empty = base / "empty.db"
    LibraryIndex(empty).close()
    return root, db, empty


def cli_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_real_models_index_and_cli_search(library, capsys):
    root, db, _ = library
    cats = cli_json(capsys, "search", "cat", "--db", str(db), "--json")["results"]
    assert [os.path.basename(r["path"]) for r in cats] == ["chelsea.png"]
    assert cats[0]["label"] in {"tabby", "tiger_cat", "Egyptian_cat"}
    # the same photo as the query: its own faces come back first, at distance ~0
    hits = cli_json(capsys, "search", "--face", str(root / "faces.jpg"), "--db", str(db), "--json",
                    "--top", "3")["results"]
    assert os.path.basename(hits[0]["path"]) == "faces.jpg" and hits[0]["distance"] < 1e-4
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        message = f"the browser tests need Chromium and its driver: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    profile = REPO / ".cache" / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def servers(library):
    _, db, empty = library
    running = []
    for path in (db, empty):
        app = LibraryApp(path, SPEC)
        server = make_server(app, port=0, quiet=True)
        serve_in_thread(server)
        running.append((app, server))
    yield [f"http://127.0.0.1:{server.server_address[1]}/" for _, server in running]
    for app, server in running:
        server.shutdown()
        server.server_close()
        app.close()


# In-page checks, run after each view has loaded.
PAGE_CHECKS = """
const boxes = [...document.querySelectorAll('.face-label')].map((e) => e.getBoundingClientRect());
const overlaps = [];
for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
  const a = boxes[i], b = boxes[j];
  if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) overlaps.push([i + 1, j + 1]);
}
const images = [...document.images];
const broken = images.filter((i) => i.naturalWidth === 0).map((i) => i.src);
const noAlt = images.filter((i) => !i.hasAttribute('alt') || (!i.alt.trim() && !i.classList.contains('inset')))
  .map((i) => i.src);
const nameOf = (c) => (c.getAttribute('aria-label') || (c.labels && [...c.labels].map((l) => l.textContent).join(''))
  || c.textContent || c.title || '').trim();
const unnamed = [...document.querySelectorAll('button, input, select, textarea, meter, a[href]')]
  .filter((c) => !nameOf(c)).map((c) => c.outerHTML.slice(0, 80));
const wide = document.documentElement.scrollWidth > window.innerWidth + 1;
return {overlaps, broken, noAlt, unnamed, wide, labels: boxes.length, images: images.length};
"""


def check_page(driver, what):
    from selenium.webdriver.support.ui import WebDriverWait
    driver.execute_script("document.querySelectorAll('img').forEach((i) => { i.loading = 'eager'; });")
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "return [...document.images].every((i) => i.complete) && "
        "document.getElementById('main').getAttribute('aria-busy') === 'false'"))
    found = driver.execute_script(PAGE_CHECKS)
    assert not found["overlaps"], f"{what}: face labels overlap: {found['overlaps']}"
    assert not found["broken"], f"{what}: broken images {found['broken']}"
    assert not found["noAlt"], f"{what}: images without alt text {found['noAlt']}"
    assert not found["unnamed"], f"{what}: controls without a name {found['unnamed']}"
    assert not found["wide"], f"{what}: the page is wider than the window"
    assert not driver.find_element("id", "error").is_displayed(), \
        f"{what}: {driver.find_element('id', 'error').text}"
    return found


def shoot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def visit(driver, url, title_part, what):
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: title_part in d.find_element("id", "view-title").text)
    return check_page(driver, what)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_view_in_chromium(browser, library, servers, width):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    root, db, _ = library
    base, empty = servers
    browser.set_window_size(*WIDTHS[width])
    wait = WebDriverWait(browser, 120)

    # library: 8 readable photos, newest first, status links the unreadable file
    found = visit(browser, base, "Library", "library")
    assert found["images"] == 8
    status = browser.find_element(By.ID, "status").text
    assert status.startswith("8 photos") and "1 unreadable" in status
    assert "Most frequent here:" in browser.find_element(By.ID, "suggestion-note").text
    shoot(browser, f"{width}-library")

    browser.get(base + "#/library/2")
    wait.until(lambda d: "no page 2: the library has 1 page." in d.find_element(By.ID, "view").text)

    visit(browser, base + "#/unreadable", "Unreadable", "unreadable")
    assert "corrupt.jpg" in browser.find_element(By.CSS_SELECTOR, ".unreadable tbody").text
    shoot(browser, f"{width}-unreadable")

    # people: groups with face thumbnails; a person's photos
    visit(browser, base + "#/people", "People", "people")
    rows = browser.find_elements(By.CSS_SELECTOR, ".people li")
    assert rows and all(row.find_elements(By.TAG_NAME, "img") for row in rows)
    shoot(browser, f"{width}-people")
    rows[0].find_element(By.TAG_NAME, "a").click()
    wait.until(lambda d: d.find_element(By.ID, "view-title").text.startswith("Person 1:"))
    check_page(browser, "person")
    assert browser.find_elements(By.CSS_SELECTOR, ".grid .tile")
    shoot(browser, f"{width}-person")

    # photo detail of the group photo: numbered boxes, labels with scores, landmarks toggle
    photo_id = _id_of(db, "bbt1.jpg")
    found = visit(browser, base + f"#/photo/{photo_id}", "bbt1.jpg", "photo detail")
    boxes = browser.find_elements(By.CSS_SELECTOR, ".face-box")
    assert len(boxes) >= 4 and found["labels"] == len(boxes)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".labels li")) == 5
    faces = browser.find_elements(By.CSS_SELECTOR, ".faces li")
    assert len(faces) == len(boxes) and all("years old" in f.text for f in faces)
    browser.find_element(By.ID, "landmarks-toggle").click()
    assert browser.find_element(By.CSS_SELECTOR, ".landmarks").is_displayed()
    shoot(browser, f"{width}-photo")

    # face search: nearest first, with the threshold line between same person and the rest
    browser.execute_script("arguments[0].click()", boxes[0])
    wait.until(lambda d: d.find_element(By.ID, "view-title").text.startswith("Faces like"))
    check_page(browser, "face search")
    assert browser.find_element(By.CSS_SELECTOR, ".matches .threshold").is_displayed()
    distances = [float(t.text.split("distance ")[1].split()[0])
                 for t in browser.find_elements(By.CSS_SELECTOR, ".matches .tile .caption")]
    assert distances == sorted(distances) and distances
    shoot(browser, f"{width}-faces")

    # keyword search and a search that finds nothing (the empty state names the library's labels)
    visit(browser, base + "#/search/cat", "cat", "search")
    assert [t.text.splitlines()[-1] for t in browser.find_elements(By.CSS_SELECTOR, ".grid .tile")] == ["chelsea.png"]
    shoot(browser, f"{width}-search")
    # words people type: "person" finds the photos with faces, through the face records
    visit(browser, base + "#/search/person", "person", "search by a face word")
    people_tiles = [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".grid .tile")]
    assert {"faces.jpg", "bbt1.jpg"} <= {t.splitlines()[-1] for t in people_tiles}
    assert all("person" in t for t in people_tiles)
    visit(browser, base + "#/search/zebra", "zebra", "search, nothing found")
    assert "Words that find photos here" in browser.find_element(By.CSS_SELECTOR, ".empty").text

    # upload: progress, then the analysis; a bad file is explained in plain words
    browser.execute_script("""window.sawProgress = false;
      new MutationObserver(() => { window.sawProgress ||= !document.getElementById('progress').hidden; })
        .observe(document.getElementById('progress'), {attributes: true});""")
    browser.find_element(By.ID, "upload").send_keys(str(root / "faces.jpg"))
    wait.until(lambda d: d.find_element(By.ID, "view-title").text.startswith("Your photo"))
    assert browser.execute_script("return window.sawProgress"), "no progress shown while analysing"
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".frame").get_attribute("data-ready") == "true")
    check_page(browser, "upload")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".face-box")) >= 4
    shoot(browser, f"{width}-upload")
    browser.find_element(By.ID, "upload").send_keys(str(root / "corrupt.jpg"))
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "corrupt.jpg could not be analyzed" in browser.find_element(By.ID, "error").text
    shoot(browser, f"{width}-upload-error")

    # an empty library says what to do
    visit(browser, empty, "Library", "empty library")
    assert "nnlite index" in browser.find_element(By.CSS_SELECTOR, ".empty").text
    shoot(browser, f"{width}-empty")


def test_keyboard_alone_reaches_a_face_and_its_matches(browser, library, servers):
    """Tab and Enter only: every focused element shows a visible outline; from the library to a photo
    with faces, to one of its faces, to that person's other photos."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    base, _ = servers
    browser.set_window_size(*WIDTHS["desktop"])
    visit(browser, base + "#/library", "Library", "library")
    focused = ("const e = document.activeElement, s = getComputedStyle(e);"
               "return [e.tagName, e.className, e.getAttribute('href') || '', e.textContent,"
               " s.outlineStyle, parseFloat(s.outlineWidth)];")

    def tab_until(wanted, what):
        for _ in range(60):
            ActionChains(browser).send_keys(Keys.TAB).perform()
            tag, cls, href, text, style, width = browser.execute_script(focused)
            if tag == "BODY":
                continue   # past the last control, the browser's own UI would be next
            assert style != "none" and width >= 2, f"no visible focus on {tag}.{cls} {href}"
            if wanted(cls, href, text):
                return
        pytest.fail(f"{what} not reachable with Tab")

    tab_until(lambda cls, href, text: href.startswith("#/photo/") and not re.search(r"(?<!\d)0 faces", text),
              "a photo with faces")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".frame[data-ready=true]"))
    tab_until(lambda cls, href, text: "face-box" in cls, "a face box")
    shoot(browser, "desktop-keyboard-focus")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "view-title").text.startswith("Faces like"))
    check_page(browser, "face search by keyboard")
    assert browser.find_elements(By.CSS_SELECTOR, ".matches .tile a")


def _id_of(db, name: str) -> int:
    with LibraryIndex(db, readonly=True) as library:
        return next(i for i, p in library.conn.execute("SELECT id, path FROM images") if p.endswith("/" + name))
