// A searchable list of every server or metric: the Server and Metric views before one is chosen.

import * as api from "../api.js";
import { matcher } from "../data.js";
import { h, notice, replace } from "../dom.js";

export async function picker(view, kind) {
  const { ctx, root } = view;
  const list = h("ul.name-list.columns");
  const count = h("p.muted");
  const search = h("input.filter", {
    type: "search", placeholder: `Search ${kind}s…`, value: ctx.state.q, "aria-label": `Search ${kind}s`,
    oninput: () => draw(),
    onkeydown: (e) => {
      const first = list.querySelector("a");
      if (e.key === "Enter" && first) location.hash = first.getAttribute("href");
    },
  });
  const body = h("div.panel", null, count, list);
  replace(root,
    h("div.view-head", h("div", null, h("h1", null, `Choose a ${kind}`),
      h("p.subtitle.muted", null, kind === "server"
        ? "Every metric of one server over time, with a summary table."
        : "One metric across the fleet: min, max and avg, and any server's line.")),
    h("div.head-tools", null, search)),
    body);
  let names = [];
  function draw() {
    const keep = matcher(search.value);
    const shown = names.filter(keep);
    count.textContent = `${shown.length} of ${names.length} ${kind}s`;
    replace(list, shown.map((n) => h("li", null, h("a", { href: ctx.link(kind, n) }, n))));
  }
  view.load = async () => {
    try {
      const answer = await ctx.busy(api.getJSON(`${kind}s`, {}, { signal: view.begin() }));
      names = answer[`${kind}s`];
      view.loaded = true;
      if (!names.length) {
        replace(body, notice("empty", `No ${kind}s yet`, "Nothing has been sent to minutely yet."));
        return;
      }
      draw();
      search.focus();
    } catch (err) {
      view.showError(body, err);
    }
  };
  view.liveUpdate = async () => {};
  view.update = () => {};
  await view.load();
}
