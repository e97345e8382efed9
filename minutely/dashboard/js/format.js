// Numbers, units and times as a person reads them.

import { isCounter } from "./kinds.js";

const PERCENT_CPU = /^cpu\.(user|system|iowait|steal|idle|nice|irq|softirq|guest)$/;

/** The unit a metric is shown in: its name's, per second for a counter (drawn as a rate). */
export function unitOf(metric) {
  const unit = nameUnit(metric);
  return isCounter(metric) ? `${unit}/s` : unit;
}

/** The unit a metric's name implies, or "" when it says nothing. */
function nameUnit(metric) {
  const m = metric.toLowerCase();
  if (/(_pct|_percent|\.pct|\.percent)$/.test(m) || PERCENT_CPU.test(m)) return "%";
  if (/(_bytes|\.bytes)$/.test(m) || /(_bytes|\.bytes)\./.test(m)) return "B";
  if (/(_ms|\.ms)(\.|$)/.test(m)) return "ms";
  if (/(_seconds|_secs|_s)$/.test(m)) return "s";
  if (/(_c|_celsius)$/.test(m)) return "°C";
  return "";
}

const SI = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
const IEC = [[2 ** 50, "PiB"], [2 ** 40, "TiB"], [2 ** 30, "GiB"], [2 ** 20, "MiB"], [2 ** 10, "KiB"]];

function digits(v) {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a >= 0.01) return v.toFixed(3);
  return v.toPrecision(2);
}

function withUnit(text, unit) {
  if (!unit) return text;
  return unit === "%" ? `${text}%` : `${text} ${unit}`;
}

/** A rate's unit as its amount's unit and "/s": "B/s" is ["B", "/s"], "/s" is ["", "/s"]. */
function perSecond(unit) {
  return unit.endsWith("/s") ? [unit.slice(0, -2), "/s"] : [unit, ""];
}

/** A short value for axes, tables and labels: 3–4 significant digits and a unit. */
export function fmtValue(v, unit = "") {
  if (v == null || Number.isNaN(v)) return "–";
  const [amount, per] = perSecond(unit);
  return shortValue(v, amount) + per;
}

function shortValue(v, unit) {
  const a = Math.abs(v);
  if (unit === "B") {
    for (const [size, name] of IEC) if (a >= size) return `${trim((v / size).toFixed(2))} ${name}`;
    return `${digits(v)} B`;
  }
  for (const [size, suffix] of SI) {
    if (a >= size * 10) return withUnit(`${trim((v / size).toFixed(a >= size * 100 ? 0 : 1))}${suffix}`, unit);
  }
  return withUnit(trim(digits(v)), unit);
}

function trim(text) {
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

const GROUPED = new Intl.NumberFormat("en-US", { maximumFractionDigits: 6 });

/** The value as sent (grouped digits, up to 6 decimals) with its unit; bytes also short. */
export function fmtExact(v, unit = "") {
  if (v == null || Number.isNaN(v)) return "no data";
  const [amount, per] = perSecond(unit);
  const text = withUnit(GROUPED.format(v), amount) + per;
  return amount === "B" && Math.abs(v) >= 1024 ? `${text} (${fmtValue(v, unit)})` : text;
}

/** Counts: grouped digits. */
export function fmtCount(n) {
  return n == null ? "–" : GROUPED.format(n);
}

const pad = (n) => String(n).padStart(2, "0");

/** Local wall-clock time of unix seconds: "14:05" or with the date when `withDate`. */
export function fmtTime(ts, { withDate = false, seconds = false } = {}) {
  const d = new Date(ts * 1000);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ""}`;
  if (!withDate) return time;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** A bucket `[ts, ts + step)` as a readable span. */
export function fmtBucket(ts, step) {
  const end = ts + step;
  const sameDay = new Date(ts * 1000).toDateString() === new Date(end * 1000).toDateString();
  return `${fmtTime(ts, { withDate: true })} – ${fmtTime(end, { withDate: !sameDay })}`;
}

/** "5 min", "1 h", "2 d". */
export function fmtDuration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** An age or a span of seconds as a person reads it: "4.2 s", "12 s", "5 min", "3 h 12 min", "2 d 4 h". */
export function fmtAge(seconds) {
  if (seconds == null || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** Axis tick labels: one prefix for the whole axis and as many decimals as the tick step needs. */
export function fmtAxis(splits, incr, unit = "") {
  const [amount, per] = perSecond(unit);
  return axisLabels(splits, incr, amount).map((text) => text + per);
}

function axisLabels(splits, incr, unit) {
  const top = Math.max(0, ...splits.map((v) => Math.abs(v)));
  const table = unit === "B" ? IEC : SI;
  let size = 1;
  let prefix = unit === "B" ? "B" : "";
  for (const [s, name] of table) {
    if (top >= s) {
      size = s;
      prefix = name;
      break;
    }
  }
  const step = incr > 0 ? incr / size : 1;
  const decimals = Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return splits.map((v) => {
    const text = (v / size).toFixed(decimals);
    if (unit === "B") return `${text} ${prefix}`;
    return withUnit(`${text}${prefix}`, unit);
  });
}
