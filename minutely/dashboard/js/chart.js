// Time-series charts with uPlot: the min–max band and the avg line of one series, plus
// optional extra lines (one server's avg each, in the metric view).

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { canvasFont, remPx } from "./dom.js";
import { fmtAxis, fmtBucket, fmtCount, fmtExact } from "./format.js";
import { hideTip, showTip, tipTable } from "./tooltip.js";

export const ACCENT = "#4cc9f0";
export const PALETTE = [
  "#f72585", "#ffd166", "#06d6a0", "#b388ff", "#ff8c42",
  "#8ecae6", "#f15bb5", "#c5f277", "#ff5d73", "#00bbf9",
];
const AXIS = "#8b98a9";
const GRID = "rgba(255,255,255,0.07)";

/** Chart heights in rem, so a 4K wall screen gets taller charts along with larger text. */
export function chartHeight(rem) {
  return Math.round(remPx() * rem);
}

function axis(values) {
  return {
    stroke: AXIS, font: canvasFont(0.8), values,
    grid: { stroke: GRID, width: 1 },
    ticks: { stroke: GRID, width: 1, size: 4 },
  };
}

/** The y axis grows to fit its longest label (uPlot's axis auto-size recipe). */
function ySize(u, values, axisIdx, cycleNum) {
  const ax = u.axes[axisIdx];
  if (cycleNum > 1) return ax._size;
  let size = ax.ticks.size + ax.gap + 6;
  const longest = (values || []).reduce((a, v) => (v.length > a.length ? v : a), "");
  if (longest) {
    u.ctx.font = ax.font[0];
    size += u.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
  }
  return Math.ceil(size);
}

/** Local-time axis labels: times within a day, dates across days. */
function timeValues(u, splits) {
  const [lo, hi] = [u.scales.x.min, u.scales.x.max];
  const span = hi - lo;
  return splits.map((ts) => {
    const d = new Date(ts * 1000);
    const hm = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
    const md = `${d.toLocaleString("en", { month: "short" })} ${d.getDate()}`;
    if (span > 4 * 86400) return md;
    return hm === "00:00" && span > 6 * 3600 ? md : hm;
  });
}

/** The tooltip: bucket, max/avg/min with units, points, and each extra line's value. */
function tooltipPlugin(describe) {
  let inside = false;
  return {
    hooks: {
      init: (u) => {
        u.over.addEventListener("mouseenter", () => { inside = true; });
        u.over.addEventListener("mouseleave", () => { inside = false; hideTip(); });
      },
      setCursor: (u) => {
        const { left, top, idx } = u.cursor;
        if (!inside) return;
        if (idx == null || left < 0) { hideTip(); return; }
        const rect = u.over.getBoundingClientRect();
        showTip(describe(u, idx), rect.left + left, rect.top + top);
      },
    },
  };
}

/**
 * A band chart in `el`. `spec`: {width, height, unit, step, lines: [{label, color}],
 * sync (cursor sync key), onSelect(from, to) (drag to zoom), bandLabel}.
 * `data`: {timestamps, min, max, avg, count, lines: [values...]}.
 */
export function bandChart(el, spec, data) {
  const { unit = "", step, lines = [] } = spec;
  const describe = (u, i) => {
    const ts = u.data[0][i];
    const rows = [];
    const [lo, hi, avg] = [u.data[1][i], u.data[2][i], u.data[3][i]];
    rows.push(["max", fmtExact(hi, unit)], ["avg", fmtExact(avg, unit), ACCENT], ["min", fmtExact(lo, unit)]);
    const count = spec.countOf ? spec.countOf(i) : null;
    if (count != null) rows.push([spec.countLabel || "points", fmtCount(count)]);
    lines.forEach((line, k) => rows.push([line.label, fmtExact(u.data[4 + k][i], unit), line.color]));
    return tipTable(fmtBucket(ts, step), rows);
  };
  const hooks = {};
  if (spec.onSelect) {
    hooks.setSelect = [(u) => {
      const { left, width } = u.select;
      if (width < 8) return;
      const from = u.posToVal(left, "x");
      const to = u.posToVal(left + width, "x");
      u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
      spec.onSelect(Math.floor(from / 60) * 60, Math.ceil(to / 60) * 60);
    }];
  }
  const band = "rgba(76, 201, 240, 0.17)";
  const edge = "rgba(76, 201, 240, 0.42)";
  const opts = {
    width: spec.width,
    height: spec.height,
    legend: { show: false },
    cursor: {
      sync: spec.sync ? { key: spec.sync } : undefined,
      points: { size: 7, fill: "#0b0f14" },
      drag: { x: Boolean(spec.onSelect), y: false, setScale: false },
    },
    select: { show: Boolean(spec.onSelect) },
    scales: { x: { time: true } },
    series: [
      {},
      { label: "min", stroke: edge, width: 1, points: { show: false } },
      { label: "max", stroke: edge, width: 1, points: { show: false } },
      { label: "avg", stroke: ACCENT, width: 2, points: { show: false } },
      ...lines.map((line) => ({ label: line.label, stroke: line.color, width: 1.5, points: { show: false } })),
    ],
    bands: [{ series: [2, 1], fill: band }],
    axes: [
      { ...axis(timeValues), size: Math.round(remPx() * 2), space: Math.round(remPx() * 4.5) },
      { ...axis((u, splits, i, space, incr) => fmtAxis(splits, incr, unit)), size: ySize },
    ],
    plugins: [tooltipPlugin(describe)],
    hooks,
  };
  return new uPlot(opts, toColumns(data), el);
}

export function toColumns(data) {
  return [data.timestamps, data.min, data.max, data.avg, ...(data.lines || [])];
}
