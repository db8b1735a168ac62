// Dateline's page: an SVG map, a table, a city panel and a list of changes, all drawn
// here from the API of the same server. No library, no CDN, no tile server.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const DAY = 86400000;
// Okabe-Ito: distinguishable with the common colour-vision deficiencies.
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"];
const FIXED = { "Afghan government": "#0072B2", "Taliban": "#D55E00" };
const LABEL_LIMIT = 80; // name labels on the map up to this many cities
const W = 800;

const $ = (id) => document.getElementById(id);
const state = { as_of: "", known_at: "", city: "", from: "", to: "" };
const colours = new Map();
let today = new Date().toISOString().slice(0, 10);
let sliderStart = "2015-01-01";
let borders = null;
let frame = null; // the projection fitted to the cities
let statuses = [];
let request = 0; // the latest status request: older answers are dropped
let playing = null;

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function addDays(day, n) { return new Date(Date.parse(day + "T00:00:00Z") + n * DAY).toISOString().slice(0, 10); }
function dayIndex(day) { return Math.round((Date.parse(day + "T00:00:00Z") - Date.parse(sliderStart + "T00:00:00Z")) / DAY); }
function colour(controller) {
  if (!controller) return "#ffffff";
  if (FIXED[controller]) return FIXED[controller];
  if (!colours.has(controller)) {
    const free = PALETTE.filter((c) => !Object.values(FIXED).includes(c));
    colours.set(controller, free[colours.size % free.length]);
  }
  return colours.get(controller);
}
function knownAtParam() {
  if (!state.known_at) return "";
  let text = state.known_at;
  if (text.length === 16) text += ":00";
  return text.endsWith("Z") ? text : text + "Z";
}
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}
async function getJSON(url) {
  // About "now", revalidate (If-None-Match, 304) instead of trusting a cached copy.
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: state.known_at ? "default" : "no-cache" });
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  return { body: await response.json(), link: response.headers.get("Link") };
}
async function getAll(url) { // follow Link: rel="next"
  const rows = [];
  let next = url;
  for (let pages = 0; next && pages < 50; pages++) {
    const { body, link } = await getJSON(next);
    rows.push(...body);
    const m = link && link.match(/<([^>]+)>;\s*rel="next"/);
    next = m ? m[1] : null;
  }
  return rows;
}
function saveUrl() {
  const params = { as_of: state.as_of, known_at: state.known_at ? knownAtParam() : "", city: state.city, from: state.from, to: state.to };
  history.replaceState(null, "", "/" + query(params));
  $("status-csv").href = "/status.csv" + query({ as_of: state.as_of, known_at: knownAtParam() });
  $("status-geojson").href = "/status" + query({ format: "geojson", as_of: state.as_of, known_at: knownAtParam() });
}

// ------------------------------------------------------------------ the map
function fit(cities) {
  let [x0, y0, x1, y1] = [60.5, 29.3, 75, 38.6]; // Afghanistan, when there is nothing to fit
  if (cities.length) {
    const lons = cities.map((c) => c.lon), lats = cities.map((c) => c.lat);
    [x0, x1, y0, y1] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  }
  const pad = Math.max(0.8, (x1 - x0) * 0.08);
  x0 -= pad; x1 += pad; y0 -= pad; y1 += pad;
  const k = Math.cos(((y0 + y1) / 2) * Math.PI / 180); // equirectangular, true at the middle
  const scale = W / ((x1 - x0) * k);
  const h = Math.round((y1 - y0) * scale);
  return { x: (lon) => (lon - x0) * k * scale, y: (lat) => (y1 - lat) * scale, h, key: [x0, y0, x1, y1].join() };
}
function drawBorders() {
  const g = $("borders");
  g.textContent = "";
  if (!borders || !frame) return;
  for (const feature of borders.features) {
    const polys = feature.geometry.type === "Polygon" ? [feature.geometry.coordinates] : feature.geometry.coordinates;
    let d = "";
    for (const poly of polys) for (const ring of poly) {
      d += "M" + ring.map(([lon, lat]) => frame.x(lon).toFixed(1) + "," + frame.y(lat).toFixed(1)).join("L") + "Z";
    }
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    if (feature.properties.name === "Afghanistan") path.setAttribute("class", "focus");
    path.appendChild(document.createElementNS(SVG, "title")).textContent = feature.properties.name;
    g.appendChild(path);
  }
}
function describe(c) {
  if (c.status === "unknown") return "unknown";
  return c.status === "contested" ? `held by ${c.controller}, contested by ${c.contested_by}` : `held by ${c.controller}`;
}
function markerClass(c) {
  const cls = c.status === "contested" ? "contested" : c.status === "unknown" ? "unknown" : "";
  return c.city === state.city ? cls + " selected" : cls;
}
const same = (a, b) => a.status === b.status && a.controller === b.controller && a.contested_by === b.contested_by && a.since === b.since;
let drawn = []; // the statuses on the map and in the table now
function drawMap() {
  const fitted = fit(statuses);
  if (!frame || fitted.key !== frame.key) {
    frame = fitted;
    $("map").setAttribute("viewBox", `0 0 ${W} ${frame.h}`);
    drawBorders();
  }
  const sameCities = drawn.length === statuses.length && drawn.every((c, i) => c.city === statuses[i].city);
  if (sameCities) {
    // a step in time: only the cities whose status changed are touched
    const circles = $("cities").children, rows = $("cities-table").tBodies[0].rows;
    statuses.forEach((c, i) => {
      if (same(c, drawn[i])) return;
      const circle = circles[i];
      circle.setAttribute("class", markerClass(c));
      circle.setAttribute("fill", colour(c.controller));
      circle.dataset.status = c.status;
      circle.dataset.controller = c.controller || "";
      circle.firstChild.textContent = `${c.name}: ${describe(c)}`;
      rows[i].outerHTML = tableRow(c);
    });
  } else {
    const radius = statuses.length > 1000 ? 2 : 6;
    const parts = [], labels = [];
    for (const c of statuses) {
      const x = frame.x(c.lon).toFixed(1), y = frame.y(c.lat).toFixed(1);
      parts.push(`<circle data-city="${esc(c.city)}" data-status="${esc(c.status)}" data-controller="${esc(c.controller)}" class="${markerClass(c)}" cx="${x}" cy="${y}" r="${radius}" fill="${colour(c.controller)}"><title>${esc(c.name)}: ${esc(describe(c))}</title></circle>`);
      if (statuses.length <= LABEL_LIMIT) labels.push(`<text x="${(+x + 8).toFixed(1)}" y="${(+y + 4).toFixed(1)}">${esc(c.name)}</text>`);
    }
    $("cities").innerHTML = parts.join("");
    $("labels").innerHTML = labels.join("");
    $("cities-table").tBodies[0].innerHTML = statuses.map(tableRow).join("");
  }
  drawn = statuses;
  const map = $("map");
  map.dataset.asOf = state.as_of;
  map.dataset.knownAt = knownAtParam();
  $("map-label").textContent = `Map of ${statuses.length} cities on ${state.as_of}: the table below lists the same`;
  $("table-title").textContent = `Cities on ${state.as_of}` + (state.known_at ? `, as known at ${knownAtParam()}` : "");
  drawLegend();
  window.datelineTimings.drawn = performance.now();
}
function drawLegend() {
  const controllers = [...new Set(statuses.map((c) => c.controller).filter(Boolean))].sort();
  const items = controllers.map((c) => `<span><span class="swatch" style="background:${colour(c)}"></span>${esc(c)}</span>`);
  items.push('<span><span class="swatch contested"></span>contested (dashed ring)</span>');
  if (statuses.some((c) => c.status === "unknown")) items.push('<span><span class="swatch unknown"></span>unknown</span>');
  $("legend").innerHTML = items.join("");
}
function tableRow(c) {
  return `<tr data-city="${esc(c.city)}"${c.city === state.city ? ' class="selected"' : ""}><th scope="row"><button type="button" class="city" data-city="${esc(c.city)}">${esc(c.name)}</button></th><td>${esc(c.province)}</td><td class="status">${esc(c.status)}</td><td class="controller">${esc(c.controller)}</td><td>${esc(c.contested_by)}</td><td>${esc(c.since)}</td></tr>`;
}
function summarise() {
  const counts = {};
  for (const c of statuses) {
    const key = c.status === "contested" ? "contested" : c.controller || "unknown";
    counts[key] = (counts[key] || 0) + 1;
  }
  const parts = Object.entries(counts).sort().map(([k, n]) => k === "contested" ? `${n} contested` : k === "unknown" ? `${n} unknown` : `${n} held by ${k}`);
  $("summary").textContent = `${state.as_of}` + (state.known_at ? ` as known at ${knownAtParam()}` : " (latest record)") + `: ${parts.join(", ")}.`;
}

async function load() {
  const mine = ++request;
  const started = performance.now();
  const { body } = await getJSON("/status" + query({ as_of: state.as_of, known_at: knownAtParam() }));
  if (mine !== request) return;
  const fetched = performance.now();
  statuses = body;
  drawMap();
  const timings = window.datelineTimings;
  timings.lastFetch = fetched - started; // the request, the server and JSON parsing
  timings.lastDraw = performance.now() - fetched;
  summarise();
  saveUrl();
  if (state.city) await openCity(state.city, false);
}

// ---------------------------------------------------------------- the panel
function intervalText(i) {
  if (i.status === "unknown") return "unknown";
  return i.status === "contested" ? `held by ${i.controller}, contested by ${i.contested_by}` : `held by ${i.controller}`;
}
function timelineSvg(intervals, first) {
  const start = Date.parse(first + "T00:00:00Z"), end = Date.parse(today + "T00:00:00Z") + DAY;
  const x = (day) => ((Date.parse(day + "T00:00:00Z") - start) / (end - start)) * 1000;
  let out = `<svg id="timeline" viewBox="0 0 1000 70" role="img" aria-label="Control intervals from ${esc(first)} to today">`;
  out += '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#000" opacity=".45"/></pattern></defs>';
  for (const i of intervals) {
    const x0 = x(i.from), x1 = i.to ? x(i.to) : 1000;
    out += `<rect x="${x0.toFixed(1)}" y="6" width="${Math.max(1, x1 - x0).toFixed(1)}" height="28" fill="${colour(i.controller)}"><title>${esc(i.from)} to ${esc(i.to || "now")}: ${esc(intervalText(i))}</title></rect>`;
    if (i.status === "contested") out += `<rect x="${x0.toFixed(1)}" y="6" width="${Math.max(1, x1 - x0).toFixed(1)}" height="28" fill="url(#hatch)"/>`;
  }
  const now = x(state.as_of);
  out += `<line x1="${now}" x2="${now}" y1="0" y2="40" stroke="#000" stroke-width="2"/>`;
  out += `<text x="0" y="66" font-size="24">${esc(first)}</text><text x="1000" y="66" font-size="24" text-anchor="end">${esc(today)}</text></svg>`;
  return out;
}
function eventItem(e) {
  if (e.type === "Registered") return `<li><span class="meta">${esc(e.occurred_on)}</span> Registered, held by ${esc(e.actor || "")}<span class="meta"> · recorded ${esc(e.recorded_at)}</span></li>`;
  if (e.type === "Retracted") return `<li class="retraction"><span class="meta">recorded ${esc(e.recorded_at)}</span> Retraction of ${esc(e.retracts)}: ${esc(e.reason)}<span class="meta"> · by ${esc(e.reported_by)}</span></li>`;
  const source = e.source ? (e.source.url ? `<a href="${esc(e.source.url)}" rel="noopener noreferrer">${esc(e.source.name)}</a>` : esc(e.source.name)) : "";
  const quote = e.source && e.source.quote ? ` <q>${esc(e.source.quote)}</q>` : "";
  const note = e.note ? `<br><span class="note">${esc(e.note)}</span>` : "";
  const what = `<span class="what"><strong>${esc(e.occurred_on)}</strong> ${esc(e.type)} by ${esc(e.actor)}</span>`;
  const retracted = e.retracted ? `<br><span class="retraction-note">Retracted by ${esc(e.retracted.retracted_by)} (${esc(e.retracted.event_id)}): ${esc(e.retracted.reason)}</span>` : "";
  return `<li id="event-${esc(e.id)}" class="${e.retracted ? "retracted" : ""}">${e.retracted ? "<del>" : ""}${what}${e.retracted ? "</del>" : ""} · source: <span class="source">${source}</span>${quote}${note}<br><span class="meta">${esc(e.id)} · reported by ${esc(e.reported_by)} · recorded ${esc(e.recorded_at)}</span>${retracted}</li>`;
}
async function openCity(slug, focus = true) {
  state.city = slug;
  saveUrl();
  for (const el of document.querySelectorAll(".selected")) el.classList.remove("selected");
  for (const el of document.querySelectorAll(`[data-city="${CSS.escape(slug)}"]`)) if (el.tagName !== "BUTTON") el.classList.add("selected");
  const k = knownAtParam();
  const panel = $("panel");
  try {
    const [{ body: city }, { body: status }, intervals, events] = await Promise.all([
      getJSON(`/cities/${encodeURIComponent(slug)}`),
      getJSON(`/cities/${encodeURIComponent(slug)}/status` + query({ as_of: state.as_of, known_at: k })),
      getAll(`/cities/${encodeURIComponent(slug)}/timeline` + query({ known_at: k, limit: 1000 })),
      getAll(`/cities/${encodeURIComponent(slug)}/events` + query({ known_at: k })),
    ]);
    if (state.city !== slug) return;
    const line = status.status === "unknown" ? "unknown" : intervalText(status) + ` since ${status.since}`;
    panel.innerHTML = `<h2 id="panel-title" tabindex="-1">${esc(city.name)}</h2>`
      + `<p class="meta">${esc(city.province)}, ${esc(city.country)} · population ${esc(city.population ?? "unknown")} · tracked since ${esc(city.tracked_since)}</p>`
      + `<p class="status-line">On ${esc(state.as_of)}: ${esc(line)}</p>`
      + timelineSvg(intervals, city.tracked_since)
      + `<h3>Events (${events.length}), in recording order</h3><ol class="events">${events.map(eventItem).join("")}</ol>`
      + `<p><a href="/cities/${encodeURIComponent(slug)}/events${query({ known_at: k })}">JSON</a></p>`;
    if (focus) $("panel-title").focus();
  } catch (error) {
    panel.innerHTML = `<h2 id="panel-title">${esc(slug)}</h2><p role="alert">${esc(error.message)}</p>`;
  }
}

// -------------------------------------------------------------- the changes
async function loadChanges() {
  state.from = $("changes-from").value;
  state.to = $("changes-to").value;
  if (!state.from) return;
  saveUrl();
  const q = query({ from: state.from, to: state.to, known_at: knownAtParam() });
  $("changes-csv").href = "/changes.csv" + q;
  const list = $("changes-list");
  try {
    const events = await getAll("/changes" + q);
    const names = new Map(statuses.map((c) => [c.city, c.name]));
    list.innerHTML = events.length ? events.map((e) => {
      const source = e.source ? (e.source.url ? `<a href="${esc(e.source.url)}" rel="noopener noreferrer">${esc(e.source.name)}</a>` : esc(e.source.name)) : "";
      return `<li><strong>${esc(e.occurred_on)}</strong> <button type="button" class="city" data-city="${esc(e.city)}">${esc(names.get(e.city) || e.city)}</button>: ${esc(e.type)} by ${esc(e.actor)} (${source})</li>`;
    }).join("") : "<li>No change in control between these dates.</li>";
  } catch (error) {
    list.innerHTML = `<li role="alert">${esc(error.message)}</li>`;
  }
}

// -------------------------------------------------------------- the controls
function setAsOf(day, { reload = true } = {}) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return;
  if (day > today) day = today;
  state.as_of = day;
  $("as-of").value = day;
  $("slider").value = String(dayIndex(day));
  $("slider").setAttribute("aria-valuetext", day); // read out as the date, not a number
  if (reload) return load();
}
async function nextChange() {
  const { body } = await getJSON("/changes" + query({ from: addDays(state.as_of, 1), to: today, known_at: knownAtParam(), limit: "1" }));
  if (!body.length) return false;
  await setAsOf(body[0].occurred_on);
  return true;
}
function stopPlaying() {
  if (playing) clearTimeout(playing);
  playing = null;
  $("play").setAttribute("aria-pressed", "false");
  $("play").textContent = "Play changes";
}
async function play() {
  if (playing) return stopPlaying();
  $("play").setAttribute("aria-pressed", "true");
  $("play").textContent = "Pause";
  const step = async () => {
    if (!(await nextChange())) return stopPlaying();
    if ($("play").getAttribute("aria-pressed") === "true") playing = setTimeout(step, 900);
  };
  playing = setTimeout(step, 0);
}

async function start() {
  window.datelineTimings = { start: performance.now() };
  const params = new URLSearchParams(location.search);
  // The slider starts in the year of the first change; the map does not wait for it.
  const firstChange = getJSON("/changes" + query({ from: "1900-01-01", limit: "1" })).then(({ body }) => {
    if (body.length) sliderStart = body[0].occurred_on.slice(0, 4) + "-01-01";
    $("slider").max = String(dayIndex(today));
    $("slider").value = String(dayIndex(state.as_of || today));
  });
  state.known_at = (params.get("known_at") || "").replace(/Z$/, "").replace(/\+00:00$/, "").slice(0, 19);
  $("known-at").value = state.known_at;
  $("slider").max = String(dayIndex(today));
  state.city = params.get("city") || "";
  state.from = params.get("from") || "";
  state.to = params.get("to") || "";
  const bordersLoaded = fetch("/page/borders.geojson").then((r) => r.json()).then((b) => { borders = b; if (frame) drawBorders(); });
  await setAsOf(params.get("as_of") || today);
  await Promise.all([bordersLoaded, firstChange]);
  if (!state.from) { state.from = addDays(state.as_of, -30); state.to = state.as_of; }
  $("changes-from").value = state.from;
  $("changes-to").value = state.to;
  await loadChanges();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", () => {
  $("as-of").addEventListener("change", (e) => { stopPlaying(); setAsOf(e.target.value); });
  $("slider").addEventListener("input", (e) => { setAsOf(addDays(sliderStart, Number(e.target.value))); });
  $("play").addEventListener("click", play);
  $("next-change").addEventListener("click", () => { stopPlaying(); nextChange(); });
  $("known-at").addEventListener("change", (e) => { state.known_at = e.target.value; load().then(loadChanges); });
  $("latest").addEventListener("click", () => { state.known_at = ""; $("known-at").value = ""; load().then(loadChanges); });
  $("show-changes").addEventListener("click", loadChanges);
  document.body.addEventListener("click", (e) => {
    const target = e.target.closest("[data-city]");
    if (target && (target.tagName === "BUTTON" || target.tagName === "circle")) openCity(target.dataset.city);
  });
  start().catch((error) => { $("summary").textContent = "Could not load: " + error.message; });
});
