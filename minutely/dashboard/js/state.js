// The view's state lives in the URL hash, so a reload or a shared link shows the same view:
//
//   #/fleet?metric=cpu.user&agg=max&range=6h
//   #/server/web-001?range=2d&q=cpu&sort=max.desc
//   #/metric/cpu.user?show=web-001,web-004&range=custom&from=1764000000&to=1764003600
//   #/cluster (a cluster's nodes and partitions; it keeps no name)
//   ...&live=0 (paused) &refresh=30 (seconds between live refreshes)

import { RANGES } from "./timerange.js";

export const VIEWS = ["fleet", "server", "metric", "cluster"];

/** The views that show one server or metric, named in the path. */
const NAMED = ["server", "metric"];

const DEFAULTS = {
  view: "fleet",
  name: "",
  range: "1h",
  from: null,
  to: null,
  metric: "",
  agg: "avg",
  q: "",
  sort: "",
  show: [],
  top: 10,
  live: true,
  refresh: 10,
};

function int(text, fallback) {
  const n = Number.parseInt(text, 10);
  return Number.isFinite(n) ? n : fallback;
}

/** The state a hash describes; anything missing or invalid falls back to its default. */
export function parse(hash) {
  const text = (hash || "").replace(/^#\/?/, "");
  const cut = text.indexOf("?");
  const path = cut < 0 ? text : text.slice(0, cut);
  const query = new URLSearchParams(cut < 0 ? "" : text.slice(cut + 1));
  const [view, ...rest] = path.split("/");
  const state = { ...DEFAULTS, show: [] };
  state.view = VIEWS.includes(view) ? view : "fleet";
  state.name = NAMED.includes(state.view) ? safeDecode(rest.join("/")) : "";
  const range = query.get("range");
  if (range && (range in RANGES || range === "custom")) state.range = range;
  state.from = query.has("from") ? int(query.get("from"), null) : null;
  state.to = query.has("to") ? int(query.get("to"), null) : null;
  if (state.range === "custom" && (state.from == null || state.to == null || state.to <= state.from)) {
    state.range = DEFAULTS.range;
  }
  state.metric = query.get("metric") || "";
  state.agg = query.get("agg") === "max" ? "max" : "avg";
  state.q = query.get("q") || "";
  state.sort = query.get("sort") || "";
  state.show = (query.get("show") || "").split(",").filter(Boolean);
  state.top = Math.min(100, Math.max(1, int(query.get("top"), DEFAULTS.top)));
  state.live = query.get("live") !== "0";
  state.refresh = Math.min(3600, Math.max(1, int(query.get("refresh"), DEFAULTS.refresh)));
  return state;
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The hash for `state`: only what differs from the defaults. */
export function serialize(state) {
  let path = `#/${state.view}`;
  if (NAMED.includes(state.view) && state.name) path += `/${encodeURIComponent(state.name)}`;
  const q = new URLSearchParams();
  if (state.range !== DEFAULTS.range) q.set("range", state.range);
  if (state.range === "custom") {
    q.set("from", String(state.from));
    q.set("to", String(state.to));
  }
  if (state.view === "fleet" && state.metric) q.set("metric", state.metric);
  if (state.view === "fleet" && state.agg !== DEFAULTS.agg) q.set("agg", state.agg);
  if (state.view === "fleet" && state.top !== DEFAULTS.top) q.set("top", String(state.top));
  if (state.q) q.set("q", state.q);
  if (state.sort) q.set("sort", state.sort);
  if (state.view === "metric" && state.show.length) q.set("show", state.show.join(","));
  if (!state.live) q.set("live", "0");
  if (state.refresh !== DEFAULTS.refresh) q.set("refresh", String(state.refresh));
  const query = q.toString().replaceAll("%2C", ",");
  return query ? `${path}?${query}` : path;
}

/** The link to a view, keeping the range and live settings of `state`. */
export function link(state, view, name = "", extra = {}) {
  return serialize({
    ...DEFAULTS, show: [],
    range: state.range, from: state.from, to: state.to, live: state.live, refresh: state.refresh,
    view, name, ...extra,
  });
}
