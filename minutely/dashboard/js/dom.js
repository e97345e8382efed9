// Tiny DOM helpers: build elements without a framework.

/**
 * h("div.card", {title: "x", onclick: fn}, child, "text", [more children])
 * `attrs` may be left out (a Node, string or array there is the first child).
 * The tag may carry classes after dots. Attributes starting with "on" become listeners,
 * `dataset` is merged, `hidden`/`checked`/`disabled` are set as properties.
 */
export function h(tag, attrs, ...children) {
  if (attrs instanceof Node || typeof attrs === "string" || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = null;
  }
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value == null || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key === "class") el.classList.add(...String(value).split(" ").filter(Boolean));
      else if (key in PROPS) el[key] = value;
      else el.setAttribute(key, value === true ? "" : value);
    }
  }
  append(el, children);
  return el;
}

const PROPS = { hidden: 1, checked: 1, disabled: 1, value: 1, textContent: 1 };

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.textContent = "";
  append(el, children);
  return el;
}

/** A message block for empty and error states. */
export function notice(kind, title, ...body) {
  return h(`div.notice.${kind}`, { role: kind === "error" ? "alert" : "status" },
    h("h2", null, title), ...body.map((b) => (b instanceof Node ? b : h("p", null, b))));
}

/** Call `fn` once `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

/** The root font size in CSS pixels: canvas text and chart sizes follow it, as the CSS does. */
export function remPx() {
  return Number.parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
}

export const FONT_FAMILY = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

/** A canvas font `scale` rem high. */
export function canvasFont(scale = 0.8) {
  return `${Math.round(remPx() * scale)}px ${FONT_FAMILY}`;
}
