// The page's only way to the server: GET JSON from /api/v1, with errors a view can show.
//
// Every answer also reports the API's health to whoever listens (the "API down" banner):
// a network failure or a 5xx marks it down, any answer from the app marks it up again.
// Every answer to a query (series, summary, fleet) reports whether it is partial: a cluster
// node answers from its store alone, marked `"partial": true`, while a partition has no owner.
// A 401 asks for a token (token.js) and sends the request again with it.

import { authHeaders, refused, token } from "./token.js";

import { readKinds, withRates } from "./kinds.js";

export class ApiError extends Error {
  constructor(status, message, url) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0 when the server could not be reached
    this.url = String(url);
  }

  get unreachable() {
    return this.status === 0 || this.status >= 500;
  }
}

const listeners = new Set();
const partialListeners = new Set();
let healthy = true;
let lastOk = null;

/** The API paths whose answers say whether they are partial. */
const QUERY_PATH = /\/(series|summary|fleet)$/;

/** `fn(healthy, error, lastOk)` on every change of health. */
export function onHealth(fn) {
  listeners.add(fn);
}

/** `fn(partial)` on every query answer: true when it came from a cluster's store alone. */
export function onPartial(fn) {
  partialListeners.add(fn);
}

export function isHealthy() {
  return healthy;
}

function report(ok, error = null) {
  if (ok) lastOk = Date.now();
  if (ok === healthy) return;
  healthy = ok;
  for (const fn of listeners) fn(ok, error, lastOk);
}

/** The URL of an API path with query parameters (arrays repeat the key). */
export function apiUrl(path, params = {}) {
  const url = new URL(`api/v1/${path}`, document.baseURI);
  for (const [key, value] of Object.entries(params)) {
    if (value == null) continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
  }
  return url;
}

/** GET JSON (`path` may be a built URL); throws ApiError with the API's own message on 4xx/5xx or a network failure. */
export async function getJSON(path, params = {}, { signal } = {}) {
  const url = withRates(new URL(path instanceof URL ? path : apiUrl(path, params)));
  let resp;
  for (;;) {
    const sent = token();
    try {
      const headers = { accept: "application/json", ...authHeaders() };
      resp = await fetch(url, { signal, cache: "no-store", headers });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      const err = new ApiError(0, `cannot reach the minutely API at ${url.host}`, url);
      report(false, err);
      throw err;
    }
    if (resp.status !== 401) break;
    // the API has tokens: ask for one (once for every request refused), then send again
    const refusal = await resp.json().catch(() => null);
    await refused(sent, refusal && refusal.error ? refusal.error : `HTTP 401 from ${url.pathname}`);
    if (signal && signal.aborted) throw new DOMException("aborted", "AbortError");
  }
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    if (e.name === "AbortError") throw e;
  }
  if (!resp.ok || body == null) {
    const message = body && body.error ? body.error : `HTTP ${resp.status} from ${url.pathname}`;
    const err = new ApiError(resp.status, message, url);
    report(!err.unreachable, err);
    throw err;
  }
  report(true);
  if (QUERY_PATH.test(url.pathname)) for (const fn of partialListeners) fn(body.partial === true);
  return readKinds(url, body);
}

/** Path segment for a server or metric name. */
export const seg = (name) => encodeURIComponent(name);

/** The API's list form of `fields` (null: every default field). */
const list = (fields) => (fields && fields.length ? fields.join(",") : null);

/**
 * Q1/Q2: `by` is "server" or "metric"; `only` (repeated `metric=`/`server=`) keeps those
 * series, `fields` (e.g. ["avg", "count"]) the arrays each series carries.
 */
export function seriesUrl(by, name, { start, end, step, only, fields }) {
  const other = by === "server" ? "metric" : "server";
  return apiUrl(`${by}s/${seg(name)}/series`, { start, end, step, [other]: only, fields: list(fields) });
}

export function series(by, name, query, opts) {
  return getJSON(seriesUrl(by, name, query), {}, opts);
}

/** One metric merged over every server (or the `only` ones): {servers, timestamps, min, max, avg, count}. */
export function fleetUrl(metric, { start, end, step, only, fields }) {
  return apiUrl(`metrics/${seg(metric)}/fleet`, { start, end, step, server: only, fields: list(fields) });
}

export function fleet(metric, query, opts) {
  return getJSON(fleetUrl(metric, query), {}, opts);
}

/** Q3/Q4. */
export function summary(by, name, { start, end, only }, opts) {
  const other = by === "server" ? "metric" : "server";
  return getJSON(`${by}s/${seg(name)}/summary`, { start, end, [other]: only }, opts);
}
