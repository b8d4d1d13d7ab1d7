// nnlite photo library page, part 2: the views, one per address (#/library, #/people, #/photo/ID, ...),
// so the browser's back button and bookmarks work. Each view returns [title, note, ...elements].
"use strict";

const PAGE_SIZE = 24;
const statusReady = api("/api/status");   // counts, the index file, the matcher's threshold
let peopleCache = null;     // /api/people is a clustering: computed once per page load
let analyzed = null;        // the last uploaded photo: {name, url, info}

// -- shared pieces ---------------------------------------------------------------------------------

function photoTile(item, caption, detail) {
  const name = item.path;
  const tile = el("li", { className: "tile" },
    el("a", { href: `#/photo/${item.image_id ?? item.id}` },
      el("img", { src: `${item.thumb_url}?size=256`, alt: `${name}${caption ? `: ${caption}` : ""}`,
                  loading: "lazy", width: 256, height: 256 }),
      item.face_url ? el("img", { className: "inset", src: `${item.face_url}&size=96`, alt: "" }) : null,
      el("span", { className: "caption", textContent: caption || "" }),
      detail ? el("span", { className: "name", textContent: detail }) : null,
      el("span", { className: "name", textContent: name })));
  // the server refuses files changed or removed since indexing: say so instead of a broken image
  tile.querySelectorAll("img").forEach((img) => img.addEventListener("error", () => img.replaceWith(
    el("span", { className: "missing", textContent: "cannot be shown: changed or removed since indexing" }))));
  return tile;
}

function grid(items) {
  return el("ul", { className: "grid" }, ...items);
}

function faceFrame(info, src, alt, onFace) {
  const [W, H] = [info.width, info.height];
  const frame = el("div", { className: "frame" });
  const img = el("img", { src, alt, className: "photo", width: W, height: H });
  const dots = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "landmarks",
                            "aria-hidden": "true" });
  const radius = Math.max(2, Math.max(W, H) / 500);
  frame.append(img, dots);
  info.faces.forEach((face, i) => {
    const [x, y, w, h] = face.box;
    (face.landmarks || []).forEach(([px, py]) => dots.append(svg("circle", { cx: px, cy: py, r: radius })));
    const box = el("button", { type: "button", className: "face-box",
                               ariaLabel: `Face ${i + 1}: ${describeFace(face)}. Find this person.` });
    Object.assign(box.style, { left: `${100 * x / W}%`, top: `${100 * y / H}%`,
                               width: `${100 * w / W}%`, height: `${100 * h / H}%` });
    box.addEventListener("click", () => onFace(face, i));
    frame.append(box, el("span", { className: "face-label", textContent: String(i + 1), ariaHidden: "true" }));
  });
  const place = () => placeLabels(frame);
  img.addEventListener("load", () => { place(); frame.dataset.ready = "true"; });
  img.addEventListener("error", () => showError(`the photo ${alt} could not be shown.`));
  new ResizeObserver(place).observe(frame);
  return frame;
}

// Number badges go at the first free spot: inside the box's corner, above, below, left, right of it,
// else further down; never on top of another badge (boxes of neighbouring faces often touch).
function placeLabels(frame) {
  const placed = [];
  const fw = frame.clientWidth, fh = frame.clientHeight;
  const boxes = frame.querySelectorAll(".face-box");
  frame.querySelectorAll(".face-label").forEach((label, i) => {
    const b = boxes[i];
    const [bx, by, bw, bh] = [b.offsetLeft, b.offsetTop, b.offsetWidth, b.offsetHeight];
    const [w, h] = [label.offsetWidth, label.offsetHeight];
    const candidates = [[bx + 2, by + 2], [bx, by - h - 2], [bx, by + bh + 2], [bx - w - 2, by], [bx + bw + 2, by]];
    for (let k = 1; k < 40; k++) candidates.push([bx + 2, by + 2 + k * (h + 2)], [bx + 2 + k * (w + 2), by + 2]);
    const free = ([x, y]) => x >= 0 && y >= 0 && x + w <= fw && y + h <= fh &&
      placed.every(([px, py]) => x + w + 1 <= px || px + w + 1 <= x || y + h + 1 <= py || py + h + 1 <= y);
    const [x, y] = candidates.find(free) || candidates[0];
    placed.push([x, y]);
    Object.assign(label.style, { left: `${x}px`, top: `${y}px` });
  });
}

function photoDetail(info, src, name, onFace) {
  const alt = `${name}: ${info.labels.length ? pretty(info.labels[0].label) : "no label"}, ` +
              `${plural(info.faces.length, "face")}`;
  const frame = faceFrame(info, src, alt, onFace);
  const side = el("div", { className: "details" });
  if (info.faces.some((f) => (f.landmarks || []).length)) {
    const toggle = el("input", { type: "checkbox", id: "landmarks-toggle" });
    toggle.addEventListener("change", () => frame.classList.toggle("show-landmarks", toggle.checked));
    side.append(el("label", { className: "toggle" }, toggle, " Show the 68 face landmarks"));
  }
  side.append(el("h3", { textContent: "What the photo shows" }),
    info.labels.length ? el("ol", { className: "labels" }, ...info.labels.map((l) => el("li", {},
      el("span", { textContent: pretty(l.label) }),
      el("meter", { value: l.score, min: 0, max: 1, ariaLabel: `${pretty(l.label)} score` }),
      el("span", { textContent: percent(l.score) }))))
      : el("p", { textContent: "No labels." }),
    el("h3", { textContent: info.faces.length ? `${plural(info.faces.length, "face")}` : "Faces" }),
    info.faces.length ? el("ol", { className: "faces" }, ...info.faces.map((face, i) => el("li", {},
      el("span", { className: "badge", textContent: String(i + 1), ariaHidden: "true" }),
      el("span", { textContent: describeFace(face) || "face" }), " ",
      el("button", { type: "button", textContent: "Find this person", ariaLabel: `Find face ${i + 1} in the library`,
                     onclick: () => onFace(face, i) }))))
      : el("p", { textContent: "No faces found in this photo." }));
  return el("div", { className: "detail" }, frame, side);
}

function faceResults(results, threshold) {
  const same = results.filter((r) => r.distance < threshold), other = results.filter((r) => r.distance >= threshold);
  const tile = (r) => photoTile(r, `distance ${r.distance.toFixed(3)}`);
  const line = el("li", { className: "threshold", role: "separator" },
    el("span", { textContent: `distance ${threshold}: above this line the same person, below it other people` }));
  return el("ol", { className: "grid matches" }, ...same.map(tile), line, ...other.map(tile));
}

// -- views -----------------------------------------------------------------------------------------

async function showLibrary(page) {
  const answer = await api(`/api/images?offset=${(page - 1) * PAGE_SIZE}&limit=${PAGE_SIZE}`);
  if (!answer.total) {
    const { db } = await statusReady;
    return ["Library", "", el("div", { className: "empty" },
      el("p", { textContent: "The library has no photos yet. Index a folder of photos (here ~/Pictures) with" }),
      el("pre", {}, el("code", { textContent: `nnlite index ~/Pictures --db ${db}` })),
      el("p", { textContent: "then reload this page. Or analyze one photo now with “Analyze a photo…” above " +
                             "(it is not added to the library)." }))];
  }
  const first = answer.offset + 1, last = answer.offset + answer.images.length;
  const pages = Math.ceil(answer.total / PAGE_SIZE);
  if (!answer.images.length) {
    return ["Library", "", el("div", { className: "empty" },
      el("p", { textContent: `There is no page ${page}: the library has ${plural(pages, "page")}.` }),
      el("p", {}, el("a", { href: "#/library", textContent: "Go to the newest photos" })))];
  }
  const pager = el("nav", { className: "pager", ariaLabel: "Pages" },
    page > 1 ? el("a", { href: `#/library/${page - 1}`, textContent: "← Newer" }) : null,
    el("span", { textContent: `Photos ${first}–${last} of ${answer.total}` }),
    page < pages ? el("a", { href: `#/library/${page + 1}`, textContent: "Older →" }) : null);
  return ["Library", "Newest first. Open a photo to see its labels and faces; click a face to find that person.",
    grid(answer.images.map((p) => photoTile(p, p.label ? `${pretty(p.label)} ${percent(p.score)}` : "no label",
      plural(p.faces, "face")))), pager];
}

async function people() {
  peopleCache = peopleCache || (await api("/api/people")).people;
  return peopleCache;
}

async function showPeople() {
  const groups = await people();
  if (!groups.length) {
    return ["People", "", emptyState("Nobody appears in two photos yet, so there is no one to group.",
      "People are faces that look alike across photos: index more photos with faces, then reload.")];
  }
  return ["People", "Faces that look alike, grouped; a person seen only once is not listed. Open a person " +
    "to see all their photos.", el("ol", { className: "people" }, ...groups.map((g, n) => {
    const photos = new Set(g.faces.map((f) => f.image_id)).size;
    return el("li", {}, el("a", { href: `#/person/${n + 1}` },
      el("span", { className: "who", textContent: `Person ${n + 1}: ${plural(g.faces.length, "face")} in ` +
        `${plural(photos, "photo")}` }),
      el("span", { className: "faces-row" }, ...g.faces.slice(0, 8).map((f, k) =>
        el("img", { src: `${f.face_url}&size=96`, alt: `person ${n + 1}, face ${k + 1} (${f.path})`,
                    width: 72, height: 72, loading: "lazy" })))));
  }))];
}

async function showPerson(n) {
  const group = (await people())[n - 1];
  if (!group) return [`Person ${n}`, "", emptyState("There is no such person.", "Go back to People.")];
  const seen = new Map();
  group.faces.forEach((f) => { if (!seen.has(f.image_id)) seen.set(f.image_id, f); });
  return [`Person ${n}: ${plural(seen.size, "photo")}`, "Each photo with this person's face in the corner.",
    grid([...seen.values()].map((f) => photoTile(f, "")))];
}

async function showPhoto(id) {
  const info = await api(`/api/images/${id}`);
  if (info.error) {
    return [info.path, "", emptyState(`This file could not be read when it was indexed: ${info.error}`)];
  }
  return [info.path, "Click a face (or its button) to find the same person in the library.",
    photoDetail(info, `${info.thumb_url}?size=1024`, info.path, (face) => { location.hash = `#/face/${face.id}`; })];
}

async function showFaceSearch(faceId) {
  const answer = await api(`/api/faces/${faceId}/similar?top=24`);
  const me = answer.results[0];
  if (answer.results.length < 2) {
    return ["Faces like this one", "", emptyState("There is no other face in the library to compare with.",
      "Index more photos with faces, then try again.")];
  }
  const query = el("p", { className: "query-face" },
    el("img", { src: `${me.face_url}&size=96`, alt: `the face searched for, in ${me.path}`, width: 72, height: 72 }),
    el("span", {}, "This face, in ", el("a", { href: `#/photo/${me.image_id}`, textContent: me.path }),
       ". The same person's other photos come first, nearest first; the line marks the matcher's threshold."));
  return [`Faces like this one (${me.path})`, "", query, faceResults(answer.results.slice(1), answer.match_threshold)];
}

async function showSearch(query) {
  const answer = await api(`/api/search?q=${encodeURIComponent(query)}`);
  $("query").value = query;
  if (!answer.results.length) {
    const labels = (await api("/api/labels?top=6")).labels.map((l) => pretty(l.label));
    return [`Photos of “${query}”`, "", emptyState(`Nothing in the library matches “${query}”.`,
      labels.length ? `Words that find photos here: ${labels.join(", ")}.` : "The library has no labels yet.")];
  }
  return [`Photos of “${query}”`, "Best match first.",
    grid(answer.results.map((r) => photoTile(r, `${r.label ? pretty(r.label)
      : (r.matched || []).map((m) => m.term).join(" + ")} ${percent(r.score)}`)))];
}

async function showUnreadable() {
  const answer = await api("/api/unreadable");
  if (!answer.images.length) return ["Unreadable files", "", emptyState("Every indexed file could be read.")];
  return ["Unreadable files", "Found while indexing but not readable as images. Fix or remove them, then run " +
    "nnlite index again with --retry-errors.", el("table", { className: "unreadable" },
    el("thead", {}, el("tr", {}, el("th", { textContent: "File", scope: "col" }),
                                 el("th", { textContent: "Why", scope: "col" }))),
    el("tbody", {}, ...answer.images.map((f) => el("tr", {}, el("td", { textContent: f.path }),
                                                   el("td", { textContent: f.error })))))];
}

function showAnalyzed() {
  if (!analyzed) return ["Analyze a photo", "", emptyState("Choose a photo with “Analyze a photo…” above.")];
  return [`Your photo: ${analyzed.name}`, "Not added to the library. Click a face to find that person in the library.",
    photoDetail(analyzed.info, analyzed.url, analyzed.name, (face, i) => { location.hash = `#/analyzed/face/${i}`; })];
}

async function showUploadFaceSearch(i) {
  const face = analyzed && analyzed.info.faces[i];
  if (!face) return showAnalyzed();
  const answer = await api("/api/faces/search", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ descriptor: face.descriptor, top: 24 }) });
  return [`Faces like face ${i + 1} of ${analyzed.name}`, "Nearest first. The line marks the matcher's threshold.",
    faceResults(answer.results, answer.match_threshold)];
}

// -- routing and start ------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/library(?:\/(\d+))?$/, (p) => showLibrary(Math.max(1, +p || 1))],
  [/^#\/people$/, showPeople], [/^#\/person\/(\d+)$/, (n) => showPerson(+n)],
  [/^#\/photo\/(\d+)$/, showPhoto], [/^#\/face\/(\d+)$/, showFaceSearch],
  [/^#\/search\/(.+)$/, (q) => showSearch(decodeURIComponent(q))], [/^#\/unreadable$/, showUnreadable],
  [/^#\/analyzed$/, showAnalyzed], [/^#\/analyzed\/face\/(\d+)$/, (i) => showUploadFaceSearch(+i)],
];
let renderToken = 0;

async function route(focus = true) {
  const token = ++renderToken;
  const [pattern, view] = ROUTES.find(([p]) => p.test(location.hash)) || ROUTES[0];
  const args = (location.hash.match(pattern) || []).slice(1);
  showError("");
  if (!location.hash.startsWith("#/search/")) $("query").value = "";
  $("main").setAttribute("aria-busy", "true");
  try {
    const [title, note, ...children] = await view(...args);
    if (token !== renderToken) return;   // the user moved on while this loaded
    setView(title, note, ...children);
    if (focus) $("main").focus({ preventScroll: false });
  } catch (error) {
    if (token === renderToken) showError(error.message);
  } finally {
    if (token === renderToken) $("main").setAttribute("aria-busy", "false");
  }
}

$("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  showError("");
  startProgress(`Analyzing ${file.name} (about a second per photo)…`);
  try {
    const info = await api("/api/analyze", { method: "POST", body: file,
      headers: { "Content-Type": file.type || "application/octet-stream" } });
    if (analyzed) URL.revokeObjectURL(analyzed.url);
    analyzed = { name: file.name, url: URL.createObjectURL(file), info };
    if (location.hash === "#/analyzed") route(); else location.hash = "#/analyzed";
  } catch (error) {
    showError(`${file.name} could not be analyzed: ${error.message}`);
  } finally {
    stopProgress();
    event.target.value = "";   // choosing the same file again analyzes it again
  }
});

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const query = $("query").value.trim();
  if (query) location.hash = `#/search/${encodeURIComponent(query)}`;
});

async function start() {
  try {
    const status = await statusReady;
    const photos = status.images - status.errors;
    const parts = [el("span", { textContent: `${plural(photos, "photo")} · ${plural(status.faces, "face")}` })];
    if (status.errors) {
      parts.push(" · ", el("a", { href: "#/unreadable", textContent: `${status.errors} unreadable` }));
    }
    $("status").replaceChildren(...parts);
    const labels = (await api("/api/labels?top=8")).labels;
    $("suggestions").replaceChildren(...labels.map((l) => el("option", { value: pretty(l.label) })));
    $("suggestion-note").replaceChildren(...(labels.length ? ["Most frequent here: ",
      ...labels.slice(0, 5).flatMap((l, i) => [i ? ", " : "",
        el("a", { href: `#/search/${encodeURIComponent(pretty(l.label))}`, textContent: pretty(l.label) })])]
      : ["Search works once photos are indexed."]));
  } catch (error) {
    $("status").textContent = "";
    showError(error.message);
  }
}

window.addEventListener("hashchange", () => route());
start();
route(false);
