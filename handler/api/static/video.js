// Videos on the upload page: always a job (the worker fans the frames out to a Step Functions run), the
// progress in frames while it runs, then the overlay played in a <video> element from its short-lived URL.
import { createJob, upload, waitForJob } from "./jobs.js";

const $ = (id) => document.getElementById(id);
const VIDEO_NAME = /\.(mp4|m4v|mov|webm|mkv|avi)$/i;

export const isVideo = (file) => file.type.startsWith("video/") || VIDEO_NAME.test(file.name);

function progressText(state) {
  const progress = state && state.progress;
  if (!progress) return "Segmenting: reading the video…";
  return `Segmenting: ${progress.frames_done} of ${progress.frames_total} frames`;
}

// ui: {setStatus(text), setProgress(fraction | null)}; resolves with the done job's state.
export async function segmentVideo(file, options, ui) {
  const job = await createJob(file, options, ui.setStatus);
  ui.setStatus(`Uploading ${(file.size / 1024 / 1024).toFixed(1)} MB…`);
  ui.setProgress(0);
  await upload(job, file, ui.setProgress);
  ui.setProgress(null);
  ui.setStatus("Uploaded; waiting for the video's run to start…");
  return waitForJob(
    job,
    (status, state) => {
      if (status !== "processing") return ui.setStatus("Waiting for the upload to arrive…");
      ui.setStatus(progressText(state));
      const progress = state.progress;
      ui.setProgress(progress ? progress.frames_done / Math.max(1, progress.frames_total) : null);
    },
    ui.setStatus,
  );
}

export function showVideo(state) {
  const video = $("video");
  video.src = state.video_url;
  $("video-lines").href = state.result_url;
  $("video-summary").textContent = `${(state.result_bytes / 1024).toFixed(0)} KB of per-frame results`;
  $("video-result").hidden = false;
}

export function hideVideo() {
  $("video-result").hidden = true;
  $("video").removeAttribute("src");
}
