// Pure functions over the API's answers: merging a live refresh into what the page holds,
// and the fleet-wide aggregate of a metric.
//
// A series answer is {start, end, step, timestamps, series: [{<label>, min, max, avg, count}]}
// with null min/max/avg and count 0 for an empty bucket; `label` is "metric" or "server".

const FIELDS = ["min", "max", "avg", "count"];

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

function blank(field, n) {
  return new Array(n).fill(field === "count" ? 0 : null);
}

/**
 * `old` with the buckets of `fresh` (a later, overlapping answer at the same step) laid over
 * it: buckets in both take the fresh values, new buckets are appended, and the window slides
 * so it holds as many buckets as `old` did. Series that appear are added; series left with no
 * data are dropped, as the API does.
 */
export function mergeSeries(old, fresh, label) {
  if (!old || old.step !== fresh.step || !old.timestamps.length) return fresh;
  if (!fresh.timestamps.length) return old;
  const keep = old.timestamps.length;
  const splice = firstAtOrAfter(old.timestamps, fresh.timestamps[0]);
  const total = splice + fresh.timestamps.length;
  const cut = Math.max(0, total - keep);
  const join = (a, b) => a.slice(0, splice).concat(b).slice(cut);
  const timestamps = join(old.timestamps, fresh.timestamps);
  const byLabel = new Map(fresh.series.map((s) => [s[label], s]));
  const names = old.series.map((s) => s[label]);
  const seen = new Set(names);
  for (const s of fresh.series) if (!seen.has(s[label])) names.push(s[label]);
  const olds = new Map(old.series.map((s) => [s[label], s]));
  const series = [];
  for (const name of names) {
    const o = olds.get(name);
    const f = byLabel.get(name);
    const merged = { [label]: name };
    for (const field of FIELDS) {
      merged[field] = join(o ? o[field] : blank(field, old.timestamps.length), f ? f[field] : blank(field, fresh.timestamps.length));
    }
    if (merged.count.some((c) => c > 0)) series.push(merged);
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
 * The fleet's view of one metric per bucket, from a Q2 answer: min of the servers' minimums,
 * max of their maximums, the average of every point (sum of avg × count over total count) and
 * how many servers reported.
 */
export function fleetAggregate(answer) {
  const n = answer.timestamps.length;
  const min = new Array(n).fill(null);
  const max = new Array(n).fill(null);
  const sum = new Float64Array(n);
  const count = new Float64Array(n);
  const servers = new Array(n).fill(0);
  for (const s of answer.series) {
    for (let i = 0; i < n; i++) {
      const c = s.count[i];
      if (!c) continue;
      if (min[i] === null || s.min[i] < min[i]) min[i] = s.min[i];
      if (max[i] === null || s.max[i] > max[i]) max[i] = s.max[i];
      sum[i] += s.avg[i] * c;
      count[i] += c;
      servers[i] += 1;
    }
  }
  const avg = Array.from(sum, (v, i) => (count[i] ? v / count[i] : null));
  return { min, max, avg, count: Array.from(count), servers };
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
