// The upload page: one image in, the overlay and the objects table out. A file that fits one request goes
// as JSON {"image_base64"} to POST segment?overlay=true (JSON, not multipart: `sam local start-api` turns
// binary bodies into 502s); a larger one, or HEIC/HEIF, goes through the jobs flow (jobs.js) when the
// server has it. With "Cut out each object" the answer is the zip of cut-outs (format=cutouts), whose
// result.json carries the same JSON, shown as a gallery (gallery.js).
import { showGallery } from "./gallery.js";
import { createJob, upload, waitForJob } from "./jobs.js";
import { readZip } from "./unzip.js";
import { hideVideo, isVideo, segmentVideo, showVideo } from "./video.js";

const $ = (id) => document.getElementById(id);

// Lambda's synchronous payload limit: the JSON body (4/3 of the file, base64) and the event around it.
const LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024;
const EVENT_OVERHEAD_BYTES = 16 * 1024;
// The browser cannot show or check HEIC/HEIF (phones' photos, often large): they go as jobs when the server has them.
const HEIF = /\.(heic|heif)$/i;

const form = $("form");
const fileInput = $("file");
const drop = $("drop");
const preview = $("preview");
const slider = $("confidence");
const submit = $("submit");
const cutouts = $("cutouts");

let chosen = null;
const objectUrls = { preview: null, overlay: null };
const server = { maxImageBytes: null, jobs: false };

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

function setProgress(fraction) {
  const bar = $("progress");
  bar.hidden = fraction === null;
  if (fraction !== null) bar.value = fraction;
}

const megabytes = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function choose(file) {
  if (!file) return;
  chosen = file;
  if (isVideo(file)) preview.hidden = true;
  else showUrl(preview, "preview", file);
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

// The largest file one request carries: the server's limit, and base64 inside Lambda's payload.
function oneRequestLimit() {
  const base64Fits = Math.floor(((LAMBDA_PAYLOAD_BYTES - EVENT_OVERHEAD_BYTES) * 3) / 4);
  return Math.min(server.maxImageBytes ?? base64Fits, base64Fits);
}

function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(new Error("the file cannot be read"));
    reader.readAsDataURL(file);
  });
}

async function segmentInOneRequest(query) {
  const body = JSON.stringify({ image_base64: await base64Of(chosen) });
  const response = await fetch(`segment?${new URLSearchParams(query)}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body,
  });
  if (!response.ok) throw new Error(await errorMessage(response));
  if (query.format === "cutouts") return fromZip(await response.blob());
  const result = await response.json();
  return { result, overlay: pngBlob(result.overlay_png_base64), pictures: null };
}

// result.json first, then one PNG per object in result order.
async function fromZip(zip) {
  const entries = await readZip(zip);
  const json = entries.find((entry) => entry.name === "result.json");
  if (!json) throw new Error("the zip has no result.json");
  const result = JSON.parse(new TextDecoder().decode(json.bytes));
  const pictures = entries
    .filter((entry) => entry.name.endsWith(".png"))
    .map((entry) => ({ name: entry.name, blob: new Blob([entry.bytes], { type: "image/png" }) }));
  return { result, overlay: pngBlob(result.overlay_png_base64), pictures, zip };
}

async function segmentAsJob(options) {
  if (server.maxImageBytes !== null && chosen.size > server.maxImageBytes) {
    throw new Error(`the file is ${megabytes(chosen.size)}; the limit is ${megabytes(server.maxImageBytes)}`);
  }
  const job = await createJob(chosen, options, setStatus);
  setStatus(`Uploading ${megabytes(chosen.size)}…`);
  setProgress(0);
  await upload(job, chosen, setProgress);
  setProgress(null);
  setStatus("Uploaded; waiting for the segmentation…");
  const state = await waitForJob(
    job,
    (status) => setStatus(status === "processing" ? "Segmenting…" : "Waiting for the upload to arrive…"),
    setStatus,
  );
  return { result: state.result, overlay: state.overlay_url, pictures: state.cutouts ?? null };
}

function route(file) {
  const large = file.size > oneRequestLimit();
  if (!large && !HEIF.test(file.name)) return "request";
  if (server.jobs) return "job";
  if (large) {
    throw new Error(
      `the file is ${megabytes(file.size)}; this server takes up to ${megabytes(oneRequestLimit())} in one ` +
        "request and has no jobs bucket for larger files (SEG_JOBS_BUCKET)",
    );
  }
  return "request"; // HEIC without jobs: the server reads HEIC too, within one request's size
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

// A score (the model's 0-1 float) as a percentage with one decimal: 0.98765 -> "98.8%".
function percent(score) {
  return `${(score * 100).toFixed(1)}%`;
}

// The overlay: a PNG blob (one request), or the job's short-lived S3 URL; pictures: the cut-outs, or null.
function showResult({ result, overlay, pictures, zip }) {
  showGallery(pictures, zip ?? null);
  if (overlay instanceof Blob) {
    showUrl($("overlay"), "overlay", overlay);
  } else {
    $("overlay").src = overlay;
  }
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
    cell(tr, percent(result.scores[i]));
    cell(tr, result.boxes[i].map((v) => v.toFixed(1)).join(", "));
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
  const cut = cutouts.checked ? { cutouts: "mask" } : {};
  hideVideo();
  try {
    if (isVideo(chosen)) {
      if (!server.jobs) throw new Error("videos go through jobs, and this server has no jobs bucket (SEG_JOBS_BUCKET)");
      $("result").hidden = true;
      showVideo(await segmentVideo(chosen, { confidence: Number(confidence) }, { setStatus, setProgress }));
      setStatus("");
      setProgress(null);
      return;
    }
    const answer =
      route(chosen) === "job"
        ? await segmentAsJob({ masks: "none", overlay: true, confidence: Number(confidence), ...cut })
        : await segmentInOneRequest({
            masks: "none",
            overlay: "true",
            confidence,
            ...(cutouts.checked ? { format: "cutouts" } : {}),
          });
    showResult(answer);
    setStatus("");
  } catch (error) {
    $("result").hidden = true;
    showGallery(null);
    setStatus("");
    setProgress(null);
    showError(error instanceof TypeError ? "the server could not be reached" : error.message);
  } finally {
    submit.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

// The model's own classes (COCO's 80 by default, or a custom model's), as /healthz names them.
function showModel(model) {
  const lead = document.getElementById("lead");
  const coco = model.classes === 80 && model.class_names[0] === "person";
  const which = coco ? "the 80 COCO classes" : `its ${model.classes} classes (${model.class_names.join(", ")})`;
  lead.textContent = `PointRend (${model.backbone}) finds objects of ${which} and outlines each one.`;
  lead.title = model.class_names.join(", ");
}

async function loadDefaults() {
  try {
    const response = await fetch("healthz");
    if (response.ok) {
      const { defaults, model } = await response.json();
      showModel(model);
      slider.value = String(defaults.confidence);
      server.maxImageBytes = defaults.max_image_bytes;
      server.jobs = Boolean(defaults.jobs);
    }
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
