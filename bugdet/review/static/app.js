// bugdet review page: plain JavaScript, no libraries, talks only to this server's /api.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { info: null, run: null, clusterOpen: null, clusterOffset: 0, pageSize: 48, textResults: [],
                frames: [], frameIndex: 0, prompt: { points: [], labels: [], box: null }, preview: null,
                frameOffset: 0, framePageSize: 200, framesTotal: 0,
                flagStatus: "pending", flagOffset: 0, flagPageSize: 24, map: null, viewerMask: null };

// ---------------------------------------------------------------- helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" },
                                           body: JSON.stringify(body) };
  const res = await fetch(path, opts);
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) throw new Error((data && data.error) || `${res.status} ${res.statusText}`);
  return data;
}

let messageTimer = null;
function say(text, kind = "ok") {
  const box = $("#message");
  box.textContent = text;
  box.className = `message ${kind}`;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => box.classList.add("hidden"), kind === "error" ? 9000 : 5000);
}

function who() {
  const name = $("#who").value.trim();
  if (!name) {
    $("#who").focus();
    $("#who").classList.add("attention");
    throw new Error("Enter your name at the top first: it is stored with every decision.");
  }
  return name;
}

async function act(fn) {
  try { await fn(); } catch (e) { say(e.message, "error"); }
}

function statusBadge(status) {
  if (!status) return el("span", { class: "badge none", text: "undecided" });
  return el("span", { class: `badge ${status}`, text: status === "keep" ? "kept" : status === "reject" ? "rejected" : status });
}

function palette(n) {  // same hues as the cluster summary image
  const out = [];
  for (let i = 0; i < Math.max(n, 1); i++) {
    const h = (i * 0.618034) % 1.0, l = i % 2 ? 45 : 60;
    out.push(`hsl(${Math.round(h * 360)}, 85%, ${l}%)`);
  }
  return out;
}

function thumb(maskId, extra = {}) {
  return el("img", { class: "thumb", src: `/api/masks/${maskId}/thumb.png`, alt: `mask ${maskId}`, loading: "lazy",
                     title: `mask ${maskId} (click to see it on its frame)`, onclick: () => openMask(maskId), ...extra });
}

// "masks 1-48 of 120" and the Previous/Next buttons of a paged list (ids PREFIX-page/-prev/-next).
function showPage(prefix, noun, data, shown) {
  const last = Math.min(data.offset + shown, data.total);
  $(`#${prefix}-page`).textContent = `${noun} ${data.total ? data.offset + 1 : 0}-${last} of ${data.total}`;
  $(`#${prefix}-prev`).disabled = data.offset === 0;
  $(`#${prefix}-next`).disabled = last >= data.total;
}

const utc = (t) => new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);

// ---------------------------------------------------------------- header
async function loadInfo() {
  const info = state.info = await api("/api/info");
  $("#project-name").textContent = `project "${info.project}"`;
  const c = info.counts;
  $("#counts").textContent = `${c.frames} frames, ${c.masks} masks (${c.embedded_masks} embedded), ` +
    `${c.cluster_runs} clustering runs, ${c.flags_pending} flags to review`;
  const banner = $("#model-banner");
  if (!info.model.pretrained) {
    banner.textContent = `Model ${info.model.label} is UNPRETRAINED (random weights): text-prompt rankings and ` +
      "clusters do not reflect meaning. The buttons still record real decisions.";
    banner.classList.remove("hidden");
  } else banner.classList.add("hidden");
  const select = $("#run-select");
  select.replaceChildren(...info.runs.map((r) => el("option", { value: r.id, text: `run ${r.id}: ${r.k} clusters, ${r.n_points} masks` })));
  if (info.runs.length && state.run === null) state.run = info.runs[0].id;
  if (state.run !== null) select.value = state.run;
}

// ---------------------------------------------------------------- clusters
async function loadClusters() {
  const grid = $("#cluster-grid");
  if (state.run === null) { grid.replaceChildren(el("p", { class: "muted", text: "No clustering run yet: run `bugdet cluster` first." })); return; }
  const data = await api(`/api/clusters?run=${state.run}`);
  const colours = palette(data.run.k);
  grid.replaceChildren(...data.clusters.map((c) => {
    const verdict = c.verdict ? el("span", { class: `badge ${c.verdict.action}`,
      text: `${c.verdict.action === "keep" ? "kept" : "rejected"} by ${c.verdict.who}` }) : el("span", { class: "badge none", text: "no verdict" });
    return el("div", { class: "card cluster", "data-cluster": c.cluster },
      el("div", { class: "card-head" }, swatch(colours[c.cluster]), el("h3", { text: `Cluster ${c.cluster}` }), verdict),
      el("p", { class: "muted", text: `${c.size} masks, ${c.in_bank} in the bank; ${c.kept} kept, ${c.rejected} rejected` }),
      el("div", { class: "thumbs small" }, ...c.exemplars.map((m) => thumb(m))),
      el("div", { class: "buttons" },
        el("button", { class: "secondary", text: "Open", onclick: () => openCluster(c.cluster, 0) }),
        el("button", { class: "keep", text: "Keep cluster", onclick: () => act(() => decideCluster(c.cluster, "keep")) }),
        el("button", { class: "reject", text: "Reject cluster", onclick: () => act(() => decideCluster(c.cluster, "reject")) })));
  }));
}

function swatch(colour) {
  const s = el("span", { class: "swatch" });
  s.style.background = colour;
  return s;
}

async function decideCluster(cluster, action) {
  const res = await api(`/api/clusters/${cluster}/decision`, { action, run: state.run, who: who() });
  say(`${action === "keep" ? "Kept" : "Rejected"} cluster ${cluster}: ${res.matched} masks. (Undo in History.)`);
  await refreshAll();
}

async function openCluster(cluster, offset) {
  state.clusterOpen = cluster; state.clusterOffset = Math.max(0, offset);
  const data = await api(`/api/clusters/${cluster}/masks?run=${state.run}&offset=${state.clusterOffset}&limit=${state.pageSize}`);
  $("#cluster-detail").classList.remove("hidden");
  $("#cluster-title").textContent = `Cluster ${cluster}`;
  showPage("cluster", "masks", data, data.masks.length);
  $("#cluster-masks").replaceChildren(...data.masks.map((m) =>
    el("figure", { class: "tile" }, thumb(m.mask_id), el("figcaption", {}, `#${m.mask_id} `, statusBadge(m.status)))));
  $("#cluster-detail").scrollIntoView({ block: "nearest" });
}

// ---------------------------------------------------------------- mask viewer
async function openMask(maskId) {
  const info = await api(`/api/masks/${maskId}`);
  state.viewerMask = maskId;
  $("#mask-viewer-img").src = `/api/masks/${maskId}/overlay.png`;
  $("#mask-viewer-info").replaceChildren(
    `Mask ${maskId} on frame ${info.frame_id}: ${info.area} px, made by ${info.backend}` +
    (info.cluster ? `, cluster ${info.cluster.cluster} of run ${info.cluster.run}` : "") + ". Status: ", statusBadge(info.status));
  $("#mask-viewer").classList.remove("hidden");
}

async function decideMasks(ids, action, context) {
  const res = await api("/api/masks/decision", { mask_ids: ids, action, who: who(), context });
  say(`${action === "keep" ? "Kept" : "Rejected"} ${res.count} mask${res.count === 1 ? "" : "s"}. (Undo in History.)`);
  return res;
}

// ---------------------------------------------------------------- embedding map
async function loadMap() {
  if (state.run === null) return;
  const data = state.map = await api(`/api/map?run=${state.run}`);
  drawMap();
}

function drawMap() {
  const canvas = $("#map-canvas"), ctx = canvas.getContext("2d"), data = state.map;
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!data) return;
  const colours = palette(data.k);
  ctx.fillStyle = "#333"; ctx.font = "13px sans-serif";
  ctx.fillText(`${data.projection}, run ${data.run}: ${data.points.length} masks` + (data.sampled ? " (sampled)" : ""), 10, 18);
  for (const p of data.points) {
    const [x, y] = mapXY(p);
    ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI);
    ctx.fillStyle = colours[p.cluster]; ctx.globalAlpha = p.status === "reject" ? 0.25 : 0.9; ctx.fill();
    ctx.globalAlpha = 1;
    if (p.status === "reject") { ctx.strokeStyle = "#900"; ctx.stroke(); }
  }
  for (let c = 0; c < Math.min(data.k, 24); c++) {
    ctx.fillStyle = colours[c]; ctx.beginPath(); ctx.arc(canvas.width - 110, 40 + c * 18, 5, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = "#333"; ctx.fillText(`cluster ${c}`, canvas.width - 98, 44 + c * 18);
  }
}

function mapXY(p) {
  const canvas = $("#map-canvas");
  return [30 + p.x * (canvas.width - 170), 30 + p.y * (canvas.height - 60)];
}

function mapClick(ev) {
  if (!state.map) return;
  const canvas = $("#map-canvas"), r = canvas.getBoundingClientRect();
  const x = (ev.clientX - r.left) * canvas.width / r.width, y = (ev.clientY - r.top) * canvas.height / r.height;
  let best = null, bestD = 12 * 12;
  for (const p of state.map.points) {
    const [px, py] = mapXY(p), d = (px - x) ** 2 + (py - y) ** 2;
    if (d < bestD) { best = p; bestD = d; }
  }
  if (!best) return;
  $("#map-side").replaceChildren(
    el("h3", { text: `Mask ${best.mask_id}, cluster ${best.cluster}` }),
    el("img", { class: "overlay", src: `/api/masks/${best.mask_id}/overlay.png`, alt: `mask ${best.mask_id} on its frame` }),
    el("p", {}, thumb(best.mask_id), " ", statusBadge(best.status)),
    el("div", { class: "buttons" },
      el("button", { class: "keep", text: "Keep mask", onclick: () => act(async () => { await decideMasks([best.mask_id], "keep", "map"); await loadMap(); }) }),
      el("button", { class: "reject", text: "Reject mask", onclick: () => act(async () => { await decideMasks([best.mask_id], "reject", "map"); await loadMap(); }) })));
}

// ---------------------------------------------------------------- text prompts
async function searchText() {
  const prompt = $("#text-prompt").value.trim();
  if (!prompt) throw new Error("Type what to look for, e.g. tree");
  $("#text-note").textContent = "Searching...";
  const data = await api("/api/text/rank", { prompt, limit: Number($("#text-limit").value) });
  state.textResults = data.results.map((r) => ({ ...r, selected: true }));
  state.textPrompt = data.prompts.join(", ");
  $("#text-note").textContent = `Top ${data.results.length} of ${data.searched} masks for "${state.textPrompt}", most similar first` +
    (data.pretrained ? "." : " (UNPRETRAINED model: the order is arbitrary).");
  if (data.results.length) $("#text-threshold").value = data.results[data.results.length - 1].score.toFixed(3);
  $("#text-actions").classList.remove("hidden");
  renderText();
}

function renderText() {
  $("#text-results").replaceChildren(...state.textResults.map((r, i) => {
    const box = el("input", { type: "checkbox", "data-mask": r.mask_id, onchange: (e) => { state.textResults[i].selected = e.target.checked; countSelected(); } });
    box.checked = r.selected;
    return el("figure", { class: "tile" + (r.selected ? "" : " unselected") }, thumb(r.mask_id),
      el("figcaption", {}, el("label", {}, box, ` ${r.score.toFixed(3)} `), statusBadge(r.status)));
  }));
  countSelected();
}

function countSelected() {
  const n = state.textResults.filter((r) => r.selected).length;
  $("#text-keep").textContent = `Keep selected (${n})`;
  $("#text-reject").textContent = `Reject selected (${n})`;
}

async function decideText(action) {
  const ids = state.textResults.filter((r) => r.selected).map((r) => r.mask_id);
  if (!ids.length) throw new Error("Select at least one result first");
  await decideMasks(ids, action, `text prompt '${state.textPrompt}'`);
  await searchText();
}

async function textRule(action) {
  const threshold = Number($("#text-threshold").value);
  const res = await api("/api/text/rule", { prompt: state.textPrompt, action, threshold, who: who() });
  say(`Rule recorded: ${action} every mask with similarity >= ${threshold} to "${state.textPrompt}" (${res.matched} of ${res.evaluated} masks now; new captures too).`);
  await searchText();
}

// ---------------------------------------------------------------- geometry prompts
// The picker holds one page of frames; Previous/Next frame step across pages.
async function loadFrames(offset = state.frameOffset, index = state.frameIndex) {
  const data = await api(`/api/frames?offset=${Math.max(0, offset)}&limit=${state.framePageSize}`);
  state.frames = data.frames; state.frameOffset = data.offset; state.framesTotal = data.total;
  $("#frame-select").replaceChildren(...data.frames.map((f, i) =>
    el("option", { value: i, text: `#${f.frame_id} (${f.split || "no split"}, ${f.width}x${f.height})` })));
  showPage("frames", "frames", data, data.frames.length);
  if (data.frames.length) await showFrame(Math.min(index, data.frames.length - 1));
  else $("#draw-info").textContent = data.total ? "No frames on this page." : "No frames in this project yet: run `bugdet ingest` first.";
}

async function stepFrame(delta) {
  const index = state.frameIndex + delta;
  if (index >= state.frames.length && state.frameOffset + state.frames.length < state.framesTotal)
    return loadFrames(state.frameOffset + state.frames.length, 0);
  if (index < 0 && state.frameOffset > 0)
    return loadFrames(Math.max(0, state.frameOffset - state.framePageSize), state.framePageSize - 1);
  await showFrame(index);
}

async function showFrame(index) {
  state.frameIndex = Math.max(0, Math.min(index, state.frames.length - 1));
  $("#frame-select").value = state.frameIndex;
  clearPrompt();
  const frame = state.frames[state.frameIndex];
  // Let the server do this frame's segmentation groundwork while the picture loads.
  api(`/api/frames/${frame.frame_id}/prepare`, {}).catch((e) => { $("#draw-info").textContent = e.message; });
  const img = new Image();
  img.src = `/api/frames/${frame.frame_id}/image.png`;
  await img.decode();
  state.frameImage = img;
  const canvas = $("#draw-canvas");
  const scale = Math.min(720 / frame.width, 540 / frame.height);
  canvas.width = Math.round(frame.width * scale); canvas.height = Math.round(frame.height * scale);
  state.drawScale = scale;
  drawCanvas();
  await loadSaved();
}

async function loadSaved() {
  const frame = state.frames[state.frameIndex];
  const data = await api(`/api/frames/${frame.frame_id}/masks`);
  $("#draw-saved").replaceChildren(...(data.masks.length ? data.masks.map((m) =>
    el("li", {}, thumb(m.mask_id), ` ${m.role} mask #${m.mask_id}, ${m.area} px`)) : [el("li", { class: "muted", text: "nothing yet" })]));
}

function drawCanvas() {
  const canvas = $("#draw-canvas"), ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  if (state.frameImage) ctx.drawImage(state.frameImage, 0, 0, canvas.width, canvas.height);
  if (state.preview) ctx.drawImage(state.preview, 0, 0, canvas.width, canvas.height);
  const s = state.drawScale || 1, p = state.prompt;
  const box = state.dragBox || p.box;
  if (box) { ctx.strokeStyle = "#0cf"; ctx.lineWidth = 2; ctx.strokeRect(box[0] * s, box[1] * s, (box[2] - box[0]) * s, (box[3] - box[1]) * s); }
  p.points.forEach(([x, y], i) => {
    ctx.beginPath(); ctx.arc(x * s, y * s, 7, 0, 2 * Math.PI);
    ctx.fillStyle = p.labels[i] ? "#1a7f37" : "#c62828"; ctx.fill();
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 2; ctx.stroke();
    ctx.fillStyle = "#fff"; ctx.font = "bold 12px sans-serif"; ctx.fillText(p.labels[i] ? "+" : "\u2212", x * s - 4, y * s + 4);
  });
}

function imageXY(ev) {
  const canvas = $("#draw-canvas"), r = canvas.getBoundingClientRect(), f = state.frames[state.frameIndex];
  const x = (ev.clientX - r.left) / r.width * f.width, y = (ev.clientY - r.top) / r.height * f.height;
  return [Math.max(0, Math.min(f.width - 0.5, x)), Math.max(0, Math.min(f.height - 0.5, y))];
}

function mode() { return document.querySelector("input[name=draw-mode]:checked").value; }

function canvasDown(ev) {
  if (mode() !== "box") return;
  state.dragStart = imageXY(ev);
}

function canvasMove(ev) {
  if (mode() !== "box" || !state.dragStart) return;
  const [x, y] = imageXY(ev), [x0, y0] = state.dragStart;
  state.dragBox = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x), Math.max(y0, y)];
  drawCanvas();
}

function canvasUp(ev) {
  if (mode() === "box") {
    if (!state.dragStart) return;
    const [x, y] = imageXY(ev), [x0, y0] = state.dragStart;
    state.dragStart = null; state.dragBox = null;
    if (Math.abs(x - x0) < 2 || Math.abs(y - y0) < 2) { say("Drag to draw a box: press, move, release.", "error"); drawCanvas(); return; }
    state.prompt.box = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x), Math.max(y0, y)].map((v) => Math.round(v * 10) / 10);
  } else {
    const [x, y] = imageXY(ev);
    state.prompt.points.push([Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
    state.prompt.labels.push(mode() === "pos" ? 1 : 0);
  }
  drawCanvas();
  act(previewMask);
}

function promptBody() {
  const p = state.prompt;
  return { points: p.points, labels: p.labels, box: p.box };
}

async function previewMask() {
  const p = state.prompt;
  if (!p.box && !p.labels.includes(1)) { $("#draw-info").textContent = "Add an object point (+) or a box: background points alone do not say which object."; return; }
  const frame = state.frames[state.frameIndex];
  const started = performance.now();
  let res;
  try {
    res = await api(`/api/frames/${frame.frame_id}/predict`, promptBody());
  } catch (e) {
    state.preview = null; drawCanvas(); setSaveEnabled(false);
    $("#draw-info").textContent = e.message;
    throw e;
  }
  const layer = new Image(); layer.src = res.overlay; await layer.decode();
  state.preview = layer;
  drawCanvas();
  setSaveEnabled(true);
  const made = res.backend === "engine" ? "the engine's object IDs" : res.backend;
  $("#draw-info").textContent = `Mask preview: ${res.area} px (${Math.round(100 * res.frame_fraction)}% of the frame), ` +
    `quality ${res.score.toFixed(2)} (${made}); ` +
    `${Math.round(performance.now() - started)} ms` + (res.frame_cached ? "" : " (first prompt on this frame)") + ".";
  $("#draw-info").dataset.area = res.area;
  state.previewFilling = res.frame_filling;
  const warning = $("#draw-warning");
  warning.textContent = res.warning || "";
  warning.classList.toggle("hidden", !res.frame_filling);
}

function setSaveEnabled(on) { $("#draw-save-source").disabled = !on; $("#draw-save-weapon").disabled = !on; }

function clearPrompt() {
  state.prompt = { points: [], labels: [], box: null }; state.preview = null; state.dragBox = null; state.dragStart = null;
  state.previewFilling = false;
  $("#draw-warning").classList.add("hidden");
  setSaveEnabled(false);
  $("#draw-info").textContent = "Click on an object (or drag a box around it) to preview its mask.";
  drawCanvas();
}

async function saveMask(role) {
  const frame = state.frames[state.frameIndex];
  const body = { ...promptBody(), role, who: who() };
  if (role === "weapon" && state.previewFilling) {
    // The server refuses a frame-filling weapon mask (it would teach FPPC training that the whole
    // frame is the weapon) unless the tester confirms it here.
    if (!window.confirm("This mask covers most of the frame. Save it as the weapon mask anyway?")) return;
    body.confirm = true;
  }
  const res = await api(`/api/frames/${frame.frame_id}/save`, body);
  say(`Saved ${role === "weapon" ? "weapon mask" : "source mask"} #${res.mask_id} (${res.area} px) on frame ${frame.frame_id}.`);
  clearPrompt();
  await loadSaved();
}

// ---------------------------------------------------------------- flags
async function loadFlags() {
  const page = () => api(`/api/flags?status=${state.flagStatus}&offset=${state.flagOffset}&limit=${state.flagPageSize}`);
  let data = await page();
  if (!data.flags.length && data.offset > 0) {  // every flag on this page was decided: show the last page left
    state.flagOffset = Math.max(0, Math.floor((data.total - 1) / state.flagPageSize) * state.flagPageSize);
    data = await page();
  }
  showPage("flags", "flags", data, data.flags.length);
  document.querySelectorAll(".flag-filter").forEach((b) => {
    b.classList.toggle("active", b.dataset.status === state.flagStatus);
    const names = { pending: "To review", confirmed: "Confirmed", rejected: "Rejected", all: "All" };
    b.textContent = `${names[b.dataset.status]} (${data.counts[b.dataset.status]})`;
  });
  const list = $("#flag-list");
  if (!data.flags.length) { list.replaceChildren(el("p", { class: "muted", text: "Nothing here." })); return; }
  list.replaceChildren(...data.flags.map((f) => {
    const frame = el("div", { class: "flag-frame" }, el("img", { src: `/api/frames/${f.frame_id}/image.png`, alt: `frame ${f.frame_id}` }));
    if (f.box) {
      const b = el("div", { class: "flag-box", title: "where the detector localises the bug" });
      b.style.left = `${f.box[0] * 100}%`; b.style.top = `${f.box[1] * 100}%`;
      b.style.width = `${(f.box[2] - f.box[0]) * 100}%`; b.style.height = `${(f.box[3] - f.box[1]) * 100}%`;
      frame.append(b);
    }
    const status = f.status === "pending" ? el("span", { class: "badge none", text: "to review" })
      : el("span", { class: `badge ${f.status}`, text: `${f.status} by ${f.reviewed_by}` });
    return el("div", { class: "card flag", "data-flag": f.id },
      frame,
      el("div", { class: "card-head" }, el("h3", { text: f.bug_type.replace(/_/g, " ") }), status),
      el("p", { class: "muted", text: `score ${f.score.toFixed(3)} (flagged at >= ${f.threshold ?? "?"}), detector ${f.model}, ` +
                                      `playtest ${f.playtest} frame ${f.frame_index}` }),
      el("div", { class: "buttons" },
        el("button", { class: "reject", text: "Yes, it is a bug", onclick: () => act(() => decideFlag(f.id, "confirm")) }),
        el("button", { class: "keep", text: "No, false alarm", onclick: () => act(() => decideFlag(f.id, "reject")) })));
  }));
}

async function decideFlag(id, verdict) {
  await api(`/api/flags/${id}/decision`, { verdict, who: who() });
  say(verdict === "confirm" ? `Flag ${id} confirmed as a bug: labelled for the next training.` : `Flag ${id} rejected as a false alarm: labelled for the next training.`);
  await loadFlags();
  await loadInfo();
}

// ---------------------------------------------------------------- history
async function loadHistory() {
  const data = await api("/api/history?limit=500");
  $("#history-table tbody").replaceChildren(...data.entries.map((e) => el("tr", { "data-key": e.key, class: e.revoked_at ? "revoked" : "" },
    el("td", { text: utc(e.at) }), el("td", { text: e.who }), el("td", { text: e.action }), el("td", { text: e.summary }),
    el("td", { text: e.revoked_at ? `undone ${utc(e.revoked_at)}` : "standing" }),
    el("td", {}, e.revoked_at ? "" : el("button", { class: "secondary", text: "Undo", onclick: () => act(() => undo({ key: e.key })) })))));
}

async function undo(body) {
  const res = await api("/api/undo", body);
  say(`Undone: ${res.entry.summary}`);
  await refreshAll();
}

// ---------------------------------------------------------------- views
const loaders = { clusters: loadClusters, map: loadMap, text: async () => {}, draw: async () => { if (!state.frames.length) await loadFrames(); },
                  flags: loadFlags, history: loadHistory };
let currentView = "clusters";

async function show(view) {
  currentView = view;
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  document.querySelectorAll(".view").forEach((v) => v.classList.toggle("hidden", v.id !== `view-${view}`));
  location.hash = view;
  await loaders[view]();
}

async function refreshAll() {
  await loadInfo();
  await loaders[currentView]();
  if (state.clusterOpen !== null && currentView === "clusters") await openCluster(state.clusterOpen, state.clusterOffset);
}

function wire() {
  const saved = localStorage.getItem("bugdet-review-who");
  if (saved) $("#who").value = saved;
  $("#who").addEventListener("input", () => { localStorage.setItem("bugdet-review-who", $("#who").value.trim()); $("#who").classList.remove("attention"); });
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => act(() => show(t.dataset.view))));
  $("#undo-last").addEventListener("click", () => act(() => undo({ last: true, who: who() })));
  $("#run-select").addEventListener("change", () => act(async () => { state.run = Number($("#run-select").value); state.clusterOpen = null; $("#cluster-detail").classList.add("hidden"); await loaders[currentView](); }));
  $("#cluster-prev").addEventListener("click", () => act(() => openCluster(state.clusterOpen, state.clusterOffset - state.pageSize)));
  $("#cluster-next").addEventListener("click", () => act(() => openCluster(state.clusterOpen, state.clusterOffset + state.pageSize)));
  $("#cluster-close").addEventListener("click", () => { state.clusterOpen = null; $("#cluster-detail").classList.add("hidden"); });
  $("#mask-viewer-close").addEventListener("click", () => $("#mask-viewer").classList.add("hidden"));
  $("#mask-viewer").addEventListener("click", (e) => { if (e.target.id === "mask-viewer") $("#mask-viewer").classList.add("hidden"); });
  for (const action of ["keep", "reject"]) {
    $(`#mask-viewer-${action}`).addEventListener("click", () => act(async () => {
      await decideMasks([state.viewerMask], action, "mask viewer");
      $("#mask-viewer").classList.add("hidden");
      await refreshAll();
    }));
  }
  $("#map-canvas").addEventListener("click", mapClick);
  $("#text-search").addEventListener("click", () => act(searchText));
  $("#text-prompt").addEventListener("keydown", (e) => { if (e.key === "Enter") act(searchText); });
  $("#text-select-all").addEventListener("click", () => { state.textResults.forEach((r) => { r.selected = true; }); renderText(); });
  $("#text-select-none").addEventListener("click", () => { state.textResults.forEach((r) => { r.selected = false; }); renderText(); });
  $("#text-keep").addEventListener("click", () => act(() => decideText("keep")));
  $("#text-reject").addEventListener("click", () => act(() => decideText("reject")));
  $("#text-rule-keep").addEventListener("click", () => act(() => textRule("keep")));
  $("#text-rule-reject").addEventListener("click", () => act(() => textRule("reject")));
  const canvas = $("#draw-canvas");
  canvas.addEventListener("mousedown", canvasDown);
  canvas.addEventListener("mousemove", canvasMove);
  canvas.addEventListener("mouseup", canvasUp);
  $("#frame-prev").addEventListener("click", () => act(() => stepFrame(-1)));
  $("#frame-next").addEventListener("click", () => act(() => stepFrame(1)));
  $("#frames-prev").addEventListener("click", () => act(() => loadFrames(state.frameOffset - state.framePageSize, 0)));
  $("#frames-next").addEventListener("click", () => act(() => loadFrames(state.frameOffset + state.framePageSize, 0)));
  $("#frame-select").addEventListener("change", () => act(() => showFrame(Number($("#frame-select").value))));
  $("#draw-clear").addEventListener("click", clearPrompt);
  $("#draw-save-source").addEventListener("click", () => act(() => saveMask("source")));
  $("#draw-save-weapon").addEventListener("click", () => act(() => saveMask("weapon")));
  document.querySelectorAll(".flag-filter").forEach((b) => b.addEventListener("click", () => act(async () => { state.flagStatus = b.dataset.status; state.flagOffset = 0; await loadFlags(); })));
  $("#flags-prev").addEventListener("click", () => act(async () => { state.flagOffset = Math.max(0, state.flagOffset - state.flagPageSize); await loadFlags(); }));
  $("#flags-next").addEventListener("click", () => act(async () => { state.flagOffset += state.flagPageSize; await loadFlags(); }));
}

window.addEventListener("DOMContentLoaded", () => act(async () => {
  wire();
  await loadInfo();
  const view = location.hash.slice(1);
  await show(loaders[view] ? view : "clusters");
  document.body.dataset.ready = "1";
}));
