// bugdet review page: plain JavaScript, no libraries, talks only to this server's /api.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { info: null, run: null, clusterOpen: null, clusterOffset: 0, pageSize: 96, textResults: [],
                clusterMasks: [], clusterShow: "all", selected: new Set(), selectAnchor: null,
                frames: [], frameIndex: 0, prompt: { points: [], labels: [], box: null }, preview: null,
                frameOffset: 0, framePageSize: 40, framesTotal: 0, drawView: { scale: 1, tx: 0, ty: 0 },
                flagStatus: "pending", flagOffset: 0, flagPageSize: 24, flags: [],
                map: null, mapView: { scale: 1, tx: 0, ty: 0 }, mapMode: "pan", mapSelected: new Set(), mapFocus: null,
                viewerMask: null, viewerList: [], viewerFlag: null,
                cursor: { clusters: 0, cluster: 0, text: 0, flags: 0 } };

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
  showProgress($("#run-progress"), data.progress, "masks decided in this run");
  grid.replaceChildren(...data.clusters.map((c) => {
    const verdict = c.verdict ? el("span", { class: `badge ${c.verdict.action}`,
      text: `${c.verdict.action === "keep" ? "kept" : "rejected"} by ${c.verdict.who}` }) : el("span", { class: "badge none", text: "no verdict" });
    return el("div", { class: "card cluster", "data-cluster": c.cluster },
      el("div", { class: "card-head" }, swatch(colours[c.cluster]), el("h3", { text: `Cluster ${c.cluster}` }), verdict),
      el("p", { class: "muted", text: `${c.size} masks, ${c.in_bank} in the bank; ${c.kept} kept, ${c.rejected} rejected, ` +
                                      `${c.size - c.decided} undecided` }),
      el("div", { class: "thumbs small" }, ...c.exemplars.map((m) => thumb(m))),
      el("div", { class: "buttons" },
        el("button", { class: "secondary", text: "Open", onclick: () => openCluster(c.cluster, 0) }),
        el("button", { class: "keep", text: "Keep cluster", onclick: () => act(() => decideCluster(c.cluster, "keep")) }),
        el("button", { class: "reject", text: "Reject cluster", onclick: () => act(() => decideCluster(c.cluster, "reject")) })));
  }));
  applyCursor("clusters");
}

// "x of y decided" with a bar; progress is {decided, total, kept?, rejected?}.
function showProgress(node, progress, noun) {
  const pct = progress.total ? Math.round(100 * progress.decided / progress.total) : 0;
  const bar = el("progress", { max: progress.total || 1, value: progress.decided });
  const detail = progress.kept === undefined ? "" : ` (${progress.kept} kept, ${progress.rejected} rejected)`;
  node.replaceChildren(bar, ` ${progress.decided} of ${progress.total} ${noun}${detail}, ${pct}%`);
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

// Each open (or close) is a new generation: an open whose answer arrives after the tester closed
// the cluster, or opened another, draws nothing (a refresh after a decision used to reopen a
// cluster closed with Esc while the refresh was in flight).
let clusterGeneration = 0;

async function openCluster(cluster, offset) {
  const fresh = state.clusterOpen !== cluster;
  const generation = ++clusterGeneration;
  state.clusterOpen = cluster; state.clusterOffset = Math.max(0, offset);
  let data = await api(`/api/clusters/${cluster}/masks?run=${state.run}&offset=${state.clusterOffset}` +
                       `&limit=${state.pageSize}&show=${state.clusterShow}`);
  if (generation !== clusterGeneration) return;
  if (!data.masks.length && data.offset > 0) {  // the page emptied (undecided only): step back to the last one left
    state.clusterOffset = Math.max(0, Math.floor((data.total - 1) / state.pageSize) * state.pageSize);
    data = await api(`/api/clusters/${cluster}/masks?run=${state.run}&offset=${state.clusterOffset}` +
                     `&limit=${state.pageSize}&show=${state.clusterShow}`);
    if (generation !== clusterGeneration) return;
  }
  state.clusterMasks = data.masks;
  const listed = new Set(data.masks.map((m) => m.mask_id));
  state.selected = new Set([...state.selected].filter((id) => listed.has(id)));
  if (fresh) { state.cursor.cluster = 0; state.selected.clear(); state.selectAnchor = null; }
  $("#cluster-detail").classList.remove("hidden");
  $("#cluster-title").textContent = `Cluster ${cluster}`;
  showPage("cluster", state.clusterShow === "undecided" ? "undecided masks" : "masks", data, data.masks.length);
  showProgress($("#cluster-progress"), { decided: data.decided, total: data.size }, "decided in this cluster");
  document.querySelectorAll("#cluster-detail .seg").forEach((b) => setPressed(b, b.dataset.show === state.clusterShow));
  const ids = data.masks.map((m) => m.mask_id);
  $("#cluster-masks").replaceChildren(...(data.masks.length ? data.masks.map((m, i) =>
    el("figure", { class: "tile selectable", "data-mask": m.mask_id, "data-index": i,
                   onclick: (e) => selectTile(i, e), ondblclick: () => act(() => openMask(m.mask_id, ids)) },
      el("img", { class: "thumb", src: `/api/masks/${m.mask_id}/thumb.png`, alt: `mask ${m.mask_id}`, loading: "lazy", draggable: "false",
                  title: `mask ${m.mask_id}: click to select, double-click to see it on its frame` }),
      el("figcaption", {}, `#${m.mask_id} `, statusBadge(m.status)))) :
    [el("p", { class: "muted", text: state.clusterShow === "undecided" ? "Every mask of this cluster is decided." : "This cluster is empty." })]));
  renderSelection();
  applyCursor("cluster");
  if (fresh) $("#cluster-detail").scrollIntoView({ block: "nearest" });
}

function setPressed(button, on) {
  button.classList.toggle("active", on);
  button.setAttribute("aria-pressed", on ? "true" : "false");
}

// Click: only this one; Shift+click: the range from the last clicked; Ctrl/Cmd+click: toggle one.
function selectTile(index, ev) {
  const id = state.clusterMasks[index].mask_id;
  if (ev.shiftKey && state.selectAnchor !== null) {
    if (!(ev.ctrlKey || ev.metaKey)) state.selected.clear();
    const [a, b] = [Math.min(state.selectAnchor, index), Math.max(state.selectAnchor, index)];
    for (let i = a; i <= b; i++) state.selected.add(state.clusterMasks[i].mask_id);
  } else if (ev.ctrlKey || ev.metaKey) {
    toggleSelected(id);
    state.selectAnchor = index;
  } else {
    const only = state.selected.size === 1 && state.selected.has(id);
    state.selected.clear();
    if (!only) state.selected.add(id);
    state.selectAnchor = index;
  }
  state.cursor.cluster = index;
  renderSelection();
  applyCursor("cluster");
}

function toggleSelected(id) {
  if (state.selected.has(id)) state.selected.delete(id); else state.selected.add(id);
}

function selectAllInCluster(on) {
  state.selected = new Set(on ? state.clusterMasks.map((m) => m.mask_id) : []);
  renderSelection();
}

function renderSelection() {
  document.querySelectorAll("#cluster-masks .tile").forEach((t) => t.classList.toggle("selected", state.selected.has(Number(t.dataset.mask))));
  const n = state.selected.size;
  $("#cluster-keep").textContent = `Keep selected (${n})`;
  $("#cluster-reject").textContent = `Reject selected (${n})`;
  $("#cluster-keep").disabled = $("#cluster-reject").disabled = n === 0;
}

// One request for the whole selection: the server records it all or nothing, as one undoable entry.
async function decideSelection(action) {
  const ids = state.clusterMasks.map((m) => m.mask_id).filter((id) => state.selected.has(id));
  if (!ids.length) throw new Error("Select masks first: click, Shift+click or Select all");
  await decideMasks(ids, action, `cluster ${state.clusterOpen} of run ${state.run}`);
  state.selected.clear();
  await refreshAll();
}

// ---------------------------------------------------------------- mask viewer
async function openMask(maskId, list = null) {
  const info = await api(`/api/masks/${maskId}`);
  state.viewerMask = maskId;
  if (list) state.viewerList = list;
  else if (!state.viewerList.includes(maskId)) state.viewerList = [maskId];
  const at = state.viewerList.indexOf(maskId);
  $("#mask-viewer-prev").disabled = at <= 0;
  $("#mask-viewer-next").disabled = at >= state.viewerList.length - 1;
  $("#mask-viewer-img").src = `/api/masks/${maskId}/overlay.png`;
  $("#mask-viewer-info").replaceChildren(
    `Mask ${maskId} on frame ${info.frame_id}: ${info.area} px, made by ${info.backend}` +
    (info.cluster ? `, cluster ${info.cluster.cluster} of run ${info.cluster.run}` : "") + ". Status: ", statusBadge(info.status));
  $("#mask-viewer").classList.remove("hidden");
}

async function stepViewer(delta) {
  const at = state.viewerList.indexOf(state.viewerMask) + delta;
  if (at >= 0 && at < state.viewerList.length) await openMask(state.viewerList[at]);
}

// Keep/reject the mask in the viewer, then show the next one of the list (the keyboard loop: k, k, r, ...).
async function decideViewer(action) {
  await decideMasks([state.viewerMask], action, "mask viewer");
  const at = state.viewerList.indexOf(state.viewerMask);
  if (at >= 0 && at < state.viewerList.length - 1) await openMask(state.viewerList[at + 1]);
  else closeModal("#mask-viewer");
  await refreshAll();
}

function closeModal(sel) { $(sel).classList.add("hidden"); }

async function decideMasks(ids, action, context) {
  const res = await api("/api/masks/decision", { mask_ids: ids, action, who: who(), context });
  say(`${action === "keep" ? "Kept" : "Rejected"} ${res.count} mask${res.count === 1 ? "" : "s"}. (Undo in History.)`);
  return res;
}

// ---------------------------------------------------------------- embedding map
// Points are drawn from the API's 0..1 coordinates; the view (wheel zoom, drag pan) is a scale and
// offset applied on top, so hit tests, hover and selection all work in canvas pixels.
const MAP_LEGEND = 140, MAP_DOT = 5;

async function loadMap() {
  if (state.run === null) return;
  const data = state.map = await api(`/api/map?run=${state.run}`);
  const present = new Set(data.points.map((p) => p.mask_id));
  state.mapSelected = new Set([...state.mapSelected].filter((id) => present.has(id)));
  if (state.mapFocus !== null && !present.has(state.mapFocus)) state.mapFocus = null;
  drawMap();
  renderMapSelection();
}

let mapCanvasNode = null;  // looked up once: mapXY runs for every dot on every pointer move
function mapBase(p) {
  const canvas = mapCanvasNode || (mapCanvasNode = $("#map-canvas"));
  return [30 + p.x * (canvas.width - MAP_LEGEND - 60), 30 + p.y * (canvas.height - 60)];
}

function mapXY(p) {  // canvas pixels of a point under the current zoom and pan
  const [bx, by] = mapBase(p), v = state.mapView;
  return [bx * v.scale + v.tx, by * v.scale + v.ty];
}

function canvasXY(canvas, ev) {
  const r = canvas.getBoundingClientRect();
  return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
}

function drawMap() {
  const canvas = $("#map-canvas"), ctx = canvas.getContext("2d"), data = state.map;
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!data) return;
  const colours = palette(data.k), plotW = canvas.width - MAP_LEGEND;
  ctx.save();
  ctx.beginPath(); ctx.rect(0, 0, plotW, canvas.height); ctx.clip();
  let focus = null;
  for (const p of data.points) {
    const [x, y] = mapXY(p);
    if (x < -MAP_DOT || y < -MAP_DOT || x > plotW + MAP_DOT || y > canvas.height + MAP_DOT) continue;
    ctx.beginPath(); ctx.arc(x, y, MAP_DOT, 0, 2 * Math.PI);
    ctx.fillStyle = colours[p.cluster]; ctx.globalAlpha = p.status === "reject" ? 0.25 : 0.9; ctx.fill();
    ctx.globalAlpha = 1;
    if (state.mapSelected.has(p.mask_id)) { ctx.strokeStyle = "#111"; ctx.lineWidth = 2.5; ctx.stroke(); }
    else if (p.status === "reject") { ctx.strokeStyle = "#900"; ctx.lineWidth = 1; ctx.stroke(); }
    if (p.mask_id === state.mapFocus) focus = [x, y];
  }
  if (focus) {  // the clicked point: a ring and cross hairs that stand out at any zoom
    ctx.lineWidth = 3; ctx.strokeStyle = "#fff";
    ctx.beginPath(); ctx.arc(focus[0], focus[1], 11, 0, 2 * Math.PI); ctx.stroke();
    ctx.lineWidth = 2; ctx.strokeStyle = "#000";
    ctx.beginPath(); ctx.arc(focus[0], focus[1], 11, 0, 2 * Math.PI); ctx.stroke();
    ctx.beginPath();
    for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) { ctx.moveTo(focus[0] + dx * 13, focus[1] + dy * 13); ctx.lineTo(focus[0] + dx * 20, focus[1] + dy * 20); }
    ctx.stroke();
  }
  const drag = state.mapDrag;
  if (drag && drag.mode !== "pan" && drag.moved) {
    ctx.setLineDash([5, 4]); ctx.strokeStyle = "#1a3fa0"; ctx.lineWidth = 1.5; ctx.fillStyle = "rgba(51,103,214,.12)";
    ctx.beginPath();
    if (drag.mode === "box") ctx.rect(drag.start[0], drag.start[1], drag.at[0] - drag.start[0], drag.at[1] - drag.start[1]);
    else drag.path.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath(); ctx.fill(); ctx.stroke(); ctx.setLineDash([]);
  }
  ctx.restore();
  ctx.fillStyle = "#fff"; ctx.fillRect(plotW, 0, MAP_LEGEND, canvas.height);
  ctx.fillStyle = "#333"; ctx.font = "13px sans-serif";
  ctx.fillText(`${data.projection}, run ${data.run}: ${data.points.length} masks` + (data.sampled ? " (sampled)" : "") +
               (state.mapView.scale > 1.01 ? `, zoom ${state.mapView.scale.toFixed(1)}x` : ""), 10, 18);
  for (let c = 0; c < Math.min(data.k, 24); c++) {
    ctx.fillStyle = colours[c]; ctx.beginPath(); ctx.arc(plotW + 20, 40 + c * 18, 5, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = "#333"; ctx.fillText(`cluster ${c}`, plotW + 32, 44 + c * 18);
  }
}

function mapHit(x, y, radius = 10) {
  let best = null, bestD = radius * radius;
  for (const p of state.map ? state.map.points : []) {
    const [px, py] = mapXY(p), d = (px - x) ** 2 + (py - y) ** 2;
    if (d < bestD) { best = p; bestD = d; }
  }
  return best;
}

function insidePolygon([x, y], poly) {  // even-odd ray casting
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function mapDown(ev) {
  if (!state.map || ev.button !== 0) return;
  const canvas = $("#map-canvas"), at = canvasXY(canvas, ev);
  canvas.setPointerCapture(ev.pointerId);
  state.mapDrag = { mode: ev.shiftKey ? "box" : state.mapMode, start: at, at, last: at, path: [at], moved: false, add: ev.ctrlKey || ev.metaKey };
  hideMapHover();
}

function mapMove(ev) {
  const canvas = $("#map-canvas"), at = canvasXY(canvas, ev), drag = state.mapDrag;
  if (!drag) return showMapHover(ev, at);
  if (Math.hypot(at[0] - drag.start[0], at[1] - drag.start[1]) > 4) drag.moved = true;
  if (drag.mode === "pan") { state.mapView.tx += at[0] - drag.last[0]; state.mapView.ty += at[1] - drag.last[1]; }
  else if (drag.mode === "lasso") drag.path.push(at);
  drag.at = at; drag.last = at;
  drawMap();
}

function mapUp(ev) {
  const drag = state.mapDrag;
  if (!drag) return;
  state.mapDrag = null;
  if (!drag.moved) { mapClick(mapHit(...drag.start)); return; }
  if (drag.mode === "pan") return;
  let inside;
  if (drag.mode === "box") {
    const [x0, x1] = [Math.min(drag.start[0], drag.at[0]), Math.max(drag.start[0], drag.at[0])];
    const [y0, y1] = [Math.min(drag.start[1], drag.at[1]), Math.max(drag.start[1], drag.at[1])];
    inside = (x, y) => x >= x0 && x <= x1 && y >= y0 && y <= y1;
  } else inside = (x, y) => insidePolygon([x, y], drag.path);
  if (!drag.add) state.mapSelected.clear();
  const plotW = $("#map-canvas").width - MAP_LEGEND;
  for (const p of state.map.points) {
    const [x, y] = mapXY(p);
    if (x <= plotW && inside(x, y)) state.mapSelected.add(p.mask_id);
  }
  drawMap();
  renderMapSelection();
}

// Wheel zoom of a {scale, tx, ty} view about the canvas point under the pointer, which stays put.
function zoomAt(view, [x, y], deltaY, maxScale) {
  const scale = Math.min(maxScale, Math.max(1, view.scale * Math.exp(-deltaY * 0.0015)));
  view.tx = x - (x - view.tx) * (scale / view.scale); view.ty = y - (y - view.ty) * (scale / view.scale);
  view.scale = scale;
  if (scale === 1) { view.tx = 0; view.ty = 0; }
}

function mapWheel(ev) {
  if (!state.map) return;
  ev.preventDefault();
  zoomAt(state.mapView, canvasXY($("#map-canvas"), ev), ev.deltaY, 60);
  hideMapHover();
  drawMap();
}

function showMapHover(ev, at) {
  const hit = mapHit(...at), img = $("#map-hover");
  if (!hit) return hideMapHover();
  const wrap = $("#map-wrap").getBoundingClientRect();
  if (img.dataset.mask !== String(hit.mask_id)) { img.src = `/api/masks/${hit.mask_id}/thumb.png`; img.dataset.mask = hit.mask_id; }
  img.alt = `mask ${hit.mask_id}`;
  const x = ev.clientX - wrap.left;  // beside the pointer, on whichever side has room
  img.style.left = `${x + 124 < wrap.width ? x + 14 : x - 114}px`;
  img.style.top = `${Math.max(0, ev.clientY - wrap.top - 110)}px`;
  img.classList.remove("hidden");
  $("#map-canvas").style.cursor = "pointer";
}

function hideMapHover() {
  $("#map-hover").classList.add("hidden");
  $("#map-canvas").style.cursor = state.mapMode === "pan" ? "grab" : "crosshair";
}

function resetMapView() { state.mapView = { scale: 1, tx: 0, ty: 0 }; drawMap(); }

function mapClick(best) {
  if (!best) return;
  state.mapFocus = best.mask_id;
  drawMap();
  $("#map-focus").replaceChildren(
    el("h3", { text: `Mask ${best.mask_id}, cluster ${best.cluster}` }),
    el("img", { class: "overlay", src: `/api/masks/${best.mask_id}/overlay.png`, alt: `mask ${best.mask_id} on its frame` }),
    el("p", {}, thumb(best.mask_id), " ", statusBadge(best.status)),
    el("div", { class: "buttons" },
      el("button", { class: "keep", text: "Keep mask", onclick: () => act(() => decideMap([best.mask_id], "keep")) }),
      el("button", { class: "reject", text: "Reject mask", onclick: () => act(() => decideMap([best.mask_id], "reject")) })));
}

function renderMapSelection() {
  const ids = [...state.mapSelected], box = $("#map-selection");
  if (!ids.length) { box.replaceChildren(el("p", { class: "muted", text: "No selection: Shift+drag a box (or pick a drag mode above)." })); return; }
  const shown = ids.slice(0, 40);
  box.replaceChildren(
    el("h3", { text: `${ids.length} mask${ids.length === 1 ? "" : "s"} selected` }),
    el("div", { class: "buttons" },
      el("button", { id: "map-keep", class: "keep", text: `Keep selected (${ids.length})`, onclick: () => act(() => decideMap(ids, "keep")) }),
      el("button", { id: "map-reject", class: "reject", text: `Reject selected (${ids.length})`, onclick: () => act(() => decideMap(ids, "reject")) }),
      el("button", { class: "secondary", text: "Clear", onclick: () => { state.mapSelected.clear(); drawMap(); renderMapSelection(); } })),
    el("div", { class: "thumbs small" }, ...shown.map((id) => thumb(id, { onclick: () => act(() => openMask(id, ids)) }))),
    ...(ids.length > shown.length ? [el("p", { class: "muted", text: `and ${ids.length - shown.length} more` })] : []));
}

// The map's selection (or its clicked dot) as one all-or-nothing decision.
async function decideMap(ids, action) {
  if (!ids.length) throw new Error("Select dots first (Shift+drag) or click one");
  await decideMasks(ids, action, ids.length > 1 ? `embedding map selection of ${ids.length}` : "embedding map");
  state.mapSelected.clear();
  await loadMap();
  await loadInfo();
  if (state.mapFocus !== null) mapClick(state.map.points.find((p) => p.mask_id === state.mapFocus) || null);
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
  const ids = state.textResults.map((r) => r.mask_id);
  $("#text-results").replaceChildren(...state.textResults.map((r, i) => {
    const box = el("input", { type: "checkbox", "data-mask": r.mask_id, onchange: (e) => { state.textResults[i].selected = e.target.checked; countSelected(); } });
    box.checked = r.selected;
    return el("figure", { class: "tile" + (r.selected ? "" : " unselected"), "data-mask": r.mask_id },
      thumb(r.mask_id, { onclick: () => act(() => openMask(r.mask_id, ids)) }),
      el("figcaption", {}, el("label", {}, box, ` ${r.score.toFixed(3)} `), statusBadge(r.status)));
  }));
  countSelected();
  applyCursor("text");
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
// The strip holds one page of the frames that match the filters (the server filters and pages);
// Previous/Next frame step across pages.
function frameQuery() {
  const q = new URLSearchParams({ split: $("#frame-split").value, labeled: $("#frame-labeled").value,
                                  flagged: $("#frame-flagged").value, has_masks: $("#frame-has-masks").value,
                                  q: $("#frame-search").value.trim() });
  return q.toString();
}

async function loadFrames(offset = state.frameOffset, index = state.frameIndex) {
  const data = await api(`/api/frames?offset=${Math.max(0, offset)}&limit=${state.framePageSize}&${frameQuery()}`);
  state.frames = data.frames; state.frameOffset = data.offset; state.framesTotal = data.total;
  const split = $("#frame-split"), chosen = split.value;
  split.replaceChildren(el("option", { value: "", text: "any" }),
    ...data.splits.map((s) => el("option", { value: s || "(none)", text: s || "(none)" })));
  split.value = chosen;
  $("#frame-strip").replaceChildren(...data.frames.map((f, i) =>
    el("figure", { class: "frame-tile", "data-frame": f.frame_id, title: `${f.name}: frame #${f.frame_id}, ${f.width}x${f.height}`,
                   onclick: () => act(() => showFrame(i)) },
      el("img", { src: `/api/frames/${f.frame_id}/thumb.png`, alt: `frame ${f.frame_id}`, loading: "lazy", draggable: "false" }),
      el("figcaption", {}, el("span", { class: "name", text: `#${f.frame_id} ${f.name}` }),
        el("span", { class: "badges" },
          f.split ? el("span", { class: "badge", text: f.split }) : null,
          f.masks ? el("span", { class: "badge", text: `${f.masks} masks` }) : null,
          f.flags ? el("span", { class: "badge confirmed", text: "flagged" }) : null,
          f.labeled ? el("span", { class: "badge keep", text: "labeled" }) : null)))));
  showPage("frames", "frames", data, data.frames.length);
  if (data.frames.length) await showFrame(Math.min(index, data.frames.length - 1));
  else {
    state.frameImage = undefined; state.frameIndex = 0;
    const canvas = $("#draw-canvas");
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    $("#draw-info").textContent = data.total ? "No frames on this page." : frameFiltersActive()
      ? "No frame matches these filters." : "No frames in this project yet: run `bugdet ingest` first.";
    $("#draw-saved").replaceChildren();
  }
}

function frameFiltersActive() {
  return $("#frame-search").value.trim() !== "" || $("#frame-split").value !== "" ||
    ["#frame-labeled", "#frame-flagged", "#frame-has-masks"].some((sel) => $(sel).value !== "any");
}

let frameSearchTimer = null;
function frameFiltersChanged(delay = 0) {
  clearTimeout(frameSearchTimer);
  frameSearchTimer = setTimeout(() => act(() => loadFrames(0, 0)), delay);
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
  document.querySelectorAll("#frame-strip .frame-tile").forEach((t, i) => t.classList.toggle("active", i === state.frameIndex));
  const tile = document.querySelectorAll("#frame-strip .frame-tile")[state.frameIndex];
  if (tile) tile.scrollIntoView({ block: "nearest", inline: "nearest" });
  clearPrompt();
  const frame = state.frames[state.frameIndex];
  // Let the server do this frame's segmentation groundwork while the picture loads.
  api(`/api/frames/${frame.frame_id}/prepare`, {}).catch((e) => { $("#draw-info").textContent = e.message; });
  const img = new Image();
  img.src = `/api/frames/${frame.frame_id}/image.png`;
  await img.decode();
  state.frameImage = img;
  const canvas = $("#draw-canvas");
  const scale = Math.min(640 / frame.width, 480 / frame.height);  // fits a laptop screen under the strip
  canvas.width = Math.round(frame.width * scale); canvas.height = Math.round(frame.height * scale);
  state.drawScale = scale;
  state.drawView = { scale: 1, tx: 0, ty: 0 };
  drawCanvas();
  await loadSaved();
}

async function loadSaved() {
  const frame = state.frames[state.frameIndex];
  const data = await api(`/api/frames/${frame.frame_id}/masks`);
  $("#draw-saved").replaceChildren(...(data.masks.length ? data.masks.map((m) =>
    el("li", {}, thumb(m.mask_id), ` ${m.role} mask #${m.mask_id}, ${m.area} px`)) : [el("li", { class: "muted", text: "nothing yet" })]));
}

// Image pixel -> canvas pixel under the drawing zoom (drawScale fits the frame, drawView zooms and pans).
function toCanvas(ix, iy) {
  const s = state.drawScale || 1, v = state.drawView;
  return [ix * s * v.scale + v.tx, iy * s * v.scale + v.ty];
}

function drawCanvas() {
  const canvas = $("#draw-canvas"), ctx = canvas.getContext("2d"), v = state.drawView;
  ctx.imageSmoothingEnabled = false;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.setTransform(v.scale, 0, 0, v.scale, v.tx, v.ty);
  if (state.frameImage) ctx.drawImage(state.frameImage, 0, 0, canvas.width, canvas.height);
  if (state.preview) ctx.drawImage(state.preview, 0, 0, canvas.width, canvas.height);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  const p = state.prompt, box = state.dragBox || p.box;
  if (box) {
    const [x0, y0] = toCanvas(box[0], box[1]), [x1, y1] = toCanvas(box[2], box[3]);
    ctx.strokeStyle = "#0cf"; ctx.lineWidth = 2; ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  }
  p.points.forEach(([ix, iy], i) => {
    const [x, y] = toCanvas(ix, iy);
    ctx.beginPath(); ctx.arc(x, y, 7, 0, 2 * Math.PI);
    ctx.fillStyle = p.labels[i] ? "#1a7f37" : "#c62828"; ctx.fill();
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 2; ctx.stroke();
    ctx.fillStyle = "#fff"; ctx.font = "bold 12px sans-serif"; ctx.fillText(p.labels[i] ? "+" : "\u2212", x - 4, y + 4);
  });
  $("#draw-zoom").textContent = `${Math.round(v.scale * 100)}%`;
}

function imageXY(ev) {
  const canvas = $("#draw-canvas"), f = state.frames[state.frameIndex], v = state.drawView, s = state.drawScale || 1;
  const [cx, cy] = canvasXY(canvas, ev);
  const x = (cx - v.tx) / v.scale / s, y = (cy - v.ty) / v.scale / s;
  return [Math.max(0, Math.min(f.width - 0.5, x)), Math.max(0, Math.min(f.height - 0.5, y))];
}

// Keep the zoomed frame covering the canvas (no empty margins to click into).
function clampDrawView() {
  const canvas = $("#draw-canvas"), v = state.drawView;
  v.tx = Math.min(0, Math.max(canvas.width * (1 - v.scale), v.tx));
  v.ty = Math.min(0, Math.max(canvas.height * (1 - v.scale), v.ty));
}

function drawWheel(ev) {
  if (!state.frameImage) return;
  ev.preventDefault();
  zoomAt(state.drawView, canvasXY($("#draw-canvas"), ev), ev.deltaY, 16);
  clampDrawView();
  drawCanvas();
}

function resetDrawZoom() { state.drawView = { scale: 1, tx: 0, ty: 0 }; drawCanvas(); }

function mode() { return document.querySelector("input[name=draw-mode]:checked").value; }

// Middle-button drag pans the zoomed frame; the left button adds points or draws the box.
function canvasDown(ev) {
  if (ev.button === 1) { ev.preventDefault(); state.panFrom = canvasXY($("#draw-canvas"), ev); return; }
  if (ev.button !== 0 || mode() !== "box") return;
  state.dragStart = imageXY(ev);
}

function canvasMove(ev) {
  if (state.panFrom) {
    const at = canvasXY($("#draw-canvas"), ev), v = state.drawView;
    v.tx += at[0] - state.panFrom[0]; v.ty += at[1] - state.panFrom[1]; state.panFrom = at;
    clampDrawView(); drawCanvas(); return;
  }
  if (mode() !== "box" || !state.dragStart) return;
  const [x, y] = imageXY(ev), [x0, y0] = state.dragStart;
  state.dragBox = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x), Math.max(y0, y)];
  drawCanvas();
}

function canvasUp(ev) {
  if (ev.button === 1) { state.panFrom = null; return; }
  if (ev.button !== 0 || !state.frameImage) return;
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
  state.flags = data.flags;
  showPage("flags", "flags", data, data.flags.length);
  document.querySelectorAll(".flag-filter").forEach((b) => {
    setPressed(b, b.dataset.status === state.flagStatus);
    const names = { pending: "To review", confirmed: "Confirmed", rejected: "Rejected", all: "All" };
    b.textContent = `${names[b.dataset.status]} (${data.counts[b.dataset.status]})`;
  });
  const list = $("#flag-list");
  if (!data.flags.length) { list.replaceChildren(el("p", { class: "muted", text: "Nothing here." })); return; }
  list.replaceChildren(...data.flags.map((f, i) => {
    const status = f.status === "pending" ? el("span", { class: "badge none", text: "to review" })
      : el("span", { class: `badge ${f.status}`, text: `${f.status} by ${f.reviewed_by}` });
    return el("div", { class: "card flag", "data-flag": f.id, ondblclick: () => openFlag(i) },
      flagPair(f),
      el("div", { class: "card-head" }, el("h3", { text: f.bug_type.replace(/_/g, " ") }), status),
      el("p", { class: "muted", text: flagLine(f) }),
      el("div", { class: "buttons" },
        el("button", { class: "reject", text: "Yes, it is a bug", title: "y", onclick: () => act(() => decideFlag(f.id, "confirm")) }),
        el("button", { class: "keep", text: "No, false alarm", title: "n", onclick: () => act(() => decideFlag(f.id, "reject")) }),
        el("button", { class: "secondary", text: "Enlarge", title: "Enter", onclick: () => openFlag(i) })));
  }));
  applyCursor("flags");
}

const flagLine = (f) => `score ${f.score.toFixed(3)} (flagged at >= ${f.threshold ?? "?"}), detector ${f.model}, ` +
                        `playtest ${f.playtest} frame ${f.frame_index}`;

// The flagged frame with the detector's box drawn on it, and beside it the box's region enlarged.
function flagPair(f) {
  const img = el("img", { src: `/api/frames/${f.frame_id}/image.png`, alt: `frame ${f.frame_id}` });
  const frame = el("div", { class: "flag-frame" }, img);
  if (!f.box) return el("div", { class: "flag-pair" }, frame);
  const b = el("div", { class: "flag-box", title: "where the detector localises the bug" });
  b.style.left = `${f.box[0] * 100}%`; b.style.top = `${f.box[1] * 100}%`;
  b.style.width = `${(f.box[2] - f.box[0]) * 100}%`; b.style.height = `${(f.box[3] - f.box[1]) * 100}%`;
  frame.append(b);
  const crop = el("canvas", { class: "flag-crop", width: 160, height: 160, title: "the box's region, enlarged" });
  const drawCrop = () => {
    const W = img.naturalWidth, H = img.naturalHeight, pad = 0.08;
    const x0 = Math.max(0, (f.box[0] - pad) * W), y0 = Math.max(0, (f.box[1] - pad) * H);
    const x1 = Math.min(W, (f.box[2] + pad) * W), y1 = Math.min(H, (f.box[3] + pad) * H);
    const s = Math.min(crop.width / (x1 - x0), crop.height / (y1 - y0));
    const w = (x1 - x0) * s, h = (y1 - y0) * s, ox = (crop.width - w) / 2, oy = (crop.height - h) / 2;
    const ctx = crop.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#222"; ctx.fillRect(0, 0, crop.width, crop.height);
    ctx.drawImage(img, x0, y0, x1 - x0, y1 - y0, ox, oy, w, h);
    ctx.strokeStyle = "#ff1744"; ctx.lineWidth = 2;
    ctx.strokeRect(ox + (f.box[0] * W - x0) * s, oy + (f.box[1] * H - y0) * s, (f.box[2] - f.box[0]) * W * s, (f.box[3] - f.box[1]) * H * s);
  };
  if (img.complete && img.naturalWidth) drawCrop(); else img.addEventListener("load", drawCrop, { once: true });
  return el("div", { class: "flag-pair" }, frame, crop);
}

function openFlag(index) {
  const f = state.flags[index];
  if (!f) return;
  state.viewerFlag = index;
  state.cursor.flags = index;
  $("#flag-viewer-body").replaceChildren(flagPair(f));
  $("#flag-viewer-info").textContent = `${f.bug_type.replace(/_/g, " ")}: ${flagLine(f)}`;
  $("#flag-viewer").classList.remove("hidden");
}

async function decideFlag(id, verdict) {
  await api(`/api/flags/${id}/decision`, { verdict, who: who() });
  say(verdict === "confirm" ? `Flag ${id} confirmed as a bug: labelled for the next training.` : `Flag ${id} rejected as a false alarm: labelled for the next training.`);
  await loadFlags();
  await loadInfo();
}

// A verdict from the enlarged view moves on to the flag now in its place (the next one to review).
async function decideViewerFlag(verdict) {
  const f = state.flags[state.viewerFlag];
  if (!f) return closeModal("#flag-viewer");
  await decideFlag(f.id, verdict);
  if (state.flags.length) openFlag(Math.min(state.viewerFlag + (state.flagStatus === "pending" ? 0 : 1), state.flags.length - 1));
  else closeModal("#flag-viewer");
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

// ---------------------------------------------------------------- keyboard
// One highlighted item (the "cursor") per list; j/l or the arrows move it, Enter opens it, and
// k/r, x, a/d, y/n act on it or on the selection. See the help overlay (?) for the whole table.
const CURSOR_ITEMS = { clusters: "#cluster-grid .card.cluster", cluster: "#cluster-masks .tile",
                       text: "#text-results .tile", flags: "#flag-list .card.flag" };

function cursorItems(list) { return [...document.querySelectorAll(CURSOR_ITEMS[list])]; }

function applyCursor(list, scroll = false) {
  const items = cursorItems(list);
  if (!items.length) return null;
  const i = state.cursor[list] = Math.max(0, Math.min(state.cursor[list], items.length - 1));
  items.forEach((n, j) => n.classList.toggle("cursor", j === i));
  if (scroll) items[i].scrollIntoView({ block: "nearest", inline: "nearest" });
  return items[i];
}

function moveCursor(list, delta) {
  state.cursor[list] += delta;
  return applyCursor(list, true);
}

function keyContext() {
  for (const modal of ["help", "mask-viewer", "flag-viewer"]) if (!$(`#${modal}`).classList.contains("hidden")) return modal;
  if (currentView === "clusters") return state.clusterOpen !== null ? "cluster" : "clusters";
  return currentView;
}

const NOT_TYPED = ["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"];
function typing(target) {  // a focused checkbox or radio button takes no text: shortcuts still work there
  if (!(target instanceof HTMLElement)) return false;
  if (target.tagName === "INPUT") return !NOT_TYPED.includes(target.type);
  return target.isContentEditable || ["TEXTAREA", "SELECT"].includes(target.tagName);
}

function closeTopmost() {
  for (const modal of ["#help", "#mask-viewer", "#flag-viewer"]) {
    if (!$(modal).classList.contains("hidden")) { closeModal(modal); return true; }
  }
  if (currentView === "clusters" && state.clusterOpen !== null) { closeCluster(); return true; }
  if (currentView === "map" && state.mapSelected.size) { state.mapSelected.clear(); drawMap(); renderMapSelection(); return true; }
  return false;
}

function closeCluster() {
  clusterGeneration++;  // an open still waiting for its answer must not show the cluster again
  state.clusterOpen = null; state.selected.clear();
  $("#cluster-detail").classList.add("hidden");
}

const TABS = ["clusters", "map", "text", "draw", "flags", "history"];

// Returns true when the key was handled (the browser's default is then suppressed).
function handleKey(ev) {
  const key = ev.key, ctx = keyContext();
  if (key === "Escape") return closeTopmost();
  if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && key.toLowerCase() === "z") { act(() => undo({ last: true, who: who() })); return true; }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return false;
  if (key === "?") { $("#help").classList.toggle("hidden"); return true; }
  if (ctx === "help") return false;
  if (key === "u") { act(() => undo({ last: true, who: who() })); return true; }
  const step = { j: -1, ArrowLeft: -1, l: 1, ArrowRight: 1 }[key];
  if (ctx === "mask-viewer") {
    if (step) { act(() => stepViewer(step)); return true; }
    if (key === "k" || key === "r") { act(() => decideViewer(key === "k" ? "keep" : "reject")); return true; }
    return false;
  }
  if (ctx === "flag-viewer") {
    if (step) { openFlag(Math.max(0, Math.min(state.viewerFlag + step, state.flags.length - 1))); return true; }
    if (key === "y" || key === "n") { act(() => decideViewerFlag(key === "y" ? "confirm" : "reject")); return true; }
    return false;
  }
  if (/^[1-6]$/.test(key)) { act(() => show(TABS[Number(key) - 1])); return true; }
  const action = { k: "keep", r: "reject" }[key];
  if (ctx === "clusters") {
    if (step) return !!moveCursor("clusters", step);
    const card = applyCursor("clusters");
    if (!card) return false;
    const cluster = Number(card.dataset.cluster);
    if (key === "Enter") { act(() => openCluster(cluster, 0)); return true; }
    if (action) { act(() => decideCluster(cluster, action)); return true; }
    return false;
  }
  if (ctx === "cluster") {
    if (step) return !!moveCursor("cluster", step);
    if (key === "a" || key === "d") { selectAllInCluster(key === "a"); return true; }
    if (key === "f") { act(() => setClusterShow(state.clusterShow === "all" ? "undecided" : "all")); return true; }
    const tile = applyCursor("cluster");
    if (!tile) return false;
    const id = Number(tile.dataset.mask);
    if (key === "x" || key === " ") { toggleSelected(id); state.selectAnchor = state.cursor.cluster; renderSelection(); return true; }
    if (key === "Enter") { act(() => openMask(id, state.clusterMasks.map((m) => m.mask_id))); return true; }
    if (action) {
      act(async () => {
        if (state.selected.size) await decideSelection(action);
        else { await decideMasks([id], action, `cluster ${state.clusterOpen} of run ${state.run}`); await refreshAll(); }
      });
      return true;
    }
    return false;
  }
  if (ctx === "text") {
    if (step) return !!moveCursor("text", step);
    if (key === "a" || key === "d") { state.textResults.forEach((r) => { r.selected = key === "a"; }); renderText(); return true; }
    if (action) { act(() => decideText(action)); return true; }
    const tile = applyCursor("text");
    if (!tile) return false;
    const i = state.cursor.text;
    if (key === "x" || key === " ") { state.textResults[i].selected = !state.textResults[i].selected; renderText(); return true; }
    if (key === "Enter") { act(() => openMask(state.textResults[i].mask_id, state.textResults.map((r) => r.mask_id))); return true; }
    return false;
  }
  if (ctx === "flags") {
    if (step) return !!moveCursor("flags", step);
    const card = applyCursor("flags");
    if (!card) return false;
    if (key === "Enter") { openFlag(state.cursor.flags); return true; }
    if (key === "y" || key === "n") { act(() => decideFlag(Number(card.dataset.flag), key === "y" ? "confirm" : "reject")); return true; }
    return false;
  }
  if (ctx === "map") {
    const ids = state.mapSelected.size ? [...state.mapSelected] : state.mapFocus !== null ? [state.mapFocus] : [];
    if (action) { act(() => decideMap(ids, action)); return true; }
    if (key === "a") { state.map.points.forEach((p) => state.mapSelected.add(p.mask_id)); drawMap(); renderMapSelection(); return true; }
    if (key === "d") { state.mapSelected.clear(); drawMap(); renderMapSelection(); return true; }
    return false;
  }
  if (ctx === "draw") {
    if (step) { act(() => stepFrame(step)); return true; }
    if (key === "z") { resetDrawZoom(); return true; }
    return false;
  }
  return false;
}

function onKeyDown(ev) {
  if (ev.isComposing || ev.repeat && !["j", "l", "ArrowLeft", "ArrowRight"].includes(ev.key)) return;
  if (typing(ev.target)) {
    if (ev.key === "Escape") {  // Esc closes a window, or else leaves the text box so shortcuts work again
      if (!closeTopmost()) ev.target.blur();
      ev.preventDefault();
    }
    return;
  }
  if (handleKey(ev)) ev.preventDefault();
}

async function setClusterShow(show) {
  state.clusterShow = show;
  if (state.clusterOpen !== null) await openCluster(state.clusterOpen, 0);
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
  document.addEventListener("keydown", onKeyDown);
  $("#help-open").addEventListener("click", () => $("#help").classList.remove("hidden"));
  $("#help-close").addEventListener("click", () => closeModal("#help"));
  for (const modal of ["#help", "#mask-viewer", "#flag-viewer"])  // a click on the dark backdrop closes
    $(modal).addEventListener("click", (e) => { if (e.target === $(modal)) closeModal(modal); });
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => act(() => show(t.dataset.view))));
  $("#undo-last").addEventListener("click", () => act(() => undo({ last: true, who: who() })));
  $("#run-select").addEventListener("change", () => act(async () => {
    state.run = Number($("#run-select").value); closeCluster(); state.mapSelected.clear(); state.mapFocus = null;
    state.mapView = { scale: 1, tx: 0, ty: 0 };
    await loaders[currentView]();
  }));
  $("#cluster-prev").addEventListener("click", () => act(() => openCluster(state.clusterOpen, state.clusterOffset - state.pageSize)));
  $("#cluster-next").addEventListener("click", () => act(() => openCluster(state.clusterOpen, state.clusterOffset + state.pageSize)));
  $("#cluster-close").addEventListener("click", closeCluster);
  $("#cluster-select-all").addEventListener("click", () => selectAllInCluster(true));
  $("#cluster-select-none").addEventListener("click", () => selectAllInCluster(false));
  $("#cluster-keep").addEventListener("click", () => act(() => decideSelection("keep")));
  $("#cluster-reject").addEventListener("click", () => act(() => decideSelection("reject")));
  document.querySelectorAll("#cluster-detail .seg").forEach((b) => b.addEventListener("click", () => act(() => setClusterShow(b.dataset.show))));
  $("#mask-viewer-close").addEventListener("click", () => closeModal("#mask-viewer"));
  $("#mask-viewer-prev").addEventListener("click", () => act(() => stepViewer(-1)));
  $("#mask-viewer-next").addEventListener("click", () => act(() => stepViewer(1)));
  $("#mask-viewer-keep").addEventListener("click", () => act(() => decideViewer("keep")));
  $("#mask-viewer-reject").addEventListener("click", () => act(() => decideViewer("reject")));
  $("#flag-viewer-close").addEventListener("click", () => closeModal("#flag-viewer"));
  $("#flag-viewer-confirm").addEventListener("click", () => act(() => decideViewerFlag("confirm")));
  $("#flag-viewer-reject").addEventListener("click", () => act(() => decideViewerFlag("reject")));
  const map = $("#map-canvas");
  map.addEventListener("pointerdown", mapDown);
  map.addEventListener("pointermove", mapMove);
  map.addEventListener("pointerup", mapUp);
  map.addEventListener("pointerleave", () => { if (!state.mapDrag) hideMapHover(); });
  map.addEventListener("wheel", mapWheel, { passive: false });
  $("#map-reset").addEventListener("click", resetMapView);
  document.querySelectorAll("[data-map-mode]").forEach((b) => b.addEventListener("click", () => {
    state.mapMode = b.dataset.mapMode;
    document.querySelectorAll("[data-map-mode]").forEach((o) => setPressed(o, o === b));
    hideMapHover();
  }));
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
  canvas.addEventListener("wheel", drawWheel, { passive: false });
  canvas.addEventListener("auxclick", (e) => e.preventDefault());
  $("#draw-zoom-reset").addEventListener("click", resetDrawZoom);
  $("#frame-prev").addEventListener("click", () => act(() => stepFrame(-1)));
  $("#frame-next").addEventListener("click", () => act(() => stepFrame(1)));
  $("#frames-prev").addEventListener("click", () => act(() => loadFrames(state.frameOffset - state.framePageSize, 0)));
  $("#frames-next").addEventListener("click", () => act(() => loadFrames(state.frameOffset + state.framePageSize, 0)));
  $("#frame-search").addEventListener("input", () => frameFiltersChanged(250));
  for (const sel of ["#frame-split", "#frame-labeled", "#frame-flagged", "#frame-has-masks"])
    $(sel).addEventListener("change", () => frameFiltersChanged());
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
