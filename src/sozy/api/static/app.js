// Sozy web page: pick, drop or snap a photo, POST it to /v1/search, show each face's lookalikes.
// Plain ES module, no dependencies, nothing loaded from elsewhere.

const $ = (id) => document.getElementById(id);
const PALETTE = ["#7c5cff", "#ff6b6b", "#1fb5a8", "#ffb020", "#3d8bfd", "#e05ac2", "#5bbf4a", "#ff8a3d"];
const MATCHES_PER_FACE = 5;

const MESSAGES = {
  no_face: ["No face found", "We couldn't find a face in this photo. Try a clear, well-lit photo where the face looks at the camera."],
  too_large: ["Photo too big", "This photo is larger than the server accepts. Try a smaller or more compressed copy."],
  too_many_pixels: ["Photo too big", "This photo has too many pixels. Try a smaller copy."],
  not_an_image: ["Not a photo", "That file isn't a photo we can read. Use a JPEG, PNG, WebP, GIF or BMP image."],
  corrupt_image: ["Damaged photo", "This image file seems damaged or incomplete. Try another copy of it."],
  empty_image: ["Empty file", "That file is empty. Choose a photo."],
  unsupported_media_type: ["Not a photo", "That file isn't a photo we can read. Use a JPEG, PNG, WebP, GIF or BMP image."],
  rate_limited: ["Slow down a little", "You've searched a lot in a short time."],
  overloaded: ["Server busy", "Lots of people are searching right now."],
  not_ready: ["Server starting", "The search service is still starting up."],
};

const state = { controller: null, photoUrl: null, stream: null };

function init() {
  const dropzone = $("dropzone");
  const fileInput = $("file");
  $("choose").addEventListener("click", (event) => {
    event.stopPropagation();
    fileInput.click();
  });
  dropzone.addEventListener("click", () => fileInput.click());
  dropzone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      fileInput.click();
    }
  });
  fileInput.addEventListener("change", () => {
    if (fileInput.files && fileInput.files[0]) search(fileInput.files[0]);
    fileInput.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      dropzone.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    dropzone.addEventListener(name, () => dropzone.classList.remove("over"));
  }
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) search(file);
  });
  // A photo pasted from the clipboard works too.
  document.addEventListener("paste", (event) => {
    const item = [...(event.clipboardData?.items || [])].find((i) => i.kind === "file");
    if (item) search(item.getAsFile());
  });
  $("again").addEventListener("click", reset);
  if (navigator.mediaDevices && typeof navigator.mediaDevices.getUserMedia === "function") {
    const webcam = $("webcam");
    webcam.hidden = false;
    webcam.addEventListener("click", (event) => {
      event.stopPropagation();
      openCamera();
    });
    $("snap").addEventListener("click", snap);
    $("camera-cancel").addEventListener("click", closeCamera);
  }
  loadStats();
}

async function loadStats() {
  try {
    const response = await fetch("/v1/stats");
    if (!response.ok) return;
    const stats = await response.json();
    const n = new Intl.NumberFormat();
    $("stats").textContent = `${n.format(stats.faces)} faces · ${n.format(stats.people)} people`;
  } catch {
    // Stats are decoration; the page works without them.
  }
}

// -- searching -----------------------------------------------------------------------------

async function search(file) {
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  hideError();
  closeCamera();
  showPhoto(file);
  $("busy").hidden = false;
  const form = new FormData();
  form.append("image", file, file.name || "photo");
  let response;
  let body = null;
  try {
    response = await fetch(`/v1/search?k=${MATCHES_PER_FACE}`, { method: "POST", body: form, signal: controller.signal });
    body = await response.json().catch(() => null);
  } catch (error) {
    if (error.name === "AbortError") return;
    fail("Can't reach Sozy", "Check your connection and try again.");
    return;
  }
  if (controller !== state.controller) return;
  state.controller = null;
  $("busy").hidden = true;
  if (!response.ok) {
    const code = body && body.error ? body.error.code : "";
    const retry = response.headers.get("Retry-After");
    let [title, text] = MESSAGES[code] || ["Something went wrong", body?.error?.message || `The server answered ${response.status}.`];
    if (retry && (response.status === 429 || response.status === 503)) text += ` Please try again in ${retry} s.`;
    else if (response.status === 503) text += " Please try again in a moment.";
    fail(title, text, code);
    return;
  }
  await render(body);
}

function showPhoto(file) {
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  const img = $("photo");
  img.src = state.photoUrl;
  $("boxes").replaceChildren();
  $("faces").replaceChildren();
  $("took").textContent = "";
  $("results").hidden = false;
  $("picker").hidden = true;
}

function reset() {
  if (state.controller) state.controller.abort();
  state.controller = null;
  $("results").hidden = true;
  $("picker").hidden = false;
  hideError();
  $("dropzone").focus();
}

function fail(title, text, code = "") {
  $("busy").hidden = true;
  $("results").hidden = true;
  $("picker").hidden = false;
  const box = $("error");
  box.dataset.code = code;
  $("error-title").textContent = title;
  $("error-text").textContent = " " + text;
  box.hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

// -- results -------------------------------------------------------------------------------

async function render(result) {
  const img = $("photo");
  try {
    await img.decode();
  } catch {
    // The browser can't show this format (e.g. BMP in some); boxes need its size, the cards don't.
  }
  const width = img.naturalWidth || 1;
  const height = img.naturalHeight || 1;
  const boxes = $("boxes");
  const faces = $("faces");
  result.faces.forEach((face, index) => {
    const color = PALETTE[index % PALETTE.length];
    boxes.append(faceBox(face.box, width, height, index, color, result.faces.length));
    faces.append(faceSection(face, index, color, result.faces.length, img));
  });
  const count = result.faces.length;
  $("took").textContent = `${count} face${count === 1 ? "" : "s"} · ${Math.round(result.took_ms)} ms`;
}

function faceBox(box, width, height, index, color, count) {
  const el = document.createElement("button");
  el.type = "button";
  el.className = "box";
  el.style.setProperty("--c", color);
  el.style.left = `${(100 * box.left) / width}%`;
  el.style.top = `${(100 * box.top) / height}%`;
  el.style.width = `${(100 * (box.right - box.left)) / width}%`;
  el.style.height = `${(100 * (box.bottom - box.top)) / height}%`;
  el.setAttribute("aria-label", `Face ${index + 1}`);
  if (count > 1) {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = String(index + 1);
    el.append(tag);
  }
  el.addEventListener("click", () => document.getElementById(`face-${index}`)?.scrollIntoView({ behavior: "smooth" }));
  return el;
}

function faceSection(face, index, color, count, photo) {
  const section = $("face-template").content.firstElementChild.cloneNode(true);
  section.id = `face-${index}`;
  section.style.setProperty("--c", color);
  const you = section.querySelector(".you");
  drawCrop(you, photo, face.box);
  const best = face.matches[0];
  const who = count > 1 ? `Face ${index + 1} looks` : "You look";
  const title = section.querySelector(".face-title");
  const sub = section.querySelector(".face-sub");
  if (!best) {
    title.textContent = count > 1 ? `Face ${index + 1}` : "No lookalike yet";
    sub.textContent = "Nobody in the index yet.";
  } else {
    title.textContent = `${who} most like ${displayName(best.name)}`;
    // Below the same-person threshold a lookalike is more likely the person themselves: say so.
    sub.textContent = best.same_person
      ? `Same person: this face is very likely ${displayName(best.name)}.`
      : `${Math.round(best.similarity)}% similar.`;
  }
  const list = section.querySelector(".cards");
  face.matches.forEach((match) => list.append(card(match)));
  return section;
}

function card(match) {
  const li = $("card-template").content.firstElementChild.cloneNode(true);
  const name = displayName(match.name);
  li.querySelector(".name").textContent = name;
  li.querySelector(".name").title = name;
  const pct = Math.max(0, Math.min(100, match.similarity));
  li.querySelector(".meter-fill").style.width = `${pct}%`;
  li.querySelector(".meter").setAttribute("aria-valuenow", String(pct));
  li.querySelector(".meter").setAttribute("aria-label", `${pct}% similar`);
  li.querySelector(".pct").textContent = `${Math.round(pct)}% similar`;
  li.querySelector(".badge").hidden = !match.same_person;
  if (match.unnamed) li.classList.add("unnamed");
  // The raw figure behind the score, for the curious (hover) and for tests.
  li.dataset.distance = String(match.distance);
  li.querySelector(".score").title = `L2 distance ${Number(match.distance).toFixed(3)}`;
  const link = li.querySelector(".source");
  const href = [match.page_url, match.image_url].find(isWebUrl);
  if (href) {
    link.href = href;
    link.textContent = hostOf(href);
  } else {
    link.remove();
  }
  credit(li.querySelector(".license"), match);
  li.querySelector(".initials").textContent = initials(name);
  drawPortrait(li.querySelector(".portrait"), match);
  return li;
}

// Author and licence, each a link when there is one: the author to the photo's page
// (where its credit line and licence terms are), the licence to its text.
function credit(line, match) {
  const parts = [
    [match.attribution, match.page_url, "author"],
    [match.license, match.license_url, "licence"],
  ].filter(([text]) => text);
  parts.forEach(([text, href, role], i) => {
    if (i) line.append(" · ");
    const part = document.createElement(isWebUrl(href) ? "a" : "span");
    part.className = role;
    part.textContent = text;
    if (part.tagName === "A") {
      part.href = href;
      part.target = "_blank";
      part.rel = role === "licence" ? "license noopener noreferrer" : "noopener noreferrer nofollow";
    }
    line.append(part);
  });
  // Commons marks photos whose subject's consent may be needed beyond this use.
  if ((match.restrictions || []).includes("personality")) {
    const note = document.createElement("span");
    note.className = "restriction";
    note.textContent = "personality rights";
    note.title = "The person shown may have rights over uses of this photo beyond this one (Commons' personality rights notice).";
    if (parts.length) line.append(" · ");
    line.append(note);
  }
  line.title = parts.map(([text]) => text).join(" · ");
}

// A crop this API serves (/thumbnails/<id>.jpg), a data: image or a web URL.
function isThumbnail(url) {
  const text = String(url || "");
  return isWebUrl(text) || text.startsWith("data:image/") || /^\/thumbnails\/[0-9a-f-]{36}\.jpg$/.test(text);
}

function drawPortrait(frame, match) {
  const canvas = frame.querySelector("canvas");
  const source = isThumbnail(match.thumbnail_url)
    ? { url: match.thumbnail_url, box: null }
    : isWebUrl(match.image_url) ? { url: match.image_url, box: match.box } : null;
  if (!source) return;
  const img = new Image();
  img.decoding = "async";
  img.referrerPolicy = "no-referrer";
  img.onload = () => {
    if (source.box) drawCrop(canvas, img, source.box);
    else drawCover(canvas, img);
    frame.classList.add("loaded");
  };
  img.src = source.url;
}

// Draw the face in `box` (plus a margin) of `img` into a square canvas.
function drawCrop(canvas, img, box) {
  const w = img.naturalWidth;
  const h = img.naturalHeight;
  if (!w || !h || !box) return;
  const size = Math.max(box.right - box.left, box.bottom - box.top) * 1.5;
  const cx = (box.left + box.right) / 2;
  const cy = (box.top + box.bottom) / 2 - (box.bottom - box.top) * 0.08;
  const side = Math.min(size, w, h);
  const sx = Math.min(Math.max(cx - side / 2, 0), w - side);
  const sy = Math.min(Math.max(cy - side / 2, 0), h - side);
  paint(canvas, img, sx, sy, side, side);
}

function drawCover(canvas, img) {
  const w = img.naturalWidth;
  const h = img.naturalHeight;
  const side = Math.min(w, h);
  paint(canvas, img, (w - side) / 2, (h - side) / 2, side, side);
}

function paint(canvas, img, sx, sy, sw, sh) {
  const ratio = window.devicePixelRatio || 1;
  const css = canvas.getBoundingClientRect().width || canvas.width;
  canvas.width = Math.round(css * ratio);
  canvas.height = Math.round(css * ratio);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(img, sx, sy, sw, sh, 0, 0, canvas.width, canvas.height);
  canvas.classList.add("drawn");
}

// -- webcam --------------------------------------------------------------------------------

async function openCamera() {
  hideError();
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user", width: { ideal: 1280 } }, audio: false });
  } catch (error) {
    fail("No webcam", "The camera could not be opened (" + (error.name || "blocked") + "). You can still choose a photo.");
    return;
  }
  $("video").srcObject = state.stream;
  $("camera").hidden = false;
  $("picker").hidden = true;
}

function snap() {
  const video = $("video");
  if (!video.videoWidth) return;
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => {
    if (blob) search(new File([blob], "webcam.jpg", { type: "image/jpeg" }));
  }, "image/jpeg", 0.92);
}

function closeCamera() {
  if (state.stream) {
    for (const track of state.stream.getTracks()) track.stop();
    state.stream = null;
  }
  if (!$("camera").hidden) {
    $("camera").hidden = true;
    $("picker").hidden = false;
  }
}

// -- small helpers -------------------------------------------------------------------------

function displayName(name) {
  if (!name) return "Unnamed face";
  const spaced = name.replace(/_/g, " ").trim();
  // Folder names like "kit_harington" read better capitalised; real names keep their case.
  return spaced === spaced.toLowerCase() ? spaced.replace(/\b\p{L}/gu, (c) => c.toUpperCase()) : spaced;
}

function initials(name) {
  const words = name.split(/\s+/).filter(Boolean);
  return (words[0]?.[0] || "?").toUpperCase() + (words.length > 1 ? words[words.length - 1][0].toUpperCase() : "");
}

function isWebUrl(value) {
  return typeof value === "string" && /^https?:\/\//i.test(value);
}

function hostOf(url) {
  try {
    return new URL(url).hostname.replace(/^www\./, "");
  } catch {
    return "Source";
  }
}

init();
