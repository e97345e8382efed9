// Metric view (Q2 + Q4): one metric across the fleet — the fleet's min–max band and average
// over time, any server's avg line on demand, and the per-server summary table.

import * as api from "../api.js";
import { ACCENT, PALETTE, bandChart, chartHeight, toColumns } from "../chart.js";
import { fleetAggregate, matcher, mergeSeries } from "../data.js";
import { debounce, h, notice, remPx, replace } from "../dom.js";
import { fmtCount, fmtDuration, fmtExact, fmtValue, unitOf } from "../format.js";
import { SortTable } from "../table.js";
import { chooseStep } from "../timerange.js";
import { hideTip } from "../tooltip.js";
import { View } from "./base.js";
import { picker } from "./picker.js";


export class MetricView extends View {
  mount(state) {
    if (!state.name) {
      picker(this, "metric");
      return;
    }
    this.unit = unitOf(state.name);
    this.data = null;
    this.summary = null;
    this.chart = null;
    this.chartKey = "";
    this.chartH = chartHeight(24);
    this.subtitle = h("p.subtitle.muted");
    this.filter = h("input.filter", {
      type: "search", placeholder: "Filter servers…", value: state.q, "aria-label": "Filter servers",
      oninput: debounce(() => this.ctx.set({ q: this.filter.value }), 120),
    });
    this.plot = h("div.plot", { style: `height:${this.chartH}px` });
    this.legend = h("div.legend");
    this.table = new SortTable({
      label: "Summary per server",
      columns: [
        {
          key: "show", label: "Line", sortable: false,
          cell: (r) => h("input", {
            type: "checkbox", checked: this.ctx.state.show.includes(r.server),
            "aria-label": `Show ${r.server}'s line`, dataset: { server: r.server },
            onchange: (e) => this.toggle(r.server, e.target.checked),
          }),
        },
        { key: "server", label: "Server", cell: (r) => h("a", { href: this.ctx.link("server", r.server, { q: this.ctx.state.name }) }, r.server) },
        ...["min", "max", "avg"].map((key) => ({
          key, label: key, numeric: true,
          format: (v) => fmtValue(v, this.unit),
          title: (v) => fmtExact(v, this.unit),
        })),
        { key: "count", label: "points", numeric: true, format: fmtCount },
      ],
      rowKey: (r) => r.server,
      defaultSort: "max.desc",
      onSort: (sort) => this.ctx.set({ sort }),
      onRowClick: (row) => this.toggle(row.server, !this.ctx.state.show.includes(row.server)),
    });
    this.tableNote = h("p.muted.small");
    this.body = h("div.metric-layout",
      h("section.card.big-chart", null,
        h("header", null,
          h("h3", null, "Fleet ", h("span.muted", null, "min–max band and average of every server")),
          h("div.chart-tools", null,
            h("button.small", { type: "button", onclick: () => this.showTop(5) }, "Top 5 by max"),
            h("button.small", { type: "button", onclick: () => this.ctx.set({ show: [] }) }, "Clear lines"))),
        this.legend, this.plot),
      h("section.panel", null,
        h("div.panel-head", null,
          h("h2", null, "Servers ", h("span.muted", null, "min · max · avg over the range; tick to draw a line")),
          this.filter),
        this.tableNote, h("div.table-scroll.tall", null, this.table.el)));
    replace(this.root,
      h("div.view-head",
        h("div", null,
          h("p.crumbs", null, h("a", { href: this.ctx.link("fleet", "", { metric: state.name }) }, "Fleet"), " / metric"),
          h("h1", null, state.name, unitBadge(this.unit)),
          this.subtitle)),
      h("div.state"), this.body);
    this.stateEl = this.root.querySelector(".state");
    this.resize = new ResizeObserver(debounce(() => this.onResize(), 150));
    this.resize.observe(this.plot);
    this.load();
  }

  destroy() {
    super.destroy();
    this.resize?.disconnect();
    this.chart?.destroy();
  }

  plotWidth() {
    return Math.max(200, (this.plot.clientWidth || 900) - 5 * remPx());
  }

  async load() {
    const state = this.ctx.state;
    const signal = this.begin();
    const range = this.range();
    const step = chooseStep(range.seconds, this.plotWidth());
    try {
      const [series, summary] = await this.ctx.busy(Promise.all([
        api.series("metric", state.name, { start: range.start, end: range.end, step }, { signal }),
        api.summary("metric", state.name, { start: range.start, end: range.end }, { signal }),
      ]));
      if (this.destroyed) return;
      this.loaded = true;
      this.data = series;
      this.summary = summary;
      this.ctx.updated();
      this.render({ rebuild: true });
    } catch (err) {
      if (err.name === "AbortError") return;
      this.body.hidden = true;
      this.showError(this.stateEl, err, { kind: "metric", name: state.name });
    }
  }

  async liveUpdate() {
    if (!this.data) return;
    const state = this.ctx.state;
    const range = this.range();
    const { timestamps, step } = this.data;
    const from = timestamps[timestamps.length - 1] - step;
    const signal = this.ctrl.signal;
    const [fresh, summary] = await Promise.all([
      api.series("metric", state.name, { start: from, end: range.end, step }, { signal }),
      api.summary("metric", state.name, { start: range.start, end: range.end }, { signal }),
    ]);
    if (this.destroyed || signal.aborted) return;
    this.data = mergeSeries(this.data, fresh, "server");
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

  toggle(server, on) {
    const show = this.ctx.state.show.filter((s) => s !== server);
    if (on) show.push(server);
    this.ctx.set({ show });
  }

  showTop(n) {
    const top = [...(this.summary?.rows || [])].sort((a, b) => b.max - a.max).slice(0, n).map((r) => r.server);
    this.ctx.set({ show: top });
  }

  render({ rebuild }) {
    const started = performance.now();
    const state = this.ctx.state;
    const range = this.range();
    const { series, step } = this.data;
    this.body.hidden = false;
    replace(this.stateEl);
    this.ok();
    this.subtitle.textContent = `${series.length} server${series.length === 1 ? "" : "s"} reporting · ${fmtDuration(step)} buckets · ${range.label}`;
    if (!series.length) {
      this.body.hidden = true;
      replace(this.stateEl, notice("empty", `No server sent ${state.name} in the ${range.label}`,
        "The metric is known but has no points in this range. Pick a longer range above."));
      return;
    }
    const fleet = fleetAggregate(this.data);
    const byServer = new Map(series.map((s) => [s.server, s]));
    const lines = state.show.filter((s) => byServer.has(s))
      .map((server, i) => ({ label: server, color: PALETTE[i % PALETTE.length], values: byServer.get(server).avg }));
    const data = { timestamps: this.data.timestamps, ...fleet, lines: lines.map((l) => l.values) };
    const key = `${step}|${lines.map((l) => l.label).join(",")}`;
    if (rebuild || !this.chart || key !== this.chartKey) {
      if (rebuild) hideTip();
      this.chart?.destroy();
      replace(this.plot);
      this.chart = bandChart(this.plot, {
        width: this.plot.clientWidth,
        height: this.chartH,
        unit: this.unit,
        step,
        lines,
        countOf: (i) => this.fleet.servers[i],
        countLabel: "servers",
        onSelect: (from, to) => this.ctx.go({ range: "custom", from, to }),
      }, data);
      this.chartKey = key;
      this.plot.dataset.width = String(Math.round(this.chart.bbox.width / (window.devicePixelRatio || 1)));
    } else {
      this.chart.setData(toColumns(data));
    }
    this.fleet = fleet;
    this.plot.dataset.points = String(this.data.timestamps.length);
    this.plot.dataset.lines = lines.map((l) => l.label).join(",");
    replace(this.legend,
      h("span.chip", null, h("i.sw", { style: `background:${ACCENT}` }), "fleet avg"),
      h("span.chip", null, h("i.sw.band"), "fleet min–max"),
      lines.map((l) => h("button.chip.removable", {
        type: "button", title: `Hide ${l.label}`, onclick: () => this.toggle(l.label, false),
      }, h("i.sw", { style: `background:${l.color}` }), l.label, h("span.x", { "aria-hidden": "true" }, "×"))));

    const keep = matcher(state.q);
    const rows = this.summary.rows;
    const n = this.table.render(rows, state.sort, (r) => keep(r.server));
    this.tableNote.textContent = `${n} of ${rows.length} servers · ${range.label}`;
    this.table.el.dataset.src = api.apiUrl(`metrics/${api.seg(state.name)}/summary`,
      { start: this.summary.start, end: this.summary.end }).toString();
    this.timed("metric", started, 1);
  }

  onResize() {
    if (!this.data || this.destroyed || !this.chart) return;
    const step = chooseStep(this.range().seconds, this.plotWidth());
    if (step !== this.data.step) this.load();
    else this.chart.setSize({ width: this.plot.clientWidth, height: this.chartH });
  }
}

function unitBadge(unit) {
  return unit ? h("span.unit", null, unit) : null;
}
