// Metric view: one metric across the fleet — the fleet's min–max band and average over time
// (one /fleet request, merged by the API however many servers report), any server's avg line
// on demand (Q2 for just the servers shown, avg only), and the per-server summary table (Q4).

import * as api from "../api.js";
import { ACCENT, PALETTE, bandChart, chartHeight, toColumns } from "../chart.js";
import { matcher, mergeFleet, mergeSeries, realign } from "../data.js";
import { debounce, h, notice, remPx, replace } from "../dom.js";
import { fmtCount, fmtDuration, fmtExact, fmtValue, unitOf } from "../format.js";
import { SortTable } from "../table.js";
import { chooseStep } from "../timerange.js";
import { hideTip } from "../tooltip.js";
import { View } from "./base.js";
import { picker } from "./picker.js";

/** What the fleet band needs, and what one server's line needs. */
const BAND_FIELDS = ["min", "max", "avg", "count"];
const LINE_FIELDS = ["avg"];

const sameList = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

export class MetricView extends View {
  mount(state) {
    if (!state.name) {
      picker(this, "metric");
      return;
    }
    this.unit = unitOf(state.name);
    this.data = null;
    this.summary = null;
    this.lines = null; // the shown servers' avg over this.data's buckets: a Q2 answer
    this.linesFor = new Set(); // servers this.lines was asked for (those without data are left out)
    this.asking = new Set(); // servers whose line is being fetched
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

  /** The request for the fleet band, and for some servers' lines, over `range` (API form). */
  bandQuery(range, step) {
    return { start: range.start, end: range.end, step, fields: BAND_FIELDS };
  }

  lineQuery(range, step, servers) {
    return { start: range.start, end: range.end, step, only: servers, fields: LINE_FIELDS };
  }

  async load() {
    const state = this.ctx.state;
    const signal = this.begin();
    const range = this.range();
    const step = chooseStep(range.seconds, this.plotWidth());
    const show = [...state.show];
    try {
      const [fleet, summary, lines] = await this.ctx.busy(Promise.all([
        api.fleet(state.name, this.bandQuery(range, step), { signal }),
        api.summary("metric", state.name, { start: range.start, end: range.end }, { signal }),
        show.length ? api.series("metric", state.name, this.lineQuery(range, step, show), { signal }) : null,
      ]));
      if (this.destroyed) return;
      this.loaded = true;
      this.data = fleet;
      this.summary = summary;
      this.lines = lines;
      this.linesFor = new Set(lines ? show : []);
      this.ctx.updated();
      this.render({ rebuild: true });
    } catch (err) {
      if (err.name === "AbortError") return;
      this.body.hidden = true;
      this.showError(this.stateEl, err, { kind: "metric", name: state.name });
    }
  }

  /** Live: the buckets from the last complete one to now, for the band and the lines shown. */
  async liveUpdate() {
    if (!this.data) return;
    const state = this.ctx.state;
    const range = this.range();
    const { timestamps, step } = this.data;
    const recent = { start: timestamps[timestamps.length - 1] - step, end: range.end };
    const signal = this.ctrl.signal;
    const servers = this.lines ? [...this.linesFor] : [];
    const [fresh, summary, lines] = await Promise.all([
      api.fleet(state.name, this.bandQuery(recent, step), { signal }),
      api.summary("metric", state.name, { start: range.start, end: range.end }, { signal }),
      servers.length ? api.series("metric", state.name, this.lineQuery(recent, step, servers), { signal }) : null,
    ]);
    if (this.destroyed || signal.aborted) return;
    this.data = mergeFleet(this.data, fresh);
    if (lines && this.lines) this.lines = mergeSeries(this.lines, lines, "server");
    this.summary = summary;
    this.ctx.updated();
    this.render({ rebuild: false });
  }

  /** Fetch the lines of shown servers not held yet, over exactly the held band's buckets. */
  async fetchLines() {
    const show = this.ctx.state.show;
    const missing = show.filter((s) => !this.linesFor.has(s) && !this.asking.has(s));
    if (!missing.length || !this.data) return;
    const { start, end, step } = this.data;
    const signal = this.ctrl.signal;
    for (const s of missing) this.asking.add(s);
    try {
      const answer = await this.ctx.busy(api.series("metric", this.ctx.state.name,
        { start, end, step, only: missing, fields: LINE_FIELDS }, { signal }));
      if (this.destroyed || signal.aborted || !this.data || this.data.step !== step) return;
      if (!this.lines || !this.lines.series.length) {
        this.lines = answer;
      } else {
        // onto the buckets the held lines have (a live refresh may have slid them meanwhile;
        // the next one fills the newest bucket in)
        const to = this.lines.timestamps;
        const held = new Set(this.lines.series.map((s) => s.server));
        const series = answer.series.filter((s) => !held.has(s.server)).map((s) => ({ server: s.server, avg: realign(s.avg, answer.timestamps, to, step) }));
        this.lines = { ...this.lines, series: this.lines.series.concat(series) };
      }
      for (const s of missing) this.linesFor.add(s);
      this.render({ rebuild: false });
    } catch (err) {
      if (err.name === "AbortError" || err instanceof api.ApiError) return; // the banner or the next load says it
      throw err;
    } finally {
      for (const s of missing) this.asking.delete(s);
    }
  }

  update(state, prev) {
    if (this.rangeChanged(state, prev)) {
      this.load();
      return;
    }
    if (state.q !== prev.q && this.filter.value !== state.q) this.filter.value = state.q;
    if (!sameList(state.show, prev.show)) {
      // forget lines no longer shown, so a live refresh asks only for what is drawn
      const show = new Set(state.show);
      this.linesFor = new Set([...this.linesFor].filter((s) => show.has(s)));
      if (!show.size) this.lines = null;
      else if (this.lines) this.lines = { ...this.lines, series: this.lines.series.filter((s) => show.has(s.server)) };
      if (state.show.some((s) => !this.linesFor.has(s))) this.fetchLines();
    }
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
    const fleet = this.data;
    const { step, timestamps } = fleet;
    const reporting = this.summary.rows.length;
    this.body.hidden = false;
    replace(this.stateEl);
    this.ok();
    this.subtitle.textContent = `${reporting} server${reporting === 1 ? "" : "s"} reporting · ${fmtDuration(step)} buckets · ${range.label}`;
    if (!fleet.servers && !reporting) {
      this.body.hidden = true;
      replace(this.stateEl, notice("empty", `No server sent ${state.name} in the ${range.label}`,
        "The metric is known but has no points in this range. Pick a longer range above."));
      return;
    }
    const held = new Map((this.lines?.series || []).map((s) => [s.server, s]));
    const lines = state.show.filter((s) => held.has(s)).map((server, i) => ({
      label: server,
      color: PALETTE[i % PALETTE.length],
      values: realign(held.get(server).avg, this.lines.timestamps, timestamps, step),
    }));
    const data = { timestamps, min: fleet.min, max: fleet.max, avg: fleet.avg, lines: lines.map((l) => l.values) };
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
        countOf: (i) => this.data.count[i],
        countLabel: "points",
        onSelect: (from, to) => this.ctx.go({ range: "custom", from, to }),
      }, data);
      this.chartKey = key;
      this.plot.dataset.width = String(Math.round(this.chart.bbox.width / (window.devicePixelRatio || 1)));
    } else {
      this.chart.setData(toColumns(data));
    }
    // The exact requests behind the band and the lines (read by the browser tests).
    this.plot.dataset.src = api.fleetUrl(state.name, { start: fleet.start, end: fleet.end, step, fields: BAND_FIELDS }).toString();
    this.plot.dataset.points = String(timestamps.length);
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
