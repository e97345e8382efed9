// Counters are drawn as rates per second. The API says which metrics are counters (the
// `kinds` of /api/v1/metrics, `"kind": "counter"` in answers) and, asked with `fn=rate`,
// answers a counter's series with its `rate` per bucket instead of min/max/avg of what was
// folded (each sample's increase). Here the rate takes the place of min, max and avg, so every
// view draws a counter's rate as it draws a gauge's average. A bucket still filling holds only
// part of its increase, so its rate would read low: a counter is drawn up to the last whole one.

import { authHeaders } from "./token.js";

const counters = new Set();

/** Whether `metric` is a counter (as far as the API has said). */
export function isCounter(metric) {
  return counters.has(metric);
}

/** The paths whose answers carry rates when asked with `fn=rate`. */
const QUERY_PATH = /\/(series|summary|fleet)$/;

/** `url` (a URL), asking for rates when it is a question. */
export function withRates(url) {
  if (QUERY_PATH.test(url.pathname) && !url.searchParams.has("fn")) url.searchParams.set("fn", "rate");
  return url;
}

function asRate(entry, filling = -1) {
  if (!entry || entry.kind !== "counter" || entry.rate == null) return entry;
  let { rate, count } = entry;
  if (filling >= 0 && Array.isArray(rate)) {
    rate = rate.map((r, i) => (i >= filling ? null : r));
    count = count.map((c, i) => (i >= filling ? 0 : c));
  }
  return { ...entry, rate, count, min: rate, max: rate, avg: rate };
}

/** The first bucket of a series or fleet answer that has not ended yet, or -1. */
function firstFilling(body) {
  if (!Array.isArray(body.timestamps)) return -1;
  const now = Date.now() / 1000;
  return body.timestamps.findIndex((t) => t + body.step > now);
}

/** Learn kinds from an answer of `url`, and give a counter's rate as its min/max/avg. */
export function readKinds(url, body) {
  if (!body || typeof body !== "object") return body;
  if (url.pathname.endsWith("/api/v1/metrics") && Array.isArray(body.kinds)) {
    body.metrics.forEach((m, i) => (body.kinds[i] === "counter" ? counters.add(m) : counters.delete(m)));
    return body;
  }
  if (!QUERY_PATH.test(url.pathname)) return body;
  const note = (entry, metric) => {
    if (entry && entry.kind === "counter" && metric) counters.add(metric);
  };
  if (Array.isArray(body.series)) {
    for (const s of body.series) note(s, s.metric || body.metric);
    const filling = firstFilling(body);
    return { ...body, series: body.series.map((s) => asRate(s, filling)) };
  }
  if (Array.isArray(body.rows)) {
    for (const r of body.rows) note(r, r.metric || body.metric);
    return { ...body, rows: body.rows.map((r) => asRate(r)) };
  }
  note(body, body.metric);
  return asRate(body, firstFilling(body));
}

/** Learn every metric's kind once at start, so the first view shows counters' units. */
async function learn() {
  try {
    const url = new URL("api/v1/metrics", document.baseURI);
    const resp = await fetch(url, { cache: "no-store", headers: { accept: "application/json", ...authHeaders() } });
    if (resp.ok) readKinds(url, await resp.json());
  } catch {
    // the API is away or wants a token: answers will say which metrics are counters
  }
}

await learn();
