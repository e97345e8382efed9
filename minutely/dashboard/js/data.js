// Pure functions over the API's answers: merging a live refresh into what the page holds and
// laying arrays over another answer's buckets.
//
// A series answer is {start, end, step, timestamps, series: [{<label>, min, max, avg, count}]}
// with null min/max/avg and count 0 for an empty bucket; `label` is "metric" or "server". A
// request may ask for fewer arrays (`fields=avg,count`): the functions here carry whichever
// arrays an answer has. A fleet answer holds those arrays at the top level, with `servers`.

/** The per-bucket arrays an answer may carry. */
export const FIELDS = ["min", "max", "avg", "sum", "count"];

function firstAtOrAfter(sorted, value) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** An empty bucket's value of `field`, `n` times. */
export function blank(field, n) {
  return new Array(n).fill(field === "count" || field === "sum" ? 0 : null);
}

/** The fields of FIELDS that `obj` carries as arrays. */
export function fieldsOf(obj) {
  return obj ? FIELDS.filter((f) => Array.isArray(obj[f])) : [];
}

/**
 * How `fresh` timestamps (a later, overlapping answer at the same step) lie over `held`:
 * buckets in both take the fresh values, new buckets are appended, and the window slides so
 * it holds as many buckets as `held` did. `join(heldArray, freshArray)` does it to one array.
 */
export function slide(held, fresh) {
  const keep = held.length;
  const splice = firstAtOrAfter(held, fresh[0]);
  const cut = Math.max(0, splice + fresh.length - keep);
  const join = (a, b) => a.slice(0, splice).concat(b).slice(cut);
  return { timestamps: join(held, fresh), join };
}

/**
 * `old` with the buckets of `fresh` (a later, overlapping answer at the same step) laid over
 * it (see `slide`). Series that appear are added; series left with no data are dropped, as
 * the API does.
 */
export function mergeSeries(old, fresh, label) {
  if (!old || old.step !== fresh.step || !old.timestamps.length) return fresh;
  if (!fresh.timestamps.length) return old;
  const { timestamps, join } = slide(old.timestamps, fresh.timestamps);
  const byLabel = new Map(fresh.series.map((s) => [s[label], s]));
  const names = old.series.map((s) => s[label]);
  const seen = new Set(names);
  for (const s of fresh.series) if (!seen.has(s[label])) names.push(s[label]);
  const olds = new Map(old.series.map((s) => [s[label], s]));
  const fields = fieldsOf(fresh.series[0] || old.series[0]);
  const series = [];
  for (const name of names) {
    const o = olds.get(name);
    const f = byLabel.get(name);
    const merged = { [label]: name };
    for (const field of fields) {
      merged[field] = join(o ? o[field] : blank(field, old.timestamps.length), f ? f[field] : blank(field, fresh.timestamps.length));
    }
    if (hasData(merged)) series.push(merged);
  }
  return {
    ...fresh,
    start: timestamps[0],
    end: timestamps[timestamps.length - 1] + fresh.step,
    timestamps,
    series,
  };
}

/**
 * A fleet answer (`/metrics/{m}/fleet`) with a later one's buckets laid over it. `servers`
 * counts distinct servers, which do not add up across answers: the merge keeps the larger.
 */
export function mergeFleet(old, fresh) {
  if (!old || old.step !== fresh.step || !old.timestamps.length) return fresh;
  if (!fresh.timestamps.length) return old;
  const { timestamps, join } = slide(old.timestamps, fresh.timestamps);
  const merged = {
    ...fresh,
    start: timestamps[0],
    end: timestamps[timestamps.length - 1] + fresh.step,
    timestamps,
    servers: Math.max(old.servers || 0, fresh.servers || 0),
  };
  for (const field of fieldsOf(fresh)) merged[field] = join(old[field] || blank(field, old.timestamps.length), fresh[field]);
  return merged;
}

/**
 * `values`, one per bucket of `from` (timestamps), laid over the buckets `to` at the same
 * `step`: what `from` lacks is `fill`. The same array when the buckets already match.
 */
export function realign(values, from, to, step, fill = null) {
  if (from.length === to.length && from[0] === to[0]) return values;
  const out = new Array(to.length).fill(fill);
  if (!from.length || !to.length) return out;
  const offset = Math.round((from[0] - to[0]) / step);
  for (let i = Math.max(0, offset); i < to.length && i - offset < values.length; i++) out[i] = values[i - offset];
  return out;
}

/** Does a series (or fleet answer) have a point in any bucket? */
export function hasData(s) {
  if (Array.isArray(s.count)) return s.count.some((c) => c > 0);
  return ["min", "max", "avg"].some((f) => Array.isArray(s[f]) && s[f].some((v) => v != null));
}

/** Index of the last bucket with data, or -1. */
export function lastIndex(s) {
  for (let i = s.count.length - 1; i >= 0; i--) if (s.count[i] > 0) return i;
  return -1;
}

/** Case-insensitive filter: every whitespace-separated term must appear in the name. */
export function matcher(query) {
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!terms.length) return () => true;
  return (name) => {
    const lower = name.toLowerCase();
    return terms.every((t) => lower.includes(t));
  };
}
