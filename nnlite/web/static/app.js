// nnlite photo library page, part 1: talking to the server, building elements, errors, progress.
// Plain DOM, no framework, no inline code (the server's Content-Security-Policy forbids it).
// Text from the server goes in through textContent only, never as HTML. Views: views.js.
"use strict";

const $ = (id) => document.getElementById(id);

// Every server answer is JSON (nnlite/web/API.md); failures become an Error with a sentence a person can act on.
async function api(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new Error("the server did not answer. Is `nnlite serve` still running?");
  }
  let body = null;
  try { body = await response.json(); } catch (error) { /* not JSON: described below */ }
  if (!response.ok) {
    const reason = body && body.error ? body.error : `the server answered ${response.status}`;
    throw new Error(PLAIN_STATUS[response.status] ? `${PLAIN_STATUS[response.status]} ${reason}` : reason);
  }
  if (body === null) throw new Error("the server sent an answer this page cannot read.");
  return body;
}

const PLAIN_STATUS = {
  413: "it is too large for the server:",
  415: "the server could not take this kind of file:",
  503: "the server is busy:",
};

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  return node;
}

const pretty = (label) => (label || "").replace(/_/g, " ");
const percent = (p) => `${Math.round(100 * p)} %`;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function describeFace(face) {
  const parts = [];
  if (face.age != null) parts.push(`about ${Math.round(face.age)} years old`);
  if (face.gender) {
    parts.push(face.gender_probability != null ? `${face.gender} (${percent(face.gender_probability)})` : face.gender);
  }
  const expressions = Object.entries(face.expression || {}).sort((a, b) => b[1] - a[1]);
  if (expressions.length) parts.push(`${expressions[0][0]} (${percent(expressions[0][1])})`);
  return parts.join(", ");
}

// Progress for slow work (analysis takes about a second per photo): a bar and a ticking line.
let progressTimer = null;
function startProgress(text) {
  const started = performance.now();
  $("progress").hidden = false;
  const tick = () => {
    $("progress-text").textContent = `${text} ${((performance.now() - started) / 1000).toFixed(0)} s`;
  };
  tick();
  clearInterval(progressTimer);
  progressTimer = setInterval(tick, 500);
}

function stopProgress() {
  clearInterval(progressTimer);
  $("progress").hidden = true;
}

// One view at a time in <main>; the title and note above it say where we are and what to do.
function setView(title, note, ...children) {
  $("view-title").textContent = title;
  $("view-note").textContent = note || "";
  $("view").replaceChildren(...children);
  document.title = `${title} · nnlite photo library`;
  document.querySelectorAll("nav a").forEach((a) =>
    a.setAttribute("aria-current", location.hash.startsWith(a.getAttribute("href")) ? "page" : "false"));
}

function emptyState(...lines) {
  return el("div", { className: "empty" }, ...lines.map((line) => el("p", { textContent: line })));
}
