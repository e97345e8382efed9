// Server view (Q1 + Q3): one chart per metric of one server — the min–max band and the avg
// line — with a metric filter and the sortable summary table. Charts are drawn when they come
// near the screen, so a server with thousands of metrics costs only what is visible.

import * as api from "../api.js";
import { bandChart, chartHeight, toColumns } from "../chart.js";
import { lastIndex, matcher, mergeSeries } from "../data.js";
import { debounce, h, notice, remPx, replace } from "../dom.js";
import { fmtCount, fmtDuration, fmtExact, fmtValue, unitOf } from "../format.js";
import { SortTable } from "../table.js";
import { chooseStep } from "../timerange.js";
import { hideTip } from "../tooltip.js";
import { View } from "./base.js";
import { picker } from "./picker.js";

/** Room the y axis takes, in rem (the axis sizes itself to its labels; this is for the step). */
const Y_AXIS_REM = 5;

export class ServerView extends View {
  mount(state) {
    if (!state.name) {
      picker(this, "server");
      return;
    }
    this.cards = new Map();
    this.chartH = chartHeight(10.5);
    this.data = null;
    this.summary = null;
    this.filter = h("input.filter", {
      type: "search", placeholder: "Filter metrics…", value: state.q, "aria-label": "Filter metrics",
      oninput: debounce(() => this.ctx.set({ q: this.filter.value }), 120),
    });
    this.subtitle = h("p.subtitle.muted");
    this.grid = h("div.chart-grid");
    this.table = new SortTable({
      label: "Summary per metric",
      columns: [
        { key: "metric", label: "Metric", cell: (r) => h("span.name", { title: r.metric }, r.metric) },
        ...["min", "max", "avg"].map((key) => ({
          key, label: key, numeric: true,
          format: (v, r) => fmtValue(v, unitOf(r.metric)),
          title: (v, r) => fmtExact(v, unitOf(r.metric)),
        })),
        { key: "count", label: "points", numeric: true, format: fmtCount },
      ],
      rowKey: (r) => r.metric,
      defaultSort: "metric.asc",
      onSort: (sort) => this.ctx.set({ sort }),
      onRowClick: (row) => this.focusCard(row.metric),
    });
    this.tableNote = h("p.muted.small");
    this.body = h("div.server-layout",
      this.grid,
      h("aside.panel.summary-panel", null,
        h("h2", null, "Summary ", h("span.muted", null, "min · max · avg over the range")),
        this.tableNote, h("div.table-scroll", null, this.table.el)));
    const header = h("div.view-head",
      h("div", null,
        h("p.crumbs", null, h("a", { href: this.ctx.link("fleet") }, "Fleet"), " / server"),
        h("h1", null, state.name),
        this.subtitle),
      h("div.head-tools", null, this.filter));
    replace(this.root, header, h("div.state"), this.body);
    this.stateEl = this.root.querySelector(".state");

    this.observer = new IntersectionObserver((entries) => {
      for (const e of entries) if (e.isIntersecting) this.drawCard(e.target.dataset.metric);
    }, { rootMargin: "400px 0px" });
    this.resize = new ResizeObserver(debounce(() => this.onResize(), 150));
    this.resize.observe(this.grid);
    this.load();
  }

  destroy() {
    super.destroy();
    this.observer?.disconnect();
    this.resize?.disconnect();
    for (const card of this.cards?.values() || []) card.chart?.destroy();
  }

  /** Plot width of one chart: the grid's column width less the y axis. */
  plotWidth() {
    const axis = Y_AXIS_REM * remPx();
    const probe = this.grid.querySelector(".card:not([hidden]) .plot");
    if (probe) return Math.max(120, probe.clientWidth - axis);
    const width = this.grid.clientWidth || 800;
    const column = 26 * remPx();
    const columns = Math.max(1, Math.floor((width + 16) / (column + 16)));
    return Math.max(120, (width - (columns - 1) * 16) / columns - 28 - axis);
  }

  async load() {
    const state = this.ctx.state;
    const signal = this.begin();
    const range = this.range();
    const step = chooseStep(range.seconds, this.plotWidth());
    this.step = step;
    try {
      const [series, summary] = await this.ctx.busy(Promise.all([
        api.series("server", state.name, { start: range.start, end: range.end, step }, { signal }),
        api.summary("server", state.name, { start: range.start, end: range.end }, { signal }),
      ]));
      if (this.destroyed) return;
      this.loaded = true;
      this.data = series;
      this.summary = summary;
      this.ctx.updated();
      this.render({ rebuild: true });
    } catch (err) {
      if (err.name === "AbortError") return;
      this.grid.textContent = "";
      this.body.hidden = true;
      this.showError(this.stateEl, err, { kind: "server", name: state.name });
    }
  }

  /** Live: fetch the buckets from the last complete one to now, merge, redraw. */
  async liveUpdate() {
    if (!this.data) return;
    const state = this.ctx.state;
    const range = this.range();
    const { timestamps, step } = this.data;
    const from = timestamps[timestamps.length - 1] - step;
    const signal = this.ctrl.signal;
    const [fresh, summary] = await Promise.all([
      api.series("server", state.name, { start: from, end: range.end, step }, { signal }),
      api.summary("server", state.name, { start: range.start, end: range.end }, { signal }),
    ]);
    if (this.destroyed || signal.aborted) return;
    this.data = mergeSeries(this.data, fresh, "metric");
    this.summary = summary;
    this.ctx.updated();
    this.render({ rebuild: false });
  }

  update(state, prev) {
    if (this.rangeChanged(state, prev)) {
      this.load();
      return;
    }
    if (state.q !== prev.q && this.filter.value !== state.q) this.filter.value = state.q;
    if (this.data) this.render({ rebuild: false });
  }

  render({ rebuild }) {
    const started = performance.now();
    const state = this.ctx.state;
    const range = this.range();
    const { series, step } = this.data;
    this.body.hidden = false;
    replace(this.stateEl);
    this.ok();
    const keep = matcher(state.q);
    const shown = series.filter((s) => keep(s.metric)).length;
    const total = series.length;
    this.subtitle.textContent = `${total} metric${total === 1 ? "" : "s"} · ${fmtDuration(step)} buckets · ${range.label}`
      + (state.q ? ` · ${shown} shown` : "");

    if (!total) {
      this.body.hidden = true;
      replace(this.stateEl, notice("empty", `No data from ${state.name} in the ${range.label}`,
        "This server is known but sent no points in this range. Pick a longer range above."));
      return;
    }
    if (rebuild) {
      hideTip();
      for (const card of this.cards.values()) card.chart?.destroy();
      this.cards.clear();
      this.observer.disconnect();
      replace(this.grid);
    }
    const sorted = [...series].sort((a, b) => a.metric.localeCompare(b.metric, undefined, { numeric: true }));
    const present = new Set();
    for (const s of sorted) {
      present.add(s.metric);
      let card = this.cards.get(s.metric);
      if (!card) {
        card = this.makeCard(s.metric);
        this.cards.set(s.metric, card);
        this.grid.append(card.el);
        this.observer.observe(card.el);
      }
      card.series = s;
      card.el.hidden = !keep(s.metric);
      const i = lastIndex(s);
      card.last.textContent = i < 0 ? "–" : fmtValue(s.avg[i], card.unit);
      card.last.title = i < 0 ? "" : `latest avg: ${fmtExact(s.avg[i], card.unit)}`;
      if (card.chart) card.chart.setData(toColumns(this.columns(s)));
    }
    for (const [metric, card] of this.cards) {
      if (!present.has(metric)) card.el.hidden = true;
    }
    const empty = this.grid.querySelector(".no-match");
    if (!shown && !empty) {
      this.grid.append(h("div.notice.empty.no-match", null,
        h("h2", null, `No metric matches “${state.q}”`), h("p", null, "Clear the filter to see all metrics.")));
    } else if (shown && empty) empty.remove();

    // Draw what is on screen now; the observer draws the rest as it scrolls into view.
    const visible = [];
    const limit = window.innerHeight + 400;
    for (const card of this.cards.values()) {
      if (card.chart || card.el.hidden) continue;
      const r = card.el.getBoundingClientRect();
      if (r.bottom > -400 && r.top < limit) visible.push(card);
    }
    for (const card of visible) this.drawCard(card.metric);

    const rows = this.summary.rows;
    const n = this.table.render(rows, state.sort, (r) => keep(r.metric));
    this.tableNote.textContent = `${n} of ${rows.length} metrics · ${range.label}`;
    this.table.el.dataset.src = this.summaryUrl();
    this.timed("server", started, visible.length);
  }

  /** The exact summary request behind the table, with the answer's absolute range. */
  summaryUrl() {
    const s = this.summary;
    return api.apiUrl(`servers/${api.seg(this.ctx.state.name)}/summary`, { start: s.start, end: s.end }).toString();
  }

  columns(s) {
    return { timestamps: this.data.timestamps, min: s.min, max: s.max, avg: s.avg };
  }

  makeCard(metric) {
    const unit = unitOf(metric);
    const last = h("span.last");
    const plot = h("div.plot", { style: `height:${this.chartH}px` });
    const el = h("section.card.chart-card", { dataset: { metric } },
      h("header", null,
        h("h3", { title: metric }, metric, unitBadge(metric)),
        last),
      plot);
    return { el, plot, last, unit, metric, chart: null, series: null };
  }

  drawCard(metric) {
    const card = this.cards.get(metric);
    if (!card || card.chart || !card.series || card.el.hidden) return;
    const s = card.series;
    card.chart = bandChart(card.plot, {
      width: card.plot.clientWidth,
      height: this.chartH,
      unit: card.unit,
      step: this.data.step,
      sync: "server",
      countOf: (i) => card.series.count[i],
      onSelect: (from, to) => this.ctx.go({ range: "custom", from, to }),
    }, this.columns(s));
    card.el.classList.add("drawn");
    // What a test (or a curious person in devtools) checks: points drawn vs pixels available.
    card.el.dataset.points = String(this.data.timestamps.length);
    card.el.dataset.width = String(Math.round(card.chart.bbox.width / (window.devicePixelRatio || 1)));
    card.el.dataset.step = String(this.data.step);
  }

  onResize() {
    if (!this.data || this.destroyed) return;
    const step = chooseStep(this.range().seconds, this.plotWidth());
    if (step !== this.data.step) {
      this.load();
      return;
    }
    this.chartH = chartHeight(10.5);
    for (const card of this.cards.values()) {
      card.plot.style.height = `${this.chartH}px`;
      card.chart?.setSize({ width: card.plot.clientWidth, height: this.chartH });
    }
  }

  focusCard(metric) {
    const card = this.cards.get(metric);
    if (!card || card.el.hidden) return;
    card.el.scrollIntoView({ behavior: "smooth", block: "center" });
    card.el.classList.remove("flash");
    void card.el.offsetWidth;
    card.el.classList.add("flash");
  }
}

function unitBadge(metric) {
  const unit = unitOf(metric);
  return unit ? h("span.unit", null, unit) : null;
}
