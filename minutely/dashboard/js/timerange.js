// Time ranges, steps and the query parameters they become.

/** The preset ranges: seconds, and the API's relative form. */
export const RANGES = {
  "15m": { seconds: 900, start: "-15m", label: "last 15 minutes" },
  "1h": { seconds: 3600, start: "-1h", label: "last hour" },
  "6h": { seconds: 6 * 3600, start: "-6h", label: "last 6 hours" },
  "2d": { seconds: 2 * 86400, start: "-2d", label: "last 2 days" },
  "30d": { seconds: 30 * 86400, start: "-30d", label: "last 30 days" },
  "1y": { seconds: 365 * 86400, start: "-365d", label: "last year" },
};

/** Steps a chart may ask for: whole minutes that divide hours and days evenly. */
const STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

/**
 * The finest step at which `seconds` of range fits in `pixels` points. The API answers
 * `ceil(range / step) + 1` buckets at most (the range need not be step-aligned).
 */
export function chooseStep(seconds, pixels) {
  const width = Math.max(16, Math.floor(pixels));
  for (const step of STEPS) if (Math.ceil(seconds / step) + 1 <= width) return step;
  return STEPS[STEPS.length - 1];
}

/**
 * What `state` asks for: `{start, end, seconds, live, label}` where start/end are the API's
 * parameters (relative for presets, unix seconds for a custom range).
 */
export function resolveRange(state) {
  if (state.range === "custom" && state.from != null && state.to != null && state.to > state.from) {
    const label = "custom range";
    return { start: String(state.from), end: String(state.to), seconds: state.to - state.from, live: false, label };
  }
  const preset = RANGES[state.range] || RANGES["1h"];
  return { start: preset.start, end: "now", seconds: preset.seconds, live: true, label: preset.label };
}
