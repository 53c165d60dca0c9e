// The jobs flow, for files too large for one request (and HEIC/HEIF): POST jobs, the file straight to S3
// with the presigned form (XMLHttpRequest, for real upload progress), then GET jobs/<id> until done or failed.

const FIRST_POLL_MS = 1000;
const MAX_POLL_MS = 5000;
// 429 (API Gateway's throttling), 503 (busy, out of time, S3 unavailable) and other 5xx pass if asked
// again later: retried with capped exponential backoff, or after the Retry-After the answer names.
const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);
const RETRIES = 6;
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// How long to wait before retry number attempt + 1: Retry-After (seconds or a date) when given, else
// 1 s, 2 s, 4 s, ... with jitter; never more than MAX_RETRY_MS.
export function retryDelayMs(response, attempt) {
  const advised = (response.headers.get("Retry-After") || "").trim();
  if (/^\d+$/.test(advised)) return Math.min(Number(advised) * 1000, MAX_RETRY_MS);
  const date = Date.parse(advised);
  if (!Number.isNaN(date)) return Math.min(Math.max(0, date - Date.now()), MAX_RETRY_MS);
  return Math.min(FIRST_RETRY_MS * 2 ** attempt, MAX_RETRY_MS) * (0.5 + Math.random() / 2);
}

// fetch, retried on RETRY_STATUSES; onWait(message) says what it is waiting for. The last answer when the
// retries run out.
export async function fetchRetrying(url, init, onWait) {
  for (let attempt = 0; ; attempt += 1) {
    const response = await fetch(url, init);
    if (!RETRY_STATUSES.has(response.status) || attempt >= RETRIES) return response;
    const delay = retryDelayMs(response, attempt);
    onWait(
      `The server is busy (${response.status}); retrying in ${Math.max(1, Math.round(delay / 1000))} s ` +
        `(${attempt + 1} of ${RETRIES})…`,
    );
    await sleep(delay);
  }
}

export class JobError extends Error {}

// The service's JSON error body, or S3's XML one (<Error><Code/><Message/></Error>), as one message.
async function serviceError(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return new JobError(body.error.message);
  } catch (_) {
    // not JSON
  }
  return new JobError(`the server answered ${response.status} ${response.statusText}`.trim());
}

function s3Error(xhr) {
  const xml = xhr.responseXML || new DOMParser().parseFromString(xhr.responseText || "", "application/xml");
  const code = xml.querySelector("Code")?.textContent;
  const message = xml.querySelector("Message")?.textContent;
  if (code === "EntityTooLarge") return new JobError("the file is larger than the upload allows");
  if (code) return new JobError(`the upload was refused: ${message || code} (${code})`);
  return new JobError(xhr.status ? `the upload was refused (${xhr.status})` : "the storage could not be reached");
}

export async function createJob(file, options, onWait = () => {}) {
  const body = { filename: file.name, ...options };
  if (file.type.startsWith("image/") || file.type.startsWith("video/")) body.content_type = file.type;
  const init = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetchRetrying("jobs", init, onWait);
  if (response.status !== 201) throw await serviceError(response);
  return response.json();
}

// Resolves when S3 has the file; onProgress(fraction) as the bytes leave the browser.
export function upload(job, file, onProgress) {
  const form = new FormData();
  for (const [name, value] of Object.entries(job.upload.fields)) form.append(name, value);
  form.append("file", file); // S3 ignores every field after the file
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", job.upload.url);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => (xhr.status < 300 ? resolve() : reject(s3Error(xhr))));
    xhr.addEventListener("error", () => reject(s3Error(xhr)));
    xhr.send(form);
  });
}

// A done job inlines its result only when small; a larger one is fetched from result_url (a presigned GET of
// the stored JSON, from the jobs bucket).
// A video job's result is JSON Lines (result_url) and its overlay a video (video_url): nothing to fetch here.
async function withResult(state, onWait) {
  if (state.result || state.video_url) return state;
  const response = await fetchRetrying(state.result_url, undefined, onWait);
  if (!response.ok) throw new JobError(`the result could not be fetched (${response.status})`);
  return { ...state, result: await response.json() };
}

// onStatus(status, state) after each poll (a video job's state has its progress); onWait(message) while a poll
// waits to be retried.
export async function waitForJob(job, onStatus, onWait = () => {}) {
  let delay = FIRST_POLL_MS;
  for (;;) {
    const response = await fetchRetrying(`jobs/${job.job_id}`, undefined, onWait);
    if (!response.ok) throw await serviceError(response);
    const state = await response.json();
    if (state.status === "done") return withResult(state, onWait);
    if (state.status === "failed") throw new JobError(state.error.message);
    onStatus(state.status, state);
    await sleep(delay);
    delay = Math.min(delay * 1.5, MAX_POLL_MS);
  }
}
