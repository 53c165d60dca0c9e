// The jobs flow, for files too large for one request (and HEIC/HEIF): POST jobs, the file straight to S3
// with the presigned form (XMLHttpRequest, for real upload progress), then GET jobs/<id> until done or failed.

const FIRST_POLL_MS = 1000;
const MAX_POLL_MS = 5000;

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

export async function createJob(file, options) {
  const body = { filename: file.name, ...options };
  if (file.type.startsWith("image/")) body.content_type = file.type;
  const response = await fetch("jobs", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
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

export async function waitForJob(job, onStatus) {
  let delay = FIRST_POLL_MS;
  for (;;) {
    const response = await fetch(`jobs/${job.job_id}`);
    if (!response.ok) throw await serviceError(response);
    const state = await response.json();
    if (state.status === "done") return state;
    if (state.status === "failed") throw new JobError(state.error.message);
    onStatus(state.status);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 1.5, MAX_POLL_MS);
  }
}
