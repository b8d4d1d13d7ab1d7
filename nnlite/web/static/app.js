// nnlite photo library page: plain DOM, no framework. Every server answer is JSON (see nnlite/web/API.md);
// text from the server goes in through textContent only, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

async function api(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function describeFace(face) {
  const parts = [];
  if (face.age != null) parts.push(`age ${Math.round(face.age)}`);
  if (face.gender) parts.push(face.gender);
  const expressions = Object.entries(face.expression || {});
  if (expressions.length) parts.push(expressions.sort((a, b) => b[1] - a[1])[0][0]);
  return parts.join(" · ");
}

// Show a photo with its labels and face boxes; clicking a face calls onFace(face).
function showPicture(src, info, onFace) {
  $("stage").hidden = false;
  const picture = $("picture");
  picture.querySelectorAll(".face-box").forEach((box) => box.remove());
  const img = $("photo");
  img.onload = () => {
    const scale = img.clientWidth / info.width;   // boxes are in the photo's own pixels
    info.faces.forEach((face, i) => {
      const [x, y, w, h] = face.box;
      const box = el("div", { className: "face-box", title: "find this person", id: `face-box-${i}` },
        el("span", { textContent: describeFace(face) }));
      Object.assign(box.style, { left: `${x * scale}px`, top: `${y * scale}px`,
                                 width: `${w * scale}px`, height: `${h * scale}px` });
      box.onclick = () => { picture.querySelectorAll(".face-box").forEach((b) => b.classList.remove("selected"));
                            box.classList.add("selected"); onFace(face); };
      picture.append(box);
    });
    $("picture").dataset.ready = "true";
  };
  $("picture").dataset.ready = "false";
  img.src = src;
  $("labels").replaceChildren(...info.labels.map((l) =>
    el("li", { textContent: `${l.label.replace(/_/g, " ")} — ${(100 * l.score).toFixed(1)} %` })));
  $("faces").replaceChildren(...(info.faces.length ? info.faces.map((face, i) =>
    el("li", { textContent: `face ${i + 1}: ${describeFace(face)}`, onclick: () => onFace(face) }))
    : [el("li", { textContent: "no faces found" })]));
}

function showGallery(title, results, caption, thumb) {
  $("results-title").hidden = false;
  $("results-title").textContent = results.length ? title : `${title}: nothing found`;
  $("gallery").replaceChildren(...results.map((r) => {
    const tile = el("div", { className: "tile", title: r.path },
      el("img", { src: thumb(r), alt: r.path, loading: "lazy" }), el("div", { textContent: caption(r) }),
      el("div", { textContent: r.path }));
    tile.onclick = () => openIndexed(r.image_id ?? r.id);
    return tile;
  }));
}

async function searchPerson(url, options) {
  try {
    const answer = await api(url, options);
    showGallery("Same person in the library", answer.results, (r) => `distance ${r.distance.toFixed(3)}`,
                (r) => `${r.face_url}&size=160`);
  } catch (error) { showError(error.message); }
}

async function openIndexed(imageId) {
  try {
    const info = await api(`/api/images/${imageId}`);
    showError("");
    showPicture(info.image_url, info, (face) => searchPerson(`/api/faces/${face.id}/similar`));
  } catch (error) { showError(error.message); }
}

$("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  showError("");
  try {
    const info = await api("/api/analyze", { method: "POST", body: file,
                                             headers: { "Content-Type": file.type || "application/octet-stream" } });
    showPicture(URL.createObjectURL(file), info, (face) => searchPerson("/api/faces/search", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ descriptor: face.descriptor, top: 12 }) }));
  } catch (error) { showError(error.message); }
});

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  try {
    const answer = await api(`/api/search?q=${encodeURIComponent(query)}`);
    showError("");
    showGallery(`Photos of “${query}”`, answer.results,
                (r) => `${r.label.replace(/_/g, " ")} ${(100 * r.score).toFixed(0)} %`, (r) => `${r.thumb_url}?size=160`);
  } catch (error) { showError(error.message); }
});

api("/api/status").then((s) => {
  $("status").textContent = `${s.images} photos · ${s.faces} faces` + (s.errors ? ` · ${s.errors} unreadable` : "");
})
  .catch((error) => showError(error.message));
