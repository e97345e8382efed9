// Fleet view: every server and metric, searchable; for one metric, a heatmap of all servers ×
// time (avg or max) so a hot server stands out, and the top-N servers over the range (Q4).
// The heatmap asks only for the array it paints (`fields=avg,count` or `max,count`); hovering
// a row fetches that one server's min/max/avg for the tooltip.

import * as api from "../api.js";
import { matcher, mergeSeries } from "../data.js";
import { debounce, h, notice, replace } from "../dom.js";
import { fmtBucket, fmtCount, fmtDuration, fmtExact, fmtValue, unitOf } from "../format.js";
import { Heatmap, domain, lutColor } from "../heatmap.js";
import { chooseStep } from "../timerange.js";
import { hideTip, showTip, tipTable } from "../tooltip.js";
import { View } from "./base.js";

const LABEL_W = 150;
const PREFERRED = ["cpu.user", "cpu.busy", "load.1m"];
/** How long the pointer rests on a row before its tooltip details are fetched. */
const DETAIL_DELAY_MS = 80;

const heatFields = (agg) => [agg, "count"];

export class FleetView extends View {
  mount(state) {
    this.names = { servers: [], metrics: [] };
    this.data = null;
    this.agg = state.agg; // the aggregate this.data carries
    this.asked = state.agg; // the aggregate the last load asked for
    this.summary = null;
    this.details = new Map(); // server → its full series over this.data's buckets (tooltips)
    this.detailTimer = 0;
    this.ticks = 0;
    this.search = h("input.filter", {
      type: "search", placeholder: "Search names…", value: state.q,
      "aria-label": "Search servers and metrics",
      oninput: debounce(() => this.ctx.set({ q: this.search.value }), 120),
    });
    this.metricList = h("ul.name-list.metric-list");
    this.serverList = h("ul.name-list.server-list");
    this.metricCount = h("span.muted");
    this.serverCount = h("span.muted");
    this.title = h("h1");
    this.subtitle = h("p.subtitle.muted");
    this.aggButtons = ["avg", "max"].map((agg) => h("button", {
      type: "button", dataset: { agg }, onclick: () => this.ctx.set({ agg }),
    }, agg));
    this.metricLink = h("a.button", null, "Open metric view →");
    this.heatBox = h("div.heatmap");
    this.legend = h("div.heat-legend");
    this.heatmap = new Heatmap(this.heatBox, {
      onHover: (cell) => this.hover(cell),
      onClick: ({ row }) => this.ctx.go({ view: "server", name: this.rows[row].name, q: this.metric, metric: "" }),
    });
    this.topTitle = h("h2");
    this.topList = h("ol.top-list");
    this.main = h("div.fleet-main",
      h("div.view-head",
        h("div", null, h("p.crumbs", null, "Fleet / heatmap"), this.title, this.subtitle),
        h("div.head-tools", null, h("div.seg", { role: "group", "aria-label": "Aggregate" }, this.aggButtons), this.metricLink)),
      h("div.state"),
      h("section.card.heat-card", null, this.heatBox, this.legend),
      h("section.card.top-card", null, this.topTitle, this.topList));
    this.stateEl = this.main.querySelector(".state");
    replace(this.root,
      h("aside.sidebar.panel", null,
        this.search,
        h("h2", null, "Metrics ", this.metricCount), this.metricList,
        h("h2", null, "Servers ", this.serverCount), this.serverList),
      this.main);
    this.resize = new ResizeObserver(debounce(() => this.onResize(), 150));
    this.resize.observe(this.heatBox);
    this.load();
  }

  destroy() {
    super.destroy();
    this.resize?.disconnect();
    clearTimeout(this.detailTimer);
    hideTip();
  }

  get metric() {
    const { metrics } = this.names;
    const wanted = this.ctx.state.metric;
    if (wanted) return wanted;
    return PREFERRED.find((m) => metrics.includes(m)) || metrics[0] || "";
  }

  plotWidth() {
    return Math.max(100, (this.heatBox.clientWidth || 1000) - LABEL_W - 10);
  }

  async load() {
    const signal = this.begin();
    try {
      const [servers, metrics] = await this.ctx.busy(Promise.all([
        api.getJSON("servers", {}, { signal }),
        api.getJSON("metrics", {}, { signal }),
      ]));
      if (this.destroyed) return;
      this.names = { servers: servers.servers, metrics: metrics.metrics };
      this.loaded = true;
      this.renderLists();
      if (!this.names.servers.length) {
        this.main.classList.add("is-empty");
        replace(this.stateEl, notice("empty", "No data yet",
          "minutely has not received any points. Send some to POST /api/v1/points, or run a simulated fleet:",
          h("pre", null, `minutely simulate --url ${location.origin} --servers 10 --metrics 20 --backfill 2h`)));
        this.ctx.updated();
        return;
      }
      this.main.classList.remove("is-empty");
      await this.loadMetric(signal);
    } catch (err) {
      if (err.name === "AbortError") return;
      this.main.classList.add("is-empty");
      this.showError(this.stateEl, err);
    }
  }

  async loadMetric(signal = this.begin()) {
    const metric = this.metric;
    const range = this.range();
    const step = chooseStep(range.seconds, this.plotWidth());
    const agg = this.ctx.state.agg;
    this.asked = agg;
    try {
      const [series, summary] = await this.ctx.busy(Promise.all([
        api.series("metric", metric, { start: range.start, end: range.end, step, fields: heatFields(agg) }, { signal }),
        api.summary("metric", metric, { start: range.start, end: range.end }, { signal }),
      ]));
      if (this.destroyed) return;
      this.data = series;
      this.agg = agg;
      this.details.clear();
      this.summary = summary;
      this.main.classList.remove("is-empty");
      this.ctx.updated();
      this.render();
    } catch (err) {
      if (err.name === "AbortError") return;
      this.data = null;
      this.main.classList.add("is-empty");
      this.showError(this.stateEl, err, { kind: "metric", name: metric });
    }
  }

  async liveUpdate() {
    const signal = this.ctrl.signal;
    this.ticks += 1;
    if (this.ticks % 6 === 0 || !this.names.servers.length) {
      const [servers, metrics] = await Promise.all([
        api.getJSON("servers", {}, { signal }), api.getJSON("metrics", {}, { signal }),
      ]);
      this.names = { servers: servers.servers, metrics: metrics.metrics };
      this.renderLists();
    }
    if (!this.data) {
      if (this.names.servers.length) await this.loadMetric(signal);
      return;
    }
    const range = this.range();
    const { timestamps, step } = this.data;
    const from = timestamps[timestamps.length - 1] - step;
    const [fresh, summary] = await Promise.all([
      api.series("metric", this.data.metric, { start: from, end: range.end, step, fields: heatFields(this.agg) }, { signal }),
      api.summary("metric", this.data.metric, { start: range.start, end: range.end }, { signal }),
    ]);
    if (this.destroyed || signal.aborted) return;
    this.data = mergeSeries(this.data, fresh, "server");
    this.details.clear(); // their newest buckets are stale now; a hover fetches again
    this.summary = summary;
    this.ctx.updated();
    this.render();
  }

  update(state, prev) {
    if (state.q !== prev.q && this.search.value !== state.q) this.search.value = state.q;
    if (this.rangeChanged(state, prev)) {
      this.load();
      return;
    }
    if (state.metric !== prev.metric || (state.agg !== this.asked && this.data)) {
      this.renderLists();
      this.loadMetric(); // the heatmap holds only the aggregate it paints
      return;
    }
    this.renderLists();
    if (this.data) this.render();
  }

  renderLists() {
    const state = this.ctx.state;
    const keep = matcher(state.q);
    const { servers, metrics } = this.names;
    const current = this.metric;
    const ms = metrics.filter(keep);
    const ss = servers.filter(keep);
    this.metricCount.textContent = state.q ? `${ms.length} of ${metrics.length}` : String(metrics.length);
    this.serverCount.textContent = state.q ? `${ss.length} of ${servers.length}` : String(servers.length);
    replace(this.metricList, ms.map((m) => h("li", { class: m === current ? "active" : "" },
      h("a", { href: this.ctx.link("fleet", "", { metric: m, agg: state.agg, q: state.q }), title: `Heatmap of ${m}` }, m),
      h("a.go", { href: this.ctx.link("metric", m), title: `Open the metric view of ${m}`, "aria-label": `Metric view of ${m}` }, "↗"))));
    replace(this.serverList, ss.map((s) => h("li", null,
      h("a", { href: this.ctx.link("server", s, current ? { q: "" } : {}), title: `All metrics of ${s}` }, s))));
    if (!ms.length && !ss.length && state.q) {
      this.metricList.append(h("li.muted", null, `Nothing matches “${state.q}”`));
    }
  }

  render() {
    const started = performance.now();
    const state = this.ctx.state;
    const range = this.range();
    const { metric, series, step, timestamps } = this.data;
    const unit = unitOf(metric);
    const agg = this.agg;
    replace(this.stateEl);
    this.ok();
    this.title.replaceChildren(metric, unit ? h("span.unit", null, unit) : "");
    this.subtitle.textContent =
      `${series.length} of ${this.names.servers.length} servers reporting · ${agg} per ${fmtDuration(step)} · ${range.label}`;
    for (const b of this.aggButtons) {
      b.classList.toggle("active", b.dataset.agg === state.agg);
      b.setAttribute("aria-pressed", String(b.dataset.agg === state.agg));
    }
    this.metricLink.href = this.ctx.link("metric", metric);

    if (!series.length) {
      this.main.classList.add("is-empty");
      replace(this.stateEl, notice("empty", `No server sent ${metric} in the ${range.label}`,
        "Pick another metric on the left or a longer range above."));
      return;
    }
    this.main.classList.remove("is-empty");
    this.rows = [...series]
      .sort((a, b) => a.server.localeCompare(b.server, undefined, { numeric: true }))
      .map((s) => ({ name: s.server, values: s[agg], s }));
    const [lo, hi] = domain(this.rows);
    this.heatmap.setData({ timestamps, step, rows: this.rows, domain: [lo, hi] });
    this.heatBox.dataset.src = api.seriesUrl("metric", metric,
      { start: this.data.start, end: this.data.end, step, fields: heatFields(agg) }).toString();
    this.heatBox.firstChild.setAttribute("aria-label",
      `Heatmap of ${metric} (${agg}) for ${this.rows.length} servers over the ${range.label}`);
    this.renderLegend(lo, hi, unit);
    this.renderTop(unit);
    this.timed("fleet", started, 1);
  }

  renderLegend(lo, hi, unit) {
    const stops = Array.from({ length: 11 }, (_, i) => `${lutColor(i / 10)} ${i * 10}%`).join(", ");
    replace(this.legend,
      h("span.muted", null, this.agg),
      h("span.lo", { title: fmtExact(lo, unit) }, fmtValue(lo, unit)),
      h("span.ramp", { style: `background: linear-gradient(90deg, ${stops})` }),
      h("span.hi", { title: fmtExact(hi, unit) }, `${fmtValue(hi, unit)}+`),
      h("span.empty-swatch", null, h("i"), "no data"),
      h("span.muted.hint", null, "Click a row for that server's charts"));
  }

  renderTop(unit) {
    const state = this.ctx.state;
    const agg = this.agg;
    const rows = [...this.summary.rows].sort((a, b) => (b[agg] ?? -Infinity) - (a[agg] ?? -Infinity)).slice(0, state.top);
    this.topTitle.replaceChildren(`Top ${rows.length} servers by ${agg} `,
      h("span.muted", null, `over the ${this.range().label}`));
    const best = rows.length ? rows[0][agg] : 0;
    const floor = Math.min(0, ...rows.map((r) => r[agg]));
    this.topList.dataset.src = api.apiUrl(`metrics/${api.seg(this.data.metric)}/summary`,
      { start: this.summary.start, end: this.summary.end }).toString();
    replace(this.topList, rows.map((r) => {
      const share = best - floor > 0 ? ((r[agg] - floor) / (best - floor)) * 100 : 100;
      return h("li", { dataset: { server: r.server, value: String(r[agg]) } },
        h("a", { href: this.ctx.link("server", r.server, { q: this.data.metric }) }, r.server),
        h("span.bar", null, h("i", { style: `width:${share.toFixed(1)}%` })),
        h("span.num", { title: fmtExact(r[agg], unit) }, fmtValue(r[agg], unit)),
        h("span.num.muted", { title: `${agg === "max" ? "avg" : "max"}: ${fmtExact(r[agg === "max" ? "avg" : "max"], unit)}` },
          `${agg === "max" ? "avg" : "max"} ${fmtValue(r[agg === "max" ? "avg" : "max"], unit)}`));
    }));
  }

  hover(cell) {
    clearTimeout(this.detailTimer);
    if (!cell) {
      hideTip();
      return;
    }
    const row = this.rows[cell.row];
    const { step, timestamps } = this.data;
    if (cell.col >= timestamps.length) return;
    this.tip = { ...cell, server: row.name };
    this.showCellTip();
    if (!this.detailAt(row.name, timestamps[cell.col])) {
      this.detailTimer = setTimeout(() => this.fetchDetail(row.name, step), DETAIL_DELAY_MS);
    }
  }

  /** The tooltip of the cell under the pointer: the painted value at once, the rest once fetched. */
  showCellTip() {
    const { row: r, col: i, x, y, server } = this.tip;
    const row = this.rows[r];
    if (!row || row.name !== server) return;
    const { step, timestamps, metric } = this.data;
    const unit = unitOf(metric);
    const agg = this.agg;
    const s = row.s;
    const detail = this.detailAt(server, timestamps[i]);
    const value = (field) => {
      if (field === agg) return fmtExact(s[agg][i], unit);
      return detail ? fmtExact(detail.s[field][detail.i], unit) : "…";
    };
    showTip(tipTable(`${row.name} · ${fmtBucket(timestamps[i], step)}`, [
      ["max", value("max"), agg === "max" ? "#fb9b06" : null],
      ["avg", value("avg"), agg === "avg" ? "#fb9b06" : null],
      ["min", value("min")],
      ["points", fmtCount(s.count[i])],
    ]), x, y);
  }

  /** The fetched series of `server` and the index of bucket `ts` in it, if held. */
  detailAt(server, ts) {
    const s = this.details.get(server);
    if (!s) return null;
    const i = (ts - s.start) / s.step;
    return i >= 0 && i < s.timestamps.length && s.timestamps[i] === ts ? { s, i } : null;
  }

  /** One server's min/max/avg/count over the heatmap's buckets (a Q2 request for that server). */
  async fetchDetail(server, step) {
    const data = this.data;
    if (!data || this.details.has(server)) return;
    const signal = this.ctrl.signal;
    try {
      const answer = await api.series("metric", data.metric,
        { start: data.start, end: data.end, step, only: [server] }, { signal });
      if (this.destroyed || signal.aborted || this.data !== data) return;
      const s = answer.series[0];
      this.details.set(server, s
        ? { ...s, start: answer.start, step: answer.step, timestamps: answer.timestamps }
        : { min: [], max: [], avg: [], count: [], start: answer.start, step, timestamps: [] });
      if (this.tip?.server === server && !document.getElementById("tooltip")?.hidden) this.showCellTip();
    } catch (err) {
      if (err.name !== "AbortError" && !(err instanceof api.ApiError)) throw err;
    }
  }

  onResize() {
    if (!this.data || this.destroyed) return;
    const step = chooseStep(this.range().seconds, this.plotWidth());
    if (step !== this.data.step) this.loadMetric();
    else this.heatmap.draw();
  }
}
