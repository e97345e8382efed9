// Server view (Q1 + Q3): one chart per metric of one server — the min–max band and the avg
// line — with a metric filter and the sortable summary table. The table is one Q3 request and
// names the metrics that have data; a chart's series is fetched when its card comes near the
// screen, BATCH metrics a request (`metric=` repeated), and drawn then. So a server with
// thousands of metrics costs only what is visible; with BATCH or fewer, one request has all.

import * as api from "../api.js";
import { bandChart, chartHeight, toColumns } from "../chart.js";
import { blank, hasData, lastIndex, matcher, realign, slide } from "../data.js";
import { debounce, h, notice, remPx, replace } from "../dom.js";
import { fmtCount, fmtDuration, fmtExact, fmtValue, unitOf } from "../format.js";
import { SortTable } from "../table.js";
import { chooseStep } from "../timerange.js";
import { hideTip } from "../tooltip.js";
import { View } from "./base.js";
import { picker } from "./picker.js";

/** Room the y axis takes, in rem (the axis sizes itself to its labels; this is for the step). */
const Y_AXIS_REM = 5;
/** Metrics per series request. */
export const BATCH = 24;
/** The arrays a chart draws (the API's default fields). */
const FIELDS = ["min", "max", "avg", "count"];
/** How far off screen a card still counts as near: it is fetched and drawn ahead of the scroll. */
const MARGIN = 400;

const byName = (a, b) => a.localeCompare(b, undefined, { numeric: true });

function chunks(list, size) {
  const out = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

function blankSeries(metric, n) {
  const s = { metric };
  for (const f of FIELDS) s[f] = blank(f, n);
  return s;
}

export class ServerView extends View {
  mount(state) {
    if (!state.name) {
      picker(this, "server");
      return;
    }
    this.cards = new Map();
    this.chartH = chartHeight(10.5);
    this.summary = null;
    this.frame = null; // {start, end, step, timestamps}: the buckets the cards' series cover
    this.framing = null; // the request that sets the frame, while it runs
    this.order = []; // the metrics with data, in grid order
    this.near = new Set(); // metrics whose cards are near the screen
    this.queue = new Set(); // metrics to fetch on the next flush
    this.inflight = new Set(); // metrics being fetched
    this.flushQueued = false; // a flush is scheduled for this tick
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
      for (const e of entries) {
        const metric = e.target.dataset.metric;
        if (!e.isIntersecting) {
          this.near.delete(metric);
          continue;
        }
        this.near.add(metric);
        const card = this.cards.get(metric);
        if (card?.series && !card.stale) this.drawCard(metric);
        else this.want([metric]);
      }
    }, { rootMargin: `${MARGIN}px 0px` });
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

  /** What the page holds, in a Q1 answer's shape: the frame and every up-to-date series. */
  get data() {
    if (!this.frame || !this.cards) return null;
    const series = [];
    for (const card of this.cards.values()) {
      if (card.series && !card.stale && hasData(card.series)) series.push(card.series);
    }
    return { server: this.ctx.state.name, ...this.frame, series };
  }

  async load() {
    const state = this.ctx.state;
    const signal = this.begin();
    const range = this.range();
    this.step = chooseStep(range.seconds, this.plotWidth());
    this.frame = null;
    this.framing = null;
    this.queue.clear();
    this.inflight.clear();
    try {
      const summary = await this.ctx.busy(
        api.summary("server", state.name, { start: range.start, end: range.end }, { signal }));
      if (this.destroyed) return;
      this.loaded = true;
      this.summary = summary;
      this.ctx.updated();
      this.render({ rebuild: true }); // cards and table now; each chart once its batch is in
    } catch (err) {
      if (err.name === "AbortError") return;
      this.grid.textContent = "";
      this.body.hidden = true;
      this.showError(this.stateEl, err, { kind: "server", name: state.name });
    }
  }

  /** Does this card need its series (again)? */
  needs(metric) {
    const card = this.cards.get(metric);
    return Boolean(card) && !card.el.hidden && !this.inflight.has(metric) && (!card.series || card.stale);
  }

  /** Fetch these metrics' series soon: wants from one layout pass go out together. */
  want(metrics) {
    for (const m of metrics) if (this.needs(m)) this.queue.add(m);
    if (!this.queue.size || this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  /** One Q1 request for `metrics` (null: every metric) over `[start, end)` at the view's step. */
  fetchSeries(metrics, { start, end }, signal) {
    const query = { start, end, step: this.step, only: metrics || undefined };
    return this.ctx.busy(api.series("server", this.ctx.state.name, query, { signal }));
  }

  /**
   * Fetch what is queued, BATCH metrics a request, each batch topped up with the next cards
   * down the page that still need data (so scrolling on finds them fetched). With BATCH or
   * fewer metrics, one request asks for all of them. The first request takes the range as
   * the user gave it and sets the frame; every later one asks for exactly its buckets.
   */
  async flush() {
    const signal = this.ctrl.signal;
    if (!this.frame && this.framing) {
      await this.framing.catch(() => null);
      if (signal.aborted || this.destroyed) return;
    }
    let asked = this.order.filter((m) => this.queue.has(m) && this.needs(m));
    this.queue.clear();
    if (!asked.length) return;
    let batches;
    if (this.order.length <= BATCH) {
      asked = this.order.filter((m) => !this.inflight.has(m));
      batches = [null];
    } else {
      const wanted = new Set(asked);
      let room = Math.ceil(asked.length / BATCH) * BATCH - asked.length;
      for (let i = this.order.indexOf(asked[asked.length - 1]) + 1; i < this.order.length && room > 0; i++) {
        const m = this.order[i];
        if (!wanted.has(m) && this.needs(m)) {
          asked.push(m);
          room -= 1;
        }
      }
      batches = chunks(asked, BATCH);
    }
    for (const m of asked) this.inflight.add(m);
    try {
      if (!this.frame) {
        this.framing = this.fetchSeries(batches[0], this.range(), signal);
        const first = await this.framing;
        this.framing = null;
        if (signal.aborted || this.destroyed) return;
        const { start, end, step, timestamps } = first;
        this.frame = { start, end, step, timestamps };
        this.fill(first, batches[0] || asked);
        batches = batches.slice(1);
      }
      await Promise.all(batches.map(async (batch) => {
        const answer = await this.fetchSeries(batch, this.frame, signal);
        if (signal.aborted || this.destroyed) return;
        this.fill(answer, batch || asked);
      }));
    } catch (err) {
      if (err.name === "AbortError") return;
      this.framing = null;
      for (const m of asked) this.inflight.delete(m); // asked again on the next live tick or scroll
      if (!(err instanceof api.ApiError)) throw err;
    }
  }

  /** A batch's answer onto its cards; those near the screen are drawn. */
  fill(answer, metrics) {
    const started = performance.now();
    for (const m of metrics) this.inflight.delete(m);
    const f = this.frame;
    if (!f || answer.start !== f.start || answer.step !== f.step || answer.timestamps.length !== f.timestamps.length) {
      this.want(metrics); // a live refresh slid the frame meanwhile: ask again for its buckets
      return;
    }
    const byMetric = new Map(answer.series.map((s) => [s.metric, s]));
    let drawn = 0;
    for (const m of metrics) {
      const card = this.cards.get(m);
      if (!card) continue;
      card.series = byMetric.get(m) || blankSeries(m, f.timestamps.length);
      card.ts = f.timestamps;
      card.stale = false;
      this.showLast(card);
      if (card.chart) {
        card.chart.setData(toColumns(this.columns(card)));
      } else if (!card.el.hidden && (this.near.has(m) || this.onScreen(card))) {
        this.drawCard(m);
        drawn += 1;
      }
    }
    if (drawn) this.timed("server", started, drawn);
  }

  /**
   * Live: the summary again, and the buckets from the last complete one to now for the charts
   * near the screen (every chart when there are BATCH or fewer). Charts further away are
   * marked stale and fetched again when they come back into view.
   */
  async liveUpdate() {
    if (!this.summary) return;
    const state = this.ctx.state;
    const range = this.range();
    const signal = this.ctrl.signal;
    const f = this.frame;
    const loaded = [...this.cards.values()].filter((c) => c.series && !c.stale && c.ts === f?.timestamps);
    let only = [];
    if (f && loaded.length) {
      only = this.order.length <= BATCH ? null
        : loaded.filter((c) => this.near.has(c.metric) && !c.el.hidden).map((c) => c.metric);
    }
    const recent = f && { start: f.timestamps[f.timestamps.length - 1] - f.step, end: range.end };
    const [summary, fresh] = await Promise.all([
      api.summary("server", state.name, { start: range.start, end: range.end }, { signal }),
      only === null || only.length ? this.fetchRecent(only, recent, signal) : null,
    ]);
    if (this.destroyed || signal.aborted) return;
    this.summary = summary;
    if (fresh) {
      this.slideFrame(fresh, only === null ? loaded.map((c) => c.metric) : only);
    } else if (f && !this.inflight.size) {
      // nothing on screen to refresh: what is held has gone out of date; start a new frame
      this.frame = null;
      for (const card of this.cards.values()) if (card.series) card.stale = true;
    }
    this.ctx.updated();
    this.render({ rebuild: false });
  }

  /** The recent buckets of `only` (null: every metric), BATCH metrics a request, on one set of buckets. */
  async fetchRecent(only, recent, signal) {
    if (only === null) return this.fetchSeries(null, recent, signal);
    const answers = await Promise.all(chunks(only, BATCH).map((b) => this.fetchSeries(b, recent, signal)));
    const [first] = answers;
    const series = [];
    for (const a of answers) {
      for (const s of a.series) {
        if (a === first) {
          series.push(s);
          continue;
        }
        // "now" may have moved on a minute between two requests: lay them on the first's buckets
        const laid = { metric: s.metric };
        for (const field of FIELDS) {
          laid[field] = realign(s[field], a.timestamps, first.timestamps, a.step, field === "count" ? 0 : null);
        }
        series.push(laid);
      }
    }
    return { ...first, series };
  }

  /** The frame slides over `fresh`; `refreshed` cards take its buckets, the rest go stale. */
  slideFrame(fresh, refreshed) {
    const f = this.frame;
    if (!fresh.timestamps.length || fresh.step !== f.step) return;
    const { timestamps, join } = slide(f.timestamps, fresh.timestamps);
    const byMetric = new Map(fresh.series.map((s) => [s.metric, s]));
    const again = new Set(refreshed);
    const n = fresh.timestamps.length;
    for (const card of this.cards.values()) {
      if (!card.series) continue;
      if (card.ts !== f.timestamps) {
        card.stale = true;
        continue;
      }
      const s = again.has(card.metric) ? byMetric.get(card.metric) : null;
      const merged = { metric: card.metric };
      for (const field of FIELDS) merged[field] = join(card.series[field], s ? s[field] : blank(field, n));
      card.series = merged;
      card.ts = timestamps;
      if (!again.has(card.metric)) card.stale = true;
    }
    this.frame = { start: timestamps[0], end: timestamps[timestamps.length - 1] + f.step, step: f.step, timestamps };
  }

  update(state, prev) {
    if (this.rangeChanged(state, prev)) {
      this.load();
      return;
    }
    if (state.q !== prev.q && this.filter.value !== state.q) this.filter.value = state.q;
    if (this.summary) this.render({ rebuild: false });
  }

  /** Is the card on screen or within MARGIN of it? */
  onScreen(card) {
    const r = card.el.getBoundingClientRect();
    return r.bottom > -MARGIN && r.top < window.innerHeight + MARGIN;
  }

  showLast(card) {
    const s = card.series;
    const i = s ? lastIndex(s) : -1;
    card.last.textContent = !s ? "…" : i < 0 ? "–" : fmtValue(s.avg[i], card.unit);
    card.last.title = i < 0 ? "" : `latest avg: ${fmtExact(s.avg[i], card.unit)}`;
  }

  render({ rebuild }) {
    const started = performance.now();
    const state = this.ctx.state;
    const range = this.range();
    this.body.hidden = false;
    replace(this.stateEl);
    this.ok();
    const keep = matcher(state.q);
    const names = this.summary.rows.map((r) => r.metric).sort(byName);
    const shown = names.filter(keep).length;
    const total = names.length;
    this.subtitle.textContent = `${total} metric${total === 1 ? "" : "s"} · ${fmtDuration(this.step)} buckets · ${range.label}`
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
      this.near.clear();
      replace(this.grid);
    }
    this.order = names;
    const present = new Set(names);
    for (const metric of names) {
      let card = this.cards.get(metric);
      if (!card) {
        card = this.makeCard(metric);
        this.cards.set(metric, card);
        this.grid.append(card.el);
        this.observer.observe(card.el);
      }
      card.el.hidden = !keep(metric);
    }
    for (const [metric, card] of this.cards) {
      if (!present.has(metric)) card.el.hidden = true;
    }
    const empty = this.grid.querySelector(".no-match");
    if (!shown && !empty) {
      this.grid.append(h("div.notice.empty.no-match", null,
        h("h2", null, `No metric matches “${state.q}”`), h("p", null, "Clear the filter to see all metrics.")));
    } else if (shown && empty) empty.remove();

    // Redraw what is held; draw what is on screen now, or fetch it first. The observer does
    // the same for the rest as it scrolls into view.
    let drawn = 0;
    const missing = [];
    for (const card of this.cards.values()) {
      if (card.chart && card.series) card.chart.setData(toColumns(this.columns(card)));
      this.showLast(card);
      if (card.el.hidden || !this.onScreen(card)) continue;
      if (card.series && !card.stale) {
        if (!card.chart) drawn += 1;
        this.drawCard(card.metric);
      } else {
        missing.push(card.metric);
      }
    }

    const rows = this.summary.rows;
    const n = this.table.render(rows, state.sort, (r) => keep(r.metric));
    this.tableNote.textContent = `${n} of ${rows.length} metrics · ${range.label}`;
    this.table.el.dataset.src = this.summaryUrl();
    if (missing.length) this.want(missing); // drawn (and timed) when their batch is in
    else this.timed("server", started, drawn);
  }

  /** The exact summary request behind the table, with the answer's absolute range. */
  summaryUrl() {
    const s = this.summary;
    return api.apiUrl(`servers/${api.seg(this.ctx.state.name)}/summary`, { start: s.start, end: s.end }).toString();
  }

  columns(card) {
    const s = card.series;
    return { timestamps: card.ts, min: s.min, max: s.max, avg: s.avg };
  }

  makeCard(metric) {
    const unit = unitOf(metric);
    const last = h("span.last", null, "…");
    const plot = h("div.plot", { style: `height:${this.chartH}px` });
    const el = h("section.card.chart-card", { dataset: { metric } },
      h("header", null,
        h("h3", { title: metric }, metric, unitBadge(metric)),
        last),
      plot);
    return { el, plot, last, unit, metric, chart: null, series: null, ts: null, stale: false };
  }

  drawCard(metric) {
    const card = this.cards.get(metric);
    if (!card || card.chart || !card.series || card.el.hidden) return;
    card.chart = bandChart(card.plot, {
      width: card.plot.clientWidth,
      height: this.chartH,
      unit: card.unit,
      step: this.step,
      sync: "server",
      countOf: (i) => card.series.count[i],
      onSelect: (from, to) => this.ctx.go({ range: "custom", from, to }),
    }, this.columns(card));
    card.el.classList.add("drawn");
    // What a test (or a curious person in devtools) checks: points drawn vs pixels available.
    card.el.dataset.points = String(card.ts.length);
    card.el.dataset.width = String(Math.round(card.chart.bbox.width / (window.devicePixelRatio || 1)));
    card.el.dataset.step = String(this.step);
  }

  onResize() {
    if (!this.summary || this.destroyed) return;
    const step = chooseStep(this.range().seconds, this.plotWidth());
    if (step !== this.step) {
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
