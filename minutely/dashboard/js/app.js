// The page: reads the state from the URL, mounts the view it names, keeps the top bar
// (views, time range, live refresh) in step with it, shows a banner while the API is down and
// a notice while the answers shown are partial (a cluster partition without an owner).

import * as api from "./api.js";
import { fmtTime } from "./format.js";
import { link, parse, serialize } from "./state.js";
import { resolveRange } from "./timerange.js";
import { hideTip } from "./tooltip.js";
import { ClusterView } from "./views/cluster.js";
import { FleetView } from "./views/fleet.js";
import { MetricView } from "./views/metric.js";
import { ServerView } from "./views/server.js";

const VIEWS = { fleet: FleetView, server: ServerView, metric: MetricView, cluster: ClusterView };

const root = document.getElementById("view");
const banner = document.getElementById("banner");
const progress = document.getElementById("progress");
const partialNote = document.getElementById("partial");
const clusterTab = document.querySelector('.tabs a[data-view="cluster"]');
const liveButton = document.getElementById("live-toggle");
const liveStatus = document.getElementById("live-status");
const customForm = document.querySelector(".custom-range");

let state = parse(location.hash);
let view = null;
let busy = 0;
let updatedAt = null;
let clusterKnown = false; // whether /status has said if this node is part of a cluster
const recent = { server: "", metric: "" };

/** What views get: the state, navigation, and the page's shared chrome. */
const ctx = {
  get state() {
    return state;
  },
  /** Navigate (a new history entry). */
  go(patch) {
    const next = serialize({ ...state, ...patch });
    if (next !== location.hash) location.hash = next;
  },
  /** Change the state in place (filter, sort, toggles): no history entry. */
  set(patch) {
    const next = { ...state, ...patch };
    history.replaceState(null, "", serialize(next));
    apply(next);
  },
  link: (viewName, name = "", extra = {}) => link(state, viewName, name, extra),
  /** Seconds between live refreshes of the current view. */
  get period() {
    return period();
  },
  async busy(promise) {
    busy += 1;
    progress.hidden = false;
    try {
      return await promise;
    } finally {
      busy -= 1;
      if (!busy) progress.hidden = true;
    }
  },
  updated() {
    updatedAt = new Date();
    renderLive();
  },
};

/** The current view's class: its live period and whether it ignores the time range. */
const kind = () => VIEWS[state.view];
/** Seconds between live refreshes: the view's own period, else the state's. */
const period = () => kind().refreshSeconds ?? state.refresh;
/** Is the view live now? A view of the present only (the cluster) is, whatever the range. */
const isLive = () => kind().timeless || resolveRange(state).live;

function mount() {
  view?.destroy();
  hideTip();
  partialNote.hidden = true; // the new view's answers say again
  root.textContent = "";
  root.className = `view-${state.view}`;
  document.body.dataset.view = state.view;
  updatedAt = null;
  renderLive();
  view = new VIEWS[state.view](root, ctx);
  view.mount(state);
}

function apply(next) {
  const prev = state;
  state = next;
  if (state.view !== "fleet" && state.name) recent[state.view] = state.name;
  if (state.view === "fleet" && state.metric) recent.metric = state.metric;
  renderChrome();
  if (!view || prev.view !== next.view || prev.name !== next.name) mount();
  else view.update(next, prev);
  if (next.refresh !== prev.refresh || next.view !== prev.view) schedule();
  if (next.live && !prev.live) schedule(0); // resuming: catch up at once
}

function renderChrome() {
  for (const a of document.querySelectorAll(".tabs a")) {
    const v = a.dataset.view;
    a.classList.toggle("active", v === state.view);
    a.setAttribute("aria-current", v === state.view ? "page" : "false");
    a.href = ctx.link(v, v === "fleet" ? "" : recent[v], v === "fleet" && recent.metric ? { metric: recent.metric } : {});
  }
  for (const b of document.querySelectorAll(".ranges button")) {
    b.classList.toggle("active", b.dataset.range === state.range);
    b.setAttribute("aria-pressed", String(b.dataset.range === state.range));
  }
  if (state.range !== "custom") customForm.hidden = true;
  renderLive();
}

function renderLive() {
  const live = isLive();
  liveButton.disabled = !live;
  liveButton.setAttribute("aria-pressed", String(state.live && live));
  liveButton.textContent = state.live ? "❚❚ Pause" : "▶ Live";
  liveButton.title = state.live ? "Stop refreshing the current minute" : `Refresh every ${period()} s`;
  const when = updatedAt ? ` · updated ${fmtTime(updatedAt.getTime() / 1000, { seconds: true })}` : "";
  let text;
  if (!live) text = "fixed range";
  else if (state.live) text = `live every ${period()} s${when}`;
  else text = `paused${when}`;
  liveStatus.textContent = text;
  liveStatus.classList.toggle("on", state.live && live);
}

// --- time range --------------------------------------------------------------------------

const toLocalInput = (ts) => {
  const d = new Date(ts * 1000);
  d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
  return d.toISOString().slice(0, 16);
};

for (const b of document.querySelectorAll(".ranges button")) {
  b.addEventListener("click", () => {
    const range = b.dataset.range;
    if (range !== "custom") {
      ctx.go({ range, from: null, to: null });
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const current = resolveRange(state);
    const from = state.range === "custom" ? state.from : now - current.seconds;
    const to = state.range === "custom" ? state.to : now;
    customForm.from.value = toLocalInput(from);
    customForm.to.value = toLocalInput(to);
    customForm.hidden = !customForm.hidden;
    if (!customForm.hidden) customForm.from.focus();
  });
}

customForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const from = Math.floor(new Date(customForm.from.value).getTime() / 1000);
  const to = Math.floor(new Date(customForm.to.value).getTime() / 1000);
  if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) {
    customForm.to.setCustomValidity("The end must be after the start");
    customForm.reportValidity();
    return;
  }
  customForm.to.setCustomValidity("");
  customForm.hidden = true;
  ctx.go({ range: "custom", from, to });
});
customForm.to.addEventListener("input", () => customForm.to.setCustomValidity(""));

// --- live refresh ------------------------------------------------------------------------

liveButton.addEventListener("click", () => ctx.set({ live: !state.live }));

let ticking = false;
let timer = 0;

function schedule(ms = period() * 1000) {
  clearTimeout(timer);
  timer = setTimeout(tick, ms);
}

async function tick() {
  if (ticking) return;
  ticking = true;
  try {
    if (state.live && isLive() && document.visibilityState === "visible") {
      await view?.refresh();
    } else if (!api.isHealthy()) {
      await view?.refresh({ healthOnly: true });
    }
  } catch (e) {
    if (e.name !== "AbortError" && !(e instanceof api.ApiError)) console.error(e);
  } finally {
    ticking = false;
    schedule();
  }
}

// --- API health --------------------------------------------------------------------------

api.onHealth((ok, error, lastOk) => {
  if (ok) {
    banner.hidden = true;
    banner.textContent = "";
    if (!clusterKnown) findCluster();
    return;
  }
  const since = lastOk ? ` The page shows data up to ${fmtTime(lastOk / 1000, { seconds: true })}.` : "";
  const cause = error && error.status ? ` (HTTP ${error.status}: ${error.message})` : "";
  banner.textContent =
    `Cannot reach the minutely API at ${location.host}${cause}. Retrying every ${period()} s.${since}`;
  banner.hidden = false;
});

// --- partial answers and the cluster ------------------------------------------------------

api.onPartial((partial) => {
  partialNote.hidden = !partial;
});

/** Show the Cluster tab when this node is part of a cluster (a single node has no such page). */
async function findCluster() {
  try {
    const status = await api.getJSON("status");
    clusterKnown = true;
    clusterTab.hidden = status.role !== "cluster";
  } catch (e) {
    if (!(e instanceof api.ApiError)) console.error(e); // asked again once the API answers
  }
}

window.addEventListener("hashchange", () => apply(parse(location.hash)));

// Debug and test hooks: draw timings and the state, read by tests/browser.
window.__minutely = {
  draws: [],
  get state() { return state; },
  get view() { return view; },
};

const canonical = serialize(state);
if (location.hash !== canonical) history.replaceState(null, "", canonical);
renderChrome();
mount();
schedule();
findCluster();
