// Cluster view: the nodes of a cluster, who owns which partition of each copy (since when,
// how old the lease is, how far behind its stream is), the partitions nobody owns, and the
// shards of the node that answers. One /api/v1/status request every REFRESH seconds; on a
// single node (`role: "serve"`) it says there is no cluster.
//
// Every name and URL comes from the cluster's members: it goes into the page as text, and a
// URL becomes a link only when it is http(s).

import * as api from "../api.js";
import { PALETTE } from "../chart.js";
import { h, notice, replace } from "../dom.js";
import { fmtAge, fmtCount, fmtTime, fmtValue } from "../format.js";
import { View } from "./base.js";

/** The two copies, in column order: the API's `copy`, its key prefix and a heading. */
const COPIES = [
  { copy: "server", prefix: "s", label: "By server", hint: "answers Q1 and Q3 for the servers hashed here" },
  { copy: "metric", prefix: "m", label: "By metric", hint: "answers Q2, Q4 and the fleet band for the metrics hashed here" },
];
/** A lease is renewed every third of its TTL: older than two thirds, a renewal was missed. */
const STALE_LEASE = 2 / 3;
const SHARD_STATES = ["opening", "ready", "stopping", "stopped", "failed"];

/** `url` as a link when it is http(s), else as text (a member's URL is not ours to trust). */
function safeLink(url) {
  if (!url) return h("span.muted", null, "–");
  let parsed = null;
  try {
    parsed = new URL(url);
  } catch {
    // shown as text below
  }
  if (!parsed || !["http:", "https:"].includes(parsed.protocol)) return h("span.url", { title: url }, url);
  return h("a.url", { href: parsed.href, target: "_blank", rel: "noopener noreferrer", title: url }, url);
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export class ClusterView extends View {
  /** The page's live tick runs this often on this view, whatever the time range. */
  static refreshSeconds = 2;
  static timeless = true;

  mount() {
    this.colors = new Map(); // node → colour, kept for the page's life so a join moves none
    this.subtitle = h("p.subtitle.muted");
    this.ownership = h("div.ownership");
    this.nodesBody = h("tbody");
    this.partsHead = h("thead");
    this.partsBody = h("tbody");
    this.shardsTitle = h("h2");
    this.shardsBody = h("tbody");
    this.body = h("div.cluster-layout",
      this.ownership,
      h("section.panel.nodes-panel", null,
        h("h2", null, "Nodes ", h("span.muted", null, "announced in the membership bucket")),
        h("div.table-scroll", null, h("table.summary.static.nodes", { "aria-label": "Nodes" },
          h("thead", null, h("tr", null,
            h("th", { scope: "col" }, "Node"), h("th", { scope: "col" }, "URL"),
            h("th.num", { scope: "col" }, "pid"), h("th", { scope: "col" }, "Up since"),
            h("th", { scope: "col" }, "Owns"))),
          this.nodesBody))),
      h("section.panel.partitions-panel", null,
        h("h2", null, "Partitions ", h("span.muted", null, "owner, since, lease age and backlog, per copy")),
        h("div.table-scroll", null, h("table.summary.static.partitions", { "aria-label": "Partitions by copy" },
          this.partsHead, this.partsBody))),
      h("section.panel.shards-panel", null,
        this.shardsTitle,
        h("div.table-scroll", null, h("table.summary.static.shards", { "aria-label": "Shards of this node" },
          h("thead", null, h("tr", null,
            ["Shard", "State", "Since", "Opened in", "Rebuilt cells", "Series", "Ring", "Newest minute", "Points folded", "Error"]
              .map((label, i) => h("th", { scope: "col", class: i >= 3 && i <= 8 && i !== 7 ? "num" : "" }, label)))),
          this.shardsBody))));
    replace(this.root,
      h("div.view-head",
        h("div", null, h("p.crumbs", null, "Cluster / nodes and partitions"), h("h1", null, "Cluster"), this.subtitle)),
      h("div.state"), this.body);
    this.stateEl = this.root.querySelector(".state");
    this.load();
  }

  /** The status is both the health ping and the data: every tick loads it again. */
  async refresh() {
    await this.load();
  }

  async load() {
    const signal = this.begin();
    try {
      const status = await this.ctx.busy(api.getJSON("status", {}, { signal }));
      if (this.destroyed) return;
      this.loaded = true;
      this.status = status;
      this.ctx.updated();
      this.render(status);
    } catch (err) {
      if (err.name === "AbortError") return;
      if (this.status && err instanceof api.ApiError) throw err; // the banner says it; the last picture stays
      this.body.hidden = true;
      this.showError(this.stateEl, err);
    }
  }

  update() {
    if (this.status) this.render(this.status);
  }

  colorOf(name) {
    if (!this.colors.has(name)) this.colors.set(name, PALETTE[this.colors.size % PALETTE.length]);
    return this.colors.get(name);
  }

  /** A node's name in its colour (the same chip in every table). */
  nodeChip(name) {
    return h("span.node-chip", { style: `--node: ${this.colorOf(name)}`, dataset: { node: name } }, name);
  }

  render(status) {
    const started = performance.now();
    replace(this.stateEl);
    this.ok();
    const cluster = status.role === "cluster" ? status.cluster : null;
    if (!cluster) {
      this.body.hidden = true;
      this.subtitle.textContent = "";
      replace(this.stateEl, notice("empty", "This minutely runs alone",
        "It is a single node (minutely serve without --node): it owns every partition itself, so there is no cluster to show.",
        h("p", null, h("a.button", { href: this.ctx.link("fleet") }, "← Back to the fleet"))));
      this.timed("cluster", started, 0);
      return;
    }
    this.body.hidden = false;
    const now = Date.now() / 1000;
    const nodes = [...cluster.nodes].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
    const parts = cluster.partitions;
    const owners = [...new Set(parts.map((p) => p.owner).filter(Boolean))].sort();
    for (const n of nodes) this.colorOf(n.name); // colours in name order on the first draw
    for (const o of owners) this.colorOf(o);

    const perCopy = Math.max(0, ...parts.map((p) => p.partition + 1));
    this.subtitle.textContent = [
      plural(nodes.length, "node"),
      `${perCopy} partition${perCopy === 1 ? "" : "s"} per copy`,
      `lease TTL ${fmtAge(cluster.lease_ttl)}`,
      `answered by ${cluster.node}`,
    ].join(" · ");

    this.renderOwnership(cluster.unowned, parts.length);
    this.renderNodes(nodes, parts, cluster.node, now);
    this.renderPartitions(parts, perCopy, cluster.lease_ttl, now);
    this.renderShards(status, now);
    this.timed("cluster", started, 0);
  }

  renderOwnership(unowned, total) {
    if (!unowned.length) {
      this.ownership.className = "ownership all-owned";
      this.ownership.removeAttribute("role");
      replace(this.ownership, `Every one of the ${total} partitions has an owner.`);
      return;
    }
    this.ownership.className = "ownership unowned-alert";
    this.ownership.setAttribute("role", "alert");
    replace(this.ownership,
      h("strong", null, `${plural(unowned.length, "partition")} without an owner: `),
      unowned.map((key, i) => [i ? ", " : "", h("code.key", { dataset: { key } }, key)]),
      h("span", null, ". Answers about their servers or metrics come from the store alone (marked partial, " +
        "stored minutes only) until a node takes them over."));
  }

  renderNodes(nodes, parts, self, now) {
    const owns = (name) => parts.filter((p) => p.owner === name).map((p) => p.key);
    const rows = nodes.map((n) => h("tr", { dataset: { node: n.name } },
      h("td", null, this.nodeChip(n.name), n.name === self ? h("span.tag", null, "this node") : null),
      h("td", null, safeLink(n.url)),
      h("td.num", null, n.pid ? String(n.pid) : "–"),
      h("td", { title: n.started ? fmtTime(n.started, { withDate: true, seconds: true }) : null },
        n.started ? `${fmtTime(n.started, { withDate: true })} · ${fmtAge(now - n.started)} ago` : "–"),
      h("td.owns", null, ownList(owns(n.name)))));
    // a node that stopped announcing itself may still hold leases until they run out
    const announced = new Set(nodes.map((n) => n.name));
    for (const name of new Set(parts.map((p) => p.owner).filter((o) => o && !announced.has(o)))) {
      rows.push(h("tr.gone", { dataset: { node: name } },
        h("td", null, this.nodeChip(name)),
        h("td", { colspan: 3 }, h("span.warn", null, "no longer announced: its leases run out within the TTL")),
        h("td.owns", null, ownList(owns(name)))));
    }
    replace(this.nodesBody, rows);
  }

  renderPartitions(parts, perCopy, ttl, now) {
    const byKey = new Map(parts.map((p) => [p.key, p]));
    replace(this.partsHead,
      h("tr", null, h("th", { scope: "col", rowspan: 2 }, "Partition"),
        COPIES.map((c) => h("th.copy", { scope: "colgroup", colspan: 4, title: c.hint }, c.label, " ", h("span.muted", null, `${c.prefix}.<p>`)))),
      h("tr", null, COPIES.map(() => [
        h("th", { scope: "col" }, "Owner"), h("th", { scope: "col" }, "Since"),
        h("th.num", { scope: "col", title: `Seconds since the owner last renewed; highlighted past ${fmtAge(ttl * STALE_LEASE)} (2/3 of the TTL)` }, "Lease age"),
        h("th.num", { scope: "col", title: "Messages in the partition's stream not yet acknowledged, and the age of the oldest" }, "Backlog")])));
    const rows = [];
    for (let p = 0; p < perCopy; p++) {
      rows.push(h("tr", null, h("th", { scope: "row" }, String(p)),
        COPIES.map((c) => this.partitionCells(byKey.get(`${c.prefix}.${p}`), ttl, now))));
    }
    replace(this.partsBody, rows);
  }

  partitionCells(part, ttl, now) {
    if (!part) return [h("td.muted", { colspan: 4 }, "not reported")];
    const key = part.key;
    const backlog = part.backlog_messages == null ? h("span.muted", { title: "the stream's state could not be read" }, "–")
      : `${fmtCount(part.backlog_messages)} msg · ${fmtAge(part.backlog_seconds)}`;
    const backlogCell = h("td.num", { dataset: { key, col: "backlog", value: String(part.backlog_messages ?? "") } }, backlog);
    if (!part.owner) {
      return [
        h("td.unowned", { colspan: 3, dataset: { key, col: "owner", owner: "" } }, h("strong", null, "no owner"),
          h("span", null, " · answers partial")),
        backlogCell,
      ];
    }
    const stale = part.lease_age > ttl * STALE_LEASE;
    return [
      h("td", { dataset: { key, col: "owner", owner: part.owner } }, this.nodeChip(part.owner)),
      h("td", { title: `${fmtTime(part.since, { withDate: true, seconds: true })}: held for ${fmtAge(now - part.since)}` },
        fmtTime(part.since, { seconds: true })),
      h("td.num", {
        class: stale ? "stale" : "",
        dataset: { key, col: "lease", value: String(part.lease_age), stale: String(stale) },
        title: stale ? `Not renewed for ${fmtAge(part.lease_age)}: the lease runs out at ${fmtAge(ttl)}` : `Renewed ${fmtAge(part.lease_age)} ago`,
      }, fmtAge(part.lease_age)),
      backlogCell,
    ];
  }

  renderShards(status, now) {
    const shards = [...(status.shards || [])].sort((a, b) => a.key.localeCompare(b.key, undefined, { numeric: true }));
    const ready = shards.filter((s) => s.state === "ready").length;
    this.shardsTitle.replaceChildren(`Shards of ${status.node} `,
      h("span.muted", null, shards.length ? `${ready} of ${shards.length} ready · ${fmtCount(status.series)} series · ${fmtValue(status.hot?.bytes, "B")} of ring`
        : "it owns no partition now"));
    replace(this.shardsBody, shards.map((s) => {
      const agg = s.aggregator || {};
      const error = s.error || agg.fold_error || agg.checkpoint_error;
      const state = SHARD_STATES.includes(s.state) ? s.state : "unknown";
      return h("tr", { dataset: { key: s.key, state: s.state } },
        h("th", { scope: "row" }, h("code.key", null, s.key)),
        h("td", null, h(`span.shard-state.state-${state}`, null, s.state)),
        h("td", { title: `held for ${fmtAge(now - s.since)}` }, fmtTime(s.since, { seconds: true })),
        h("td.num", null, s.opened_in == null ? "–" : fmtAge(s.opened_in)),
        h("td.num", null, fmtCount(s.rebuilt_cells)),
        h("td.num", null, fmtCount(s.series)),
        h("td.num", null, fmtValue(s.ring_bytes, "B")),
        h("td", null, s.newest_minute == null ? "–" : fmtTime(s.newest_minute, { withDate: true })),
        h("td.num", null, fmtCount(agg.points)),
        h("td.error-text", { title: error || null }, error || ""));
    }));
  }
}

function ownList(keys) {
  if (!keys.length) return h("span.muted", null, "nothing");
  return keys.map((key, i) => [i ? " " : "", h("code.key", null, key)]);
}
