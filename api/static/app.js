// employee-sync dashboard. Hand-written, no dependencies, no build step.
// The token lives in sessionStorage (this tab only) and travels only as an Authorization header.
// Every value from the API is put into the page with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "employee-sync.token";
const FAST_MS = 3000;   // rate, queue, credits, the shown runs' live counters
const RUNS_MS = 30000;  // the runs page itself, at the latest (sooner when a run changes state)
const SLOW_MS = 10000;  // dead letters
const FRESH_MS = 30000; // freshness (the server caches it for 30 s), subscriptions (they change by the day)
const state = { runs: [], runsLoadedAt: 0, runsByState: null, runsFetching: false, runsCursor: null, runsCursors: [], deadCursor: null, deadCursors: [], bulkCursor: null, subsCursor: null, timers: [] };

const $ = (sel) => document.querySelector(sel);
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}
function show(node, visible) { node.hidden = !visible; }

class Unauthorized extends Error {}

async function api(path, options) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new Unauthorized("not signed in");
  const opts = options || {};
  const headers = { Authorization: "Bearer " + token };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method: opts.method || "GET", headers, credentials: "omit", cache: "no-store",
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  if (resp.status === 401) throw new Unauthorized("the API refused this token");
  const body = await resp.json();
  if (!resp.ok) throw new Error((body.error && body.error.message) || resp.statusText);
  return body;
}

// --- formatting ---------------------------------------------------------------------------
const fmtInt = (n) => (n == null ? "—" : Number(n).toLocaleString("en-US"));
function fmtDuration(s) {
  if (s == null) return "—";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const fmtPct = (x) => (x == null ? "—" : (100 * x).toFixed(1) + " %");
const fmtMs = (s) => (s == null ? "—" : (1000 * s).toFixed(0) + " ms");
const shortId = (id) => String(id).slice(0, 8);
function creditsSpent(run) {
  // Credits are charged only on a 200: each profile collected and each search page fetched.
  return (run.inserted || 0) + (run.changed || 0) + (run.unchanged || 0) + (run.pages_fetched || 0);
}

// --- sign in / out --------------------------------------------------------------------------
function setSignedIn(on) {
  show($("#login-view"), !on);
  document.querySelectorAll(".authed").forEach((n) => show(n, false));
  if (on) { show($("#search"), true); show($("#logout"), true); show($("#freshness-clock"), true); }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.timers.forEach(clearInterval);
  state.timers = [];
  document.querySelectorAll("tbody, #rate-classes, #r429-body, #credits-body, #queue-body, #run-body, #employee-body, #search-body, #freshness-body, #dr-body")
    .forEach((n) => n.replaceChildren());
  setSignedIn(false);
  const err = $("#login-error");
  err.textContent = message || "";
  show(err, Boolean(message));
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await api("/v1/dashboard/fleet");
  } catch (e) {
    signOut(e instanceof Unauthorized ? "Wrong token: the API refused it." : "Cannot reach the API: " + e.message);
    return;
  }
  show($("#login-error"), false);
  setSignedIn(true);
  route();
  state.timers.push(setInterval(() => tick("fast"), FAST_MS));
  state.timers.push(setInterval(() => tick("slow"), SLOW_MS));
  state.timers.push(setInterval(() => tick("fresh"), FRESH_MS));
}

function guard(promise) {
  return promise.then(() => show($("#error"), false)).catch((e) => {
    if (e instanceof Unauthorized) { signOut("Signed out: " + e.message + "."); return; }
    const err = $("#error"); err.textContent = e.message; show(err, true);
  });
}

function tick(speed) {
  if (document.hidden || !sessionStorage.getItem(TOKEN_KEY)) return;
  const view = currentView();
  if (view.name === "overview") {
    if (speed === "fast") guard(loadFleet().then(refreshRuns));
    if (speed === "slow") { guard(loadDead()); guard(loadBulk()); }
    if (speed === "fresh") { guard(loadFreshness()); guard(loadSubscriptions()); }
  } else if (view.name === "run" && speed === "fast") {
    guard(loadRun(view.id));
  } else if (view.name === "data-request" && speed === "fast") {
    guard(loadDataRequest(view.id));
  }
}

// --- routing (hash only: nothing about the view goes to the server) -------------------------
function currentView() {
  const h = location.hash.replace(/^#\/?/, "");
  let m;
  if ((m = h.match(/^runs\/([0-9a-f]{32})$/))) return { name: "run", id: m[1] };
  if ((m = h.match(/^employees\/([0-9]+)$/))) return { name: "employee", id: m[1] };
  if ((m = h.match(/^data-requests\/([0-9a-f]{32}:[0-9]{5,9})$/))) return { name: "data-request", id: m[1] };
  if ((m = h.match(/^search\/(.+)$/))) return { name: "search", q: decodeURIComponent(m[1]) };
  return { name: "overview" };
}

function route() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return;
  const view = currentView();
  for (const name of ["overview", "run", "employee", "search", "data-request"]) show($("#" + name + "-view"), view.name === name);
  show($("#error"), false);
  if (view.name === "overview") {
    guard(loadFleet()); guard(loadRuns()); guard(loadDead()); guard(loadFreshness());
    guard(loadBulk()); guard(loadSubscriptions());
  } else if (view.name === "run") guard(loadRun(view.id));
  else if (view.name === "data-request") guard(loadDataRequest(view.id));
  else if (view.name === "employee") guard(loadEmployee(view.id));
  else guard(loadSearch(view.q));
}

// --- fleet: rate, 429s, credits, queue ------------------------------------------------------
function chart(cls) {
  const W = 360, H = 90, ns = "http://www.w3.org/2000/svg";
  const top = Math.max(cls.limit_rps * 1.15, ...cls.per_second, 1);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  const n = cls.per_second.length, bw = W / Math.max(n, 1);
  cls.per_second.forEach((v, i) => {
    const r = document.createElementNS(ns, "rect");
    const h = (v / top) * H;
    r.setAttribute("x", (i * bw).toFixed(2)); r.setAttribute("width", Math.max(bw - 0.4, 0.5).toFixed(2));
    r.setAttribute("y", (H - h).toFixed(2)); r.setAttribute("height", h.toFixed(2));
    r.setAttribute("class", v > cls.limit_rps ? "bar over" : "bar");
    svg.append(r);
  });
  const y = H - (cls.limit_rps / top) * H;
  const line = document.createElementNS(ns, "line");
  line.setAttribute("x1", 0); line.setAttribute("x2", W); line.setAttribute("y1", y); line.setAttribute("y2", y);
  line.setAttribute("class", "limit");
  svg.append(line);
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", W - 4); label.setAttribute("y", Math.max(y - 3, 10)); label.setAttribute("class", "limit-label");
  label.textContent = "limit " + cls.limit_rps;
  svg.append(label);
  return svg;
}

function renderRate(fleet) {
  const box = $("#rate-classes");
  box.replaceChildren(...fleet.classes.map((cls) => el("div", { class: "card", "data-class": cls.endpoint_class },
    el("h3", {}, cls.endpoint_class),
    chart(cls),
    el("p", {}, el("strong", { class: "rps" }, cls.rps.toFixed(1)), " rps of ",
      el("span", { class: "limit-value" }, String(cls.limit_rps)), " limit · ",
      el("span", { class: "util" }, fmtPct(cls.utilisation)), " used"),
    el("p", { class: "muted" }, "granted last 2 min: ", el("span", { class: "granted" }, fmtInt(cls.per_second.reduce((a, b) => a + b, 0))),
      " · wait p50 ", fmtMs(cls.wait_p50_s), " · p95 ", fmtMs(cls.wait_p95_s)))));
}

function render429(fleet) {
  const rows = fleet.classes.map((cls) => {
    const perMin = cls.r429_per_minute;
    const last = perMin[perMin.length - 1] || 0, total = perMin.reduce((a, b) => a + b, 0);
    const cool = cls.cooldown_remaining_s > 0
      ? el("span", { class: "bad" }, "cool-down active, " + cls.cooldown_remaining_s.toFixed(1) + " s left")
      : el("span", { class: "ok" }, "no cool-down");
    return el("tr", {}, el("td", {}, cls.endpoint_class), el("td", {}, fmtInt(last)), el("td", {}, fmtInt(total)), el("td", {}, cool));
  });
  $("#r429-body").replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, el("th", {}, "class"), el("th", {}, "429s this min"), el("th", {}, "last 30 min"), el("th", {}, "fleet"))),
    el("tbody", {}, ...rows)));
}

function renderCredits(fleet) {
  const c = fleet.credits;
  const items = [
    ["last x-credits-remaining", fmtInt(c.remaining)],
    ["seen", c.at_s ? fmtDuration(fleet.now_s - c.at_s) + " ago" : "—"],
    ["burn per hour", c.burn_per_h == null ? "—" : fmtInt(Math.round(c.burn_per_h))],
    ["projected exhaustion", c.exhausted_at_s ? new Date(c.exhausted_at_s * 1000).toLocaleString() + " (in " + fmtDuration(c.exhausted_at_s - fleet.now_s) + ")" : "—"],
  ];
  if (c.exhausted) items.push(["state", "OUT OF CREDITS: runs pause until resumed"]);
  $("#credits-body").replaceChildren(...items.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function renderQueue(fleet) {
  const q = fleet.queue, workers = fleet.workers;
  const inFlight = workers.reduce((a, w) => a + w.in_flight, 0), slots = workers.reduce((a, w) => a + w.concurrency, 0);
  $("#queue-body").replaceChildren(
    el("dt", {}, "depth"), el("dd", { id: "queue-depth" }, fmtInt(q.depth) + " (window " + fmtInt(q.window) + ")"),
    el("dt", {}, "oldest waiting"), el("dd", {}, fmtDuration(q.oldest_age_s)),
    el("dt", {}, "live workers"), el("dd", { id: "live-workers" }, workers.length + " (" + inFlight + " of " + slots + " slots busy)"),
    el("dt", {}, "runs"), el("dd", {}, Object.entries(fleet.runs_by_state).filter(([, n]) => n).map(([s, n]) => s + " " + n).join(" · ") || "none"));
  $("#workers-table tbody").replaceChildren(...workers.map((w) => el("tr", {},
    el("td", {}, w.host), el("td", {}, w.pid), el("td", {}, w.in_flight + " / " + w.concurrency), el("td", {}, w.age_s.toFixed(0) + " s ago"))));
}

async function loadFleet() {
  const fleet = await api("/v1/dashboard/fleet");
  renderRate(fleet); render429(fleet); renderCredits(fleet); renderQueue(fleet);
  $("#freshness-clock").textContent = "updated " + new Date().toLocaleTimeString();
  return fleet;
}

// --- runs -----------------------------------------------------------------------------------
function runTotal(run) {
  if (run.kind === "search" && !run.search_complete) {
    const expected = run.total_results == null ? null : Math.min(run.total_results, run.max_profiles || Infinity);
    return expected == null ? run.accepted : Math.max(expected, run.accepted);
  }
  return run.accepted;
}

function progressBar(run) {
  const total = runTotal(run), processed = total - run.queued;
  const done = run.accepted ? Math.max(0, run.accepted - run.queued) : 0;
  const pct = total ? Math.min(100, (100 * done) / total) : (run.state === "finished" ? 100 : 0);
  const bar = el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": pct.toFixed(0) },
    el("div", { class: "fill state-" + run.state }));
  bar.firstChild.style.width = pct.toFixed(1) + "%";
  bar.dataset.processed = String(processed);
  return bar;
}

function actionButtons(run, after) {
  const act = (verb) => el("button", { type: "button", class: "act act-" + verb, "data-run": run.run_id,
    onclick: () => guard(api(`/v1/runs/${run.run_id}/${verb}`, { method: "POST" }).then(after)) }, verb);
  const buttons = [];
  if (run.state === "running") buttons.push(act("pause"));
  if (run.state === "paused") buttons.push(act("resume"));
  if (["enqueueing", "running", "paused"].includes(run.state)) buttons.push(act("cancel"));
  return buttons;
}

function runRow(run) {
  const done = Math.max(0, run.accepted - run.queued);
  return el("tr", { "data-run": run.run_id, class: "run-row" },
    el("td", {}, el("a", { href: "#/runs/" + run.run_id, title: run.run_id }, shortId(run.run_id))),
    el("td", {}, run.kind),
    el("td", { class: "run-state" }, run.state + (run.pause_reason ? " (" + run.pause_reason + ")" : "")),
    el("td", {}, progressBar(run)),
    el("td", { class: "run-done" }, fmtInt(done) + " / " + fmtInt(runTotal(run))),
    el("td", {}, [run.inserted, run.changed, run.unchanged, run.not_found, run.failed].map(fmtInt).join(" / ")),
    el("td", {}, run.eta_s == null ? "—" : fmtDuration(run.eta_s)),
    el("td", {}, fmtInt(creditsSpent(run))),
    el("td", {}, ...actionButtons(run, () => guard(loadRuns()))));
}

// The runs page comes from MongoDB; the counters that move every second live in Redis. So the page
// is read again only when a run may have changed state (the fleet's runs-by-state moved, a shown
// run has every item done, an action), and every RUNS_MS; between, the shown runs' counters come
// from /v1/dashboard/live-runs (one Redis call) and their ETAs count down.
async function loadRuns(byState) {
  const params = new URLSearchParams({ limit: "20" });
  const st = $("#runs-state").value;
  if (st) params.set("state", st);
  if (state.runsCursor) params.set("cursor", state.runsCursor);
  state.runsFetching = true;
  try {
    const page = await api("/v1/runs?" + params);
    state.runs = page.runs; state.runsLoadedAt = Date.now();
    if (byState !== undefined) state.runsByState = byState;
    renderRuns();
    state.runsNext = page.next_cursor;
    $("#runs-next").disabled = !page.next_cursor;
    $("#runs-first").disabled = !state.runsCursor;
  } finally { state.runsFetching = false; }
}

function renderRuns() {
  const age_s = (Date.now() - state.runsLoadedAt) / 1000;
  const shown = state.runs.map((run) => (run.eta_s == null ? run : { ...run, eta_s: Math.max(0, run.eta_s - age_s) }));
  $("#runs-table tbody").replaceChildren(...(shown.length ? shown.map(runRow)
    : [el("tr", {}, el("td", { colspan: "9", class: "muted" }, "no runs"))]));
}

const isLive = (run) => run.state === "running" || run.state === "enqueueing";
const allDone = (run) => run.accepted > 0 && run.processed >= run.accepted;

async function refreshRuns(fleet) {
  if (state.runsFetching) return;
  const byState = JSON.stringify(fleet.runs_by_state);
  const stale = Date.now() - state.runsLoadedAt >= RUNS_MS || byState !== state.runsByState;
  const live = state.runs.filter(isLive);
  if (stale || live.some(allDone)) return loadRuns(byState);
  if (!live.length) return;
  const reply = await api("/v1/dashboard/live-runs?" + new URLSearchParams({ run_ids: live.map((r) => r.run_id).join(",") }));
  const counters = new Map(reply.runs.map((r) => [r.run_id, r]));
  state.runs = state.runs.map((run) => {
    const c = counters.get(run.run_id);
    return c ? { ...run, ...c, queued: Math.max(0, run.accepted - c.processed) } : run;
  });
  if (state.runs.some((run) => isLive(run) && allDone(run))) return loadRuns(byState);  // it may have just finished
  renderRuns();
}

async function loadRun(runId) {
  const run = await api("/v1/runs/" + runId);
  $("#run-id").textContent = run.run_id;
  const fields = ["kind", "state", "pause_reason", "error", "created_at", "finished_at", "accepted", "rejected", "duplicates", "queued", "done",
    "inserted", "changed", "unchanged", "not_found", "failed", "skipped_fresh", "already_queued", "shared", "upstream_429", "retries",
    "pages_fetched", "total_results", "max_profiles"];
  const dl = el("dl", { class: "kv" });
  for (const f of fields) {
    if (run[f] === undefined || run[f] === null) continue;
    dl.append(el("dt", {}, f), el("dd", { "data-field": f }, f.endsWith("_at") ? fmtTime(run[f]) : String(run[f])));
  }
  dl.append(el("dt", {}, "ETA"), el("dd", {}, run.eta_s == null ? "—" : fmtDuration(run.eta_s)));
  dl.append(el("dt", {}, "credits spent"), el("dd", {}, fmtInt(creditsSpent(run))));
  const parts = [progressBar(run), el("p", {}, ...actionButtons(run, () => guard(loadRun(runId)))), dl];
  if (run.kind === "bulk") {
    const page = await api("/v1/dashboard/data-requests?" + new URLSearchParams({ run_id: runId, limit: "50" }));
    parts.push(el("h3", {}, "Data requests"), dataRequestTable("run-data-requests", page.data_requests));
  }
  $("#run-body").replaceChildren(...parts);
}

// --- bulk requests and subscriptions -----------------------------------------------------------
const dataRequestHref = (id) => "#/data-requests/" + id;

function filesExpire(dr) {
  if (!dr.files_expire_at) return "—";
  return dr.files_expired ? el("span", { class: "bad" }, "expired") : fmtTime(dr.files_expire_at);
}

function dataRequestRow(dr) {
  return el("tr", { class: "dr-row", "data-dr": dr.id },
    el("td", {}, el("a", { href: dataRequestHref(dr.id), title: dr.request_id || dr.id }, dr.request_id ? shortId(dr.request_id) : dr.id.slice(-5))),
    el("td", {}, el("a", { href: "#/runs/" + dr.run_id, title: dr.run_id }, shortId(dr.run_id))),
    el("td", {}, dr.kind),
    el("td", { class: "dr-state" }, dr.state + (dr.error ? " (" + dr.error + ")" : "")),
    el("td", {}, fmtDuration(dr.age_s)),
    el("td", { class: "dr-records" }, fmtInt(dr.records_ingested)),
    el("td", { class: "dr-files" }, dr.files_done + " / " + dr.files_total),
    el("td", {}, filesExpire(dr)));
}

function dataRequestTable(id, rows) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, ...["data request", "run", "kind", "state", "age", "records", "files done / total", "files expire"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map(dataRequestRow)));
}

async function loadBulk() {
  const params = new URLSearchParams({ limit: "20" });
  if (state.bulkCursor) params.set("cursor", state.bulkCursor);
  const page = await api("/v1/dashboard/data-requests?" + params);
  show($("#panel-bulk"), page.total > 0 || page.data_requests.length > 0);
  $("#bulk-total").textContent = "(" + Object.entries(page.by_state).filter(([, n]) => n).map(([s, n]) => s + " " + fmtInt(n)).join(" · ") + ")";
  $("#bulk-table tbody").replaceChildren(...page.data_requests.map(dataRequestRow));
  state.bulkNext = page.next_cursor;
  $("#bulk-next").disabled = !page.next_cursor;
  $("#bulk-first").disabled = !state.bulkCursor;
}

function subscriptionState(sub) {
  if (sub.status === "expired") return el("span", { class: "bad" }, "expired");
  return sub.silent ? el("span", { class: "bad" }, (sub.status || "?") + ", silent") : (sub.status || "—");
}

async function loadSubscriptions() {
  const params = new URLSearchParams({ limit: "20" });
  if (state.subsCursor) params.set("cursor", state.subsCursor);
  const page = await api("/v1/dashboard/subscriptions?" + params);
  show($("#panel-subscriptions"), page.total > 0 || page.subscriptions.length > 0);
  $("#subs-total").textContent = "(" + fmtInt(page.total) + ")";
  $("#subs-table tbody").replaceChildren(...page.subscriptions.map((sub) => el("tr", { class: "sub-row", "data-sub": sub.id },
    el("td", { title: sub.id }, shortId(sub.id)), el("td", {}, sub.type), el("td", {}, sub.selection),
    el("td", { class: "sub-state" }, subscriptionState(sub)), el("td", {}, fmtDuration(sub.age_s)),
    el("td", {}, sub.expiring_at ? fmtTime(sub.expiring_at) + " (in " + fmtDuration(sub.expires_in_s) + ")" : "—"),
    el("td", { class: "sub-delivery" }, sub.last_delivery_at ? fmtDuration(sub.last_delivery_age_s) + " ago" : "none yet"))));
  state.subsNext = page.next_cursor;
  $("#subs-next").disabled = !page.next_cursor;
  $("#subs-first").disabled = !state.subsCursor;
}

async function loadDataRequest(id) {
  const dr = await api("/v1/dashboard/data-requests/" + encodeURIComponent(id));
  $("#dr-id").textContent = dr.request_id || dr.id;
  const facts = [
    ["state", dr.state], ["error", dr.error], ["ledger row", dr.id], ["upstream id", dr.request_id],
    ["kind", dr.kind], ["created", fmtTime(dr.created_at)], ["submitted", fmtTime(dr.submitted_at)],
    ["ready", fmtTime(dr.ready_at)], ["files expire", dr.files_expire_at ? fmtTime(dr.files_expire_at) : "—"],
    ["polls", dr.polls], ["records ingested", fmtInt(dr.records_ingested)], ["bytes downloaded", fmtInt(dr.bytes_downloaded)],
    ["files done", dr.files_done + " / " + dr.files_total],
  ];
  const dl = el("dl", { class: "kv" });
  dl.append(el("dt", {}, "run"), el("dd", { "data-field": "run" },
    el("a", { href: "#/runs/" + dr.run_id }, dr.run_id), " (" + (dr.run_state || "gone") + ")"));
  for (const [k, v] of facts) {
    if (v === null || v === undefined) continue;
    dl.append(el("dt", {}, k), el("dd", { "data-field": k.replace(/ /g, "_") }, String(v)));
  }
  const files = el("table", { id: "dr-files" },
    el("thead", {}, el("tr", {}, ...["#", "file", "done", "records", "downloads"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...dr.files.map((f) => el("tr", {}, el("td", {}, f.index), el("td", {}, el("code", {}, f.name)),
      el("td", { class: "file-done" }, f.done ? "yes" : "no"), el("td", {}, fmtInt(f.records_ingested)),
      el("td", {}, f.downloads + (f.corrupt_downloads ? " (" + f.corrupt_downloads + " corrupt)" : ""))))));
  $("#dr-body").replaceChildren(dl, el("h3", {}, "Files"), files);
}

// --- dead letters ---------------------------------------------------------------------------
async function requeue(body) {
  const result = await api("/v1/dashboard/dead-letters/requeue", { method: "POST", body });
  const err = $("#error"); err.textContent = "requeued " + result.requeued; show(err, true);
  await loadDead();
}

async function loadDead() {
  const params = new URLSearchParams({ limit: "25" });
  if (state.deadReason) params.set("reason", state.deadReason);
  if (state.deadCursor) params.set("cursor", state.deadCursor);
  const page = await api("/v1/dashboard/dead-letters?" + params);
  $("#dead-total").textContent = "(" + fmtInt(page.total) + (state.deadReason ? " with this reason" : "") + ")";
  $("#reasons-table tbody").replaceChildren(...page.reasons.map((r) => el("tr", { class: state.deadReason === r.reason ? "selected" : "" },
    el("td", {}, el("a", { href: "#/", onclick: (ev) => { ev.preventDefault(); state.deadReason = state.deadReason === r.reason ? null : r.reason; state.deadCursor = null; state.deadCursors = []; guard(loadDead()); } }, r.reason)),
    el("td", {}, fmtInt(r.count)),
    el("td", {}, el("button", { type: "button", class: "requeue", onclick: () => guard(requeue({ reason: r.reason })) }, "requeue")))));
  $("#letters-table tbody").replaceChildren(...page.letters.map((l) => el("tr", {},
    el("td", {}, fmtTime(l.at)), el("td", {}, el("a", { href: "#/runs/" + l.run_id }, shortId(l.run_id))),
    el("td", {}, l.item_key.startsWith("id:") ? el("a", { href: "#/employees/" + l.item_key.slice(3) }, l.item_key) : l.item_key),
    el("td", {}, l.reason), el("td", {}, l.attempts))));
  state.deadNext = page.next_cursor;
  $("#dead-next").disabled = !page.next_cursor;
  $("#dead-first").disabled = !state.deadCursor;
}

// --- freshness ------------------------------------------------------------------------------
async function loadFreshness() {
  const f = await api("/v1/dashboard/freshness");
  show($("#panel-freshness"), f.available);
  if (!f.available) return;
  const top = Math.max(...f.buckets.map((b) => b.count), 1);
  const label = (b) => (b.le_s == null ? "older" : "≤ " + fmtDuration(b.le_s));
  $("#freshness-body").replaceChildren(
    el("p", {}, fmtInt(f.total) + " live profiles · " + fmtPct(f.over_max_age_share) + " older than " + fmtDuration(f.max_age_s)),
    el("table", { class: "hist" }, el("tbody", {}, ...f.buckets.map((b) => {
      const bar = el("div", { class: "hbar" }); bar.style.width = ((100 * b.count) / top).toFixed(1) + "%";
      return el("tr", {}, el("td", {}, label(b)), el("td", { class: "wide" }, bar), el("td", {}, fmtInt(b.count)));
    }))));
}

// --- search and a profile's page ------------------------------------------------------------
const MATCH_PAGES = { run: "#/runs/", employee: "#/employees/", data_request: "#/data-requests/" };
const matchHref = (m) => MATCH_PAGES[m.kind] + m.id;

async function loadSearch(q) {
  const result = await api("/v1/dashboard/search?" + new URLSearchParams({ q }));
  if (result.matches.length === 1) {
    const m = result.matches[0];
    location.replace(matchHref(m));
    return;
  }
  $("#search-body").replaceChildren(result.matches.length
    ? el("ul", {}, ...result.matches.map((m) => el("li", {}, el("a", { href: matchHref(m) }, m.label + " (" + m.id + ")"))))
    : el("p", { class: "muted" }, "Nothing found for “" + q + "”."));
}

async function loadEmployee(id) {
  const h = await api("/v1/employees/" + id + "/history");
  $("#employee-title").textContent = (h.name || "employee") + " · " + h.id;
  const sync = h.sync || {};
  const facts = el("dl", { class: "kv" },
    el("dt", {}, "mirrored"), el("dd", {}, h.mirrored ? "yes" : "no"),
    el("dt", {}, "shorthand names"), el("dd", {}, (h.shorthand_names || []).join(", ") || "—"),
    el("dt", {}, "last synced"), el("dd", {}, fmtTime(sync.synced_at)),
    el("dt", {}, "last changed"), el("dd", {}, fmtTime(sync.changed_at)),
    el("dt", {}, "first seen"), el("dd", {}, fmtTime(sync.first_seen_at)),
    el("dt", {}, "deleted upstream"), el("dd", {}, fmtTime(sync.deleted_at)),
    el("dt", {}, "collects"), el("dd", {}, fmtInt(h.collects_total)));
  const collects = el("table", { id: "collects-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "when"), el("th", {}, "outcome"), el("th", {}, "asked by"), el("th", {}, "run"))),
    el("tbody", {}, ...h.collects.map((c) => el("tr", {}, el("td", {}, fmtTime(c.at)), el("td", { class: "outcome-" + c.outcome }, c.outcome),
      el("td", {}, c.by), el("td", {}, el("a", { href: "#/runs/" + c.run_id }, shortId(c.run_id)))))));
  const changes = el("table", { id: "changes-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "when"), el("th", {}, "fields changed"), el("th", {}, "run"))),
    el("tbody", {}, ...h.changes.map((c) => el("tr", {}, el("td", {}, fmtTime(c.at)), el("td", {}, c.fields.join(", ")),
      el("td", {}, c.run_id ? el("a", { href: "#/runs/" + c.run_id }, shortId(c.run_id)) : "—")))));
  $("#employee-body").replaceChildren(facts, el("h3", {}, "Sync history"), collects, el("h3", {}, "Changes"), changes);
}

// --- wiring ---------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("#token");
    const token = input.value.trim();
    input.value = "";
    if (token) signIn(token);
  });
  $("#logout").addEventListener("click", () => signOut(""));
  $("#search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("#search-q").value.trim();
    if (q) location.hash = "#/search/" + encodeURIComponent(q);
  });
  $("#runs-state").addEventListener("change", () => { state.runsCursor = null; state.runsCursors = []; guard(loadRuns()); });
  $("#runs-next").addEventListener("click", () => { state.runsCursors.push(state.runsCursor); state.runsCursor = state.runsNext; guard(loadRuns()); });
  $("#runs-first").addEventListener("click", () => { state.runsCursor = null; state.runsCursors = []; guard(loadRuns()); });
  $("#dead-next").addEventListener("click", () => { state.deadCursors.push(state.deadCursor); state.deadCursor = state.deadNext; guard(loadDead()); });
  $("#dead-first").addEventListener("click", () => { state.deadCursor = null; state.deadCursors = []; guard(loadDead()); });
  $("#bulk-next").addEventListener("click", () => { state.bulkCursor = state.bulkNext; guard(loadBulk()); });
  $("#bulk-first").addEventListener("click", () => { state.bulkCursor = null; guard(loadBulk()); });
  $("#subs-next").addEventListener("click", () => { state.subsCursor = state.subsNext; guard(loadSubscriptions()); });
  $("#subs-first").addEventListener("click", () => { state.subsCursor = null; guard(loadSubscriptions()); });
  window.addEventListener("hashchange", route);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved); else setSignedIn(false);
});
