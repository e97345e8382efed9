// The fleet heatmap: one row per server, one column per time bucket, drawn on a canvas.
// Cells are painted into an image of rows × buckets (one pixel each) and scaled up without
// smoothing, so a thousand servers × a thousand buckets is one drawImage.

import { FONT_FAMILY, canvasFont, remPx } from "./dom.js";
import { fmtTime } from "./format.js";

const STOPS = [
  [0.0, [27, 12, 65]], [0.15, [74, 12, 107]], [0.3, [120, 28, 109]], [0.45, [165, 44, 96]],
  [0.6, [207, 68, 70]], [0.75, [237, 105, 37]], [0.88, [251, 155, 6]], [1.0, [252, 255, 164]],
];
const EMPTY = [20, 26, 34];
const BACKGROUND = "#121821";
const LABEL = "#c9d3df";
const MUTED = "#8b98a9";
const TICK_STEPS = [300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2592000];

/** 256 colours from dark purple (low) to pale yellow (high). */
export const LUT = (() => {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 1;
    while (STOPS[k][0] < t) k++;
    const [t0, c0] = STOPS[k - 1];
    const [t1, c1] = STOPS[k];
    const f = (t - t0) / (t1 - t0);
    for (let j = 0; j < 3; j++) lut[i * 3 + j] = c0[j] + (c1[j] - c0[j]) * f;
  }
  return lut;
})();

export function lutColor(t) {
  const i = Math.max(0, Math.min(255, Math.round(t * 255))) * 3;
  return `rgb(${LUT[i]}, ${LUT[i + 1]}, ${LUT[i + 2]})`;
}

/** [lo, hi] of the values: the minimum and the 99.5th percentile, so one spike can't wash out the rest. */
export function domain(rows) {
  const all = [];
  for (const r of rows) for (const v of r.values) if (v != null) all.push(v);
  if (!all.length) return [0, 1];
  all.sort((a, b) => a - b);
  const lo = all[0];
  let hi = all[Math.min(all.length - 1, Math.floor(all.length * 0.995))];
  if (hi <= lo) hi = all[all.length - 1];
  if (hi <= lo) hi = lo + 1;
  return [lo, hi];
}

export class Heatmap {
  /** `onHover({row, col, x, y} | null)`, `onClick({row, col})`. */
  constructor(container, { onHover, onClick, maxHeight = 560 } = {}) {
    this.container = container;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "heatmap-canvas";
    this.canvas.setAttribute("role", "img");
    container.append(this.canvas);
    this.maxHeight = maxHeight;
    this.data = null;
    this.hoverRow = -1;
    this.layout = null;
    this.canvas.addEventListener("mousemove", (e) => {
      const cell = this.cellAt(e);
      if (cell?.row !== this.hoverRow) {
        this.hoverRow = cell ? cell.row : -1;
        this.draw();
      }
      onHover?.(cell ? { ...cell, x: e.clientX, y: e.clientY } : null);
    });
    this.canvas.addEventListener("mouseleave", () => {
      this.hoverRow = -1;
      this.draw();
      onHover?.(null);
    });
    this.canvas.addEventListener("click", (e) => {
      const cell = this.cellAt(e);
      if (cell) onClick?.(cell);
    });
  }

  /** `data`: {timestamps, step, rows: [{name, values}], domain: [lo, hi]}. */
  setData(data) {
    this.data = data;
    this.image = this.paint(data);
    this.draw();
  }

  paint({ rows, timestamps, domain: [lo, hi] }) {
    const cols = Math.max(1, timestamps.length);
    const image = document.createElement("canvas");
    image.width = cols;
    image.height = Math.max(1, rows.length);
    const ctx = image.getContext("2d");
    const pixels = ctx.createImageData(cols, image.height);
    const px = pixels.data;
    const scale = 255 / (hi - lo);
    rows.forEach((row, r) => {
      const values = row.values;
      for (let c = 0; c < cols; c++) {
        const v = values[c];
        const o = (r * cols + c) * 4;
        if (v == null) {
          px[o] = EMPTY[0]; px[o + 1] = EMPTY[1]; px[o + 2] = EMPTY[2];
        } else {
          const i = Math.max(0, Math.min(255, Math.round((v - lo) * scale))) * 3;
          px[o] = LUT[i]; px[o + 1] = LUT[i + 1]; px[o + 2] = LUT[i + 2];
        }
        px[o + 3] = 255;
      }
    });
    ctx.putImageData(pixels, 0, 0);
    return image;
  }

  cellAt(e) {
    const L = this.layout;
    if (!L || !this.data) return null;
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    if (x < L.x0 || x >= L.x0 + L.w || y < 0 || y >= L.h) return null;
    const col = Math.floor(((x - L.x0) / L.w) * L.cols);
    const row = Math.floor(y / L.rowH);
    if (row >= this.data.rows.length) return null;
    return { row, col };
  }

  draw() {
    const data = this.data;
    if (!data) return;
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(200, this.container.clientWidth);
    const n = data.rows.length;
    const rem = remPx();
    const room = Math.max(this.maxHeight, window.innerHeight - 22 * rem);
    const rowH = Math.max(1, Math.min(Math.round(1.8 * rem), Math.floor(room / Math.max(1, n))));
    const h = rowH * n;
    const height = h + Math.round(1.8 * rem);
    const ctx = this.canvas.getContext("2d");
    const showLabels = rowH >= 9;
    const labelFont = `${Math.min(Math.round(0.8 * rem), rowH - 2)}px ${FONT_FAMILY}`;
    ctx.font = labelFont;
    const labelW = showLabels
      ? Math.min(15 * rem, Math.ceil(Math.max(60, ...data.rows.map((r) => ctx.measureText(r.name).width))) + 16)
      : 12;
    if (this.canvas.width !== Math.round(width * dpr) || this.canvas.height !== Math.round(height * dpr)) {
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(height * dpr);
      this.canvas.style.width = `${width}px`;
      this.canvas.style.height = `${height}px`;
    }
    const x0 = labelW;
    const w = width - labelW - 10;
    const cols = Math.max(1, data.timestamps.length);
    this.layout = { x0, w, h, rowH, cols };
    this.canvas.dataset.rowHeight = String(rowH);
    this.canvas.dataset.plotLeft = String(x0);

    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, width, height);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.image, x0, 0, w, h);
    if (rowH >= 6) {
      ctx.fillStyle = BACKGROUND;
      for (let r = 1; r < n; r++) ctx.fillRect(x0, r * rowH - 1, w, 1);
    }
    if (this.hoverRow >= 0 && this.hoverRow < n) {
      ctx.strokeStyle = "rgba(255,255,255,0.85)";
      ctx.lineWidth = 1;
      ctx.strokeRect(x0 + 0.5, this.hoverRow * rowH + 0.5, w - 1, rowH - 2);
    }
    ctx.font = labelFont;
    if (showLabels) {
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      data.rows.forEach((row, r) => {
        ctx.fillStyle = r === this.hoverRow ? "#ffffff" : LABEL;
        ctx.fillText(row.name, x0 - 8, r * rowH + (rowH - 1) / 2, labelW - 12);
      });
    }
    this.drawAxis(ctx, x0, w, h);
  }

  drawAxis(ctx, x0, w, h) {
    const { timestamps, step } = this.data;
    ctx.font = canvasFont(0.8);
    if (!timestamps.length) return;
    const t0 = timestamps[0];
    const t1 = timestamps[timestamps.length - 1] + step;
    const span = t1 - t0;
    const every = TICK_STEPS.find((s) => (s / span) * w >= 6 * remPx()) || TICK_STEPS[TICK_STEPS.length - 1];
    const offset = new Date(t0 * 1000).getTimezoneOffset() * 60;
    let t = Math.ceil((t0 - offset) / every) * every + offset;
    ctx.fillStyle = MUTED;
    ctx.strokeStyle = "rgba(255,255,255,0.25)";
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (; t <= t1; t += every) {
      const x = Math.round(x0 + ((t - t0) / span) * w) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, h);
      ctx.lineTo(x, h + 5);
      ctx.stroke();
      const d = new Date(t * 1000);
      const midnight = d.getHours() === 0 && d.getMinutes() === 0;
      const label = every >= 86400 || (midnight && span > 6 * 3600)
        ? `${d.toLocaleString("en", { month: "short" })} ${d.getDate()}`
        : fmtTime(t);
      ctx.fillText(label, Math.min(Math.max(x, x0 + 18), x0 + w - 18), h + 8);
    }
  }
}
