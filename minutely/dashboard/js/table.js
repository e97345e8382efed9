// A sortable summary table. Columns: {key, label, numeric, format(value, row), cell(row) → Node}.
// The sort is "key.asc" or "key.desc"; numeric cells carry the API's value in data-value.

import { h, replace } from "./dom.js";

export function parseSort(text, fallback) {
  const [key, dir] = (text || fallback).split(".");
  return { key, desc: dir === "desc" };
}

function compare(a, b) {
  if (a == null && b == null) return 0;
  if (a == null) return 1; // empty values last, whichever the direction
  if (b == null) return -1;
  if (typeof a === "string") return a.localeCompare(b, undefined, { numeric: true });
  return a - b;
}

export class SortTable {
  /**
   * `columns`, `rowKey(row)`, `onSort("key.dir")`, `onRowClick(row, event)`,
   * `defaultSort` ("key.dir") and an optional `caption`.
   */
  constructor({ columns, rowKey, onSort, onRowClick, defaultSort, label }) {
    this.columns = columns;
    this.rowKey = rowKey;
    this.onSort = onSort;
    this.onRowClick = onRowClick;
    this.defaultSort = defaultSort;
    this.thead = h("thead");
    this.tbody = h("tbody");
    this.el = h("table.summary", { "aria-label": label }, this.thead, this.tbody);
    if (onRowClick) {
      this.tbody.addEventListener("click", (e) => {
        if (e.target.closest("a, input, button")) return;
        const tr = e.target.closest("tr");
        if (tr && this.byKey.has(tr.dataset.key)) onRowClick(this.byKey.get(tr.dataset.key), e);
      });
    }
    this.byKey = new Map();
  }

  /** Draw `rows` sorted by `sort`, keeping those `keep(row)` accepts. */
  render(rows, sort, keep = () => true) {
    const { key, desc } = parseSort(sort, this.defaultSort);
    const col = this.columns.find((c) => c.key === key) || this.columns.find((c) => c.sortable !== false);
    const headRow = h("tr", null, this.columns.map((c) => {
      if (c.sortable === false) return h("th", { scope: "col", class: c.numeric ? "num" : "" }, c.label);
      const active = c === col;
      const next = active && !desc ? "desc" : active ? "asc" : c.numeric ? "desc" : "asc";
      return h("th", {
        scope: "col",
        class: c.numeric ? "num" : "",
        "aria-sort": active ? (desc ? "descending" : "ascending") : "none",
      }, h("button.sort", { type: "button", dataset: { key: c.key }, onclick: () => this.onSort(`${c.key}.${next}`) },
        c.label, h("span.arrow", { "aria-hidden": "true" }, active ? (desc ? "▼" : "▲") : "")));
    }));
    replace(this.thead, headRow);
    const shown = rows.filter(keep);
    const value = (row) => (col.value ? col.value(row) : row[col.key]);
    shown.sort((a, b) => {
      const va = value(a);
      const vb = value(b);
      if (va == null || vb == null) return compare(va, vb);
      return desc ? compare(vb, va) : compare(va, vb);
    });
    this.byKey = new Map(shown.map((r) => [String(this.rowKey(r)), r]));
    const trs = shown.map((row) => h("tr", { dataset: { key: this.rowKey(row) } },
      this.columns.map((c) => {
        if (c.cell) return h("td", { class: c.numeric ? "num" : "" }, c.cell(row));
        const v = row[c.key];
        const text = c.format ? c.format(v, row) : v;
        return h("td", {
          class: c.numeric ? "num" : "",
          dataset: c.numeric ? { value: v == null ? "" : String(v), col: c.key } : { col: c.key },
          title: c.title ? c.title(v, row) : null,
        }, text);
      })));
    replace(this.tbody, trs);
    return shown.length;
  }
}
