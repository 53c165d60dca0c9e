// The cut-outs gallery: one picture per object with a link that downloads it, from the zip's PNGs (blob:
// URLs, released when the gallery is replaced) or a job's presigned S3 URLs (S3 answers them as downloads).

let objectUrls = [];

function release() {
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
}

function blobUrl(blob) {
  const url = URL.createObjectURL(blob);
  objectUrls.push(url);
  return url;
}

function item({ name, url }) {
  const li = document.createElement("li");
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.src = url;
  img.alt = `object ${name.replace(/\.png$/, "")}`;
  const caption = document.createElement("figcaption");
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.textContent = name;
  caption.appendChild(link);
  figure.append(img, caption);
  li.appendChild(figure);
  return li;
}

// pictures: [{name, url}] or [{name, blob}]; zip: the whole zip as a Blob, or null. Null pictures hide it.
export function showGallery(pictures, zip) {
  release();
  const section = document.getElementById("cutouts-section");
  const list = document.getElementById("gallery");
  const all = document.getElementById("cutouts-zip");
  if (!pictures) {
    list.replaceChildren();
    section.hidden = true;
    return;
  }
  list.replaceChildren(...pictures.map((p) => item({ name: p.name, url: p.url ?? blobUrl(p.blob) })));
  all.hidden = !zip;
  if (zip) all.href = blobUrl(zip);
  document.getElementById("cutouts-count").textContent =
    pictures.length === 1 ? "1 object" : `${pictures.length} objects`;
  section.hidden = false;
}
