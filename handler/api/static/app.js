"use strict";

// The upload page: one image in, one POST /segment (JSON with the overlay PNG inside), the overlay and the
// objects table out. Same-origin calls only.
const $ = (id) => document.getElementById(id);

const form = $("form");
const fileInput = $("file");
const drop = $("drop");
const preview = $("preview");
const slider = $("confidence");
const submit = $("submit");

let chosen = null;
const objectUrls = { preview: null, overlay: null };

function showUrl(img, slot, blob) {
  if (objectUrls[slot]) URL.revokeObjectURL(objectUrls[slot]);
  objectUrls[slot] = URL.createObjectURL(blob);
  img.src = objectUrls[slot];
  img.hidden = false;
}

function showConfidence() {
  $("confidence-value").textContent = `${Math.round(Number(slider.value) * 100)}%`;
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function choose(file) {
  if (!file) return;
  chosen = file;
  showUrl(preview, "preview", file);
  $("drop-text").textContent = `${file.name} (${Math.ceil(file.size / 1024)} KB)`;
  submit.disabled = false;
  showError("");
}

// The message from the service's JSON error body; a proxy's own error page gives only its status.
async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) {
    // not JSON
  }
  return `the server answered ${response.status} ${response.statusText}`.trim();
}

async function post(query) {
  const data = new FormData();
  data.append("image", chosen);
  const response = await fetch(`segment?${new URLSearchParams(query)}`, { method: "POST", body: data });
  if (!response.ok) throw new Error(await errorMessage(response));
  return response;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

// The overlay comes inside the JSON (overlay=true) as base64; a blob: URL keeps the CSP free of data:.
function pngBlob(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: "image/png" });
}

function showResult(result) {
  showUrl($("overlay"), "overlay", pngBlob(result.overlay_png_base64));
  const count = result.class_names.length;
  const total = result.timings_ms.total;
  $("summary").textContent =
    `${count} object${count === 1 ? "" : "s"} in ${result.image.width}×${result.image.height} px` +
    (total === undefined ? "" : `, ${Math.round(total)} ms`);

  const counts = $("counts");
  counts.replaceChildren(
    ...Object.entries(result.object_counts).map(([name, n]) => {
      const li = document.createElement("li");
      li.textContent = `${name}: ${n}`;
      return li;
    }),
  );

  const rows = result.class_names.map((name, i) => {
    const tr = document.createElement("tr");
    cell(tr, String(i + 1));
    cell(tr, name);
    cell(tr, `${result.scores[i]}%`);
    cell(tr, result.boxes[i].join(", "));
    return tr;
  });
  $("objects").tBodies[0].replaceChildren(...rows);
  $("result").hidden = false;
}

async function segment(event) {
  event.preventDefault();
  if (!chosen) return;
  submit.disabled = true;
  form.setAttribute("aria-busy", "true");
  showError("");
  setStatus("Segmenting…");
  const confidence = slider.value;
  try {
    const response = await post({ masks: "none", overlay: "true", confidence });
    showResult(await response.json());
    setStatus("");
  } catch (error) {
    $("result").hidden = true;
    setStatus("");
    showError(error instanceof TypeError ? "the server could not be reached" : error.message);
  } finally {
    submit.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

async function loadDefaults() {
  try {
    const response = await fetch("healthz");
    if (response.ok) slider.value = String((await response.json()).defaults.confidence);
  } catch (_) {
    // keep the slider's own default
  }
  showConfidence();
}

fileInput.addEventListener("change", () => choose(fileInput.files[0]));
slider.addEventListener("input", showConfidence);
preview.addEventListener("error", () => {
  preview.hidden = true; // not something the browser can show; the server will say what it is
});
form.addEventListener("submit", segment);
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("dragging");
});
drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("dragging");
  if (event.dataTransfer.files.length) fileInput.files = event.dataTransfer.files;
  choose(event.dataTransfer.files[0]);
});
loadDefaults();
