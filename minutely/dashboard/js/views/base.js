// What every view shares: cancelling stale requests, error and empty states, draw timings.

import * as api from "../api.js";
import { h, notice, replace } from "../dom.js";
import { resolveRange } from "../timerange.js";

export class View {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.ctrl = null;
    this.loaded = false;
    this.destroyed = false;
  }

  /** A fresh AbortSignal; requests still running for an earlier load are cancelled. */
  begin() {
    this.ctrl?.abort();
    this.ctrl = new AbortController();
    return this.ctrl.signal;
  }

  destroy() {
    this.destroyed = true;
    this.ctrl?.abort();
  }

  range(state = this.ctx.state) {
    return resolveRange(state);
  }

  /** Did the part of the state that decides what data to fetch change? */
  rangeChanged(state, prev) {
    return state.range !== prev.range || state.from !== prev.from || state.to !== prev.to;
  }

  /**
   * The live tick. With `healthOnly` (paused while the API is down) it only pings the API;
   * a view whose first load failed loads again once the API answers.
   */
  async refresh({ healthOnly = false } = {}) {
    if (healthOnly || !this.loaded) {
      await api.getJSON("servers");
      if (!this.loaded) await this.load();
      return;
    }
    await this.liveUpdate();
  }

  /** Show an API error in `el`: unknown names, an unreachable API, refused parameters. */
  showError(el, err, { kind, name } = {}) {
    if (err.name === "AbortError") return;
    if (!(err instanceof api.ApiError)) throw err;
    this.root.classList.add("failed");
    const back = h("p", null, h("a.button", { href: this.ctx.link("fleet") }, "← Back to the fleet"));
    if (err.status === 404 && kind) {
      replace(el, notice("error", `Unknown ${kind} “${name}”`,
        `minutely has no ${kind} named “${name}”. It may be misspelt, or it has not sent any points yet.`,
        h("p.muted.small", null, `The API said: ${err.message}`), back));
      this.suggest(el, kind, name);
    } else if (err.unreachable) {
      replace(el, notice("error", "Cannot reach the minutely API",
        `${err.message}. The page retries every ${this.ctx.period} s and fills in once it answers.`));
    } else {
      replace(el, notice("error", "The API refused this request", err.message, back));
    }
  }

  /** Under an "unknown name" message: known names that look close, as links. */
  async suggest(el, kind, name) {
    try {
      const body = await api.getJSON(`${kind}s`);
      const names = body[`${kind}s`] || [];
      const needle = name.toLowerCase().replace(/[^a-z0-9]/g, "");
      const close = names.filter((n) => {
        const plain = n.toLowerCase().replace(/[^a-z0-9]/g, "");
        return needle && (plain.includes(needle.slice(0, 3)) || needle.includes(plain.slice(0, 3)));
      });
      const pick = (close.length ? close : names).slice(0, 12);
      if (!pick.length) return;
      el.querySelector(".notice")?.append(h("p.suggest", null,
        close.length ? "Did you mean " : `Known ${kind}s: `,
        pick.map((n, i) => [i ? ", " : "", h("a", { href: this.ctx.link(kind, n) }, n)]),
        names.length > pick.length && !close.length ? ", …" : ""));
    } catch {
      // the message above stands on its own
    }
  }

  /** The view shows data again: drop the error styling. */
  ok() {
    this.root.classList.remove("failed");
  }

  /** Record how long a draw took (read by the browser tests and shown in the console). */
  timed(what, started, charts) {
    const ms = performance.now() - started;
    const entry = { view: what, charts, ms, paintMs: null };
    window.__minutely?.draws.push(entry);
    requestAnimationFrame(() => requestAnimationFrame(() => {
      entry.paintMs = performance.now() - started;
    }));
    return entry;
  }
}
