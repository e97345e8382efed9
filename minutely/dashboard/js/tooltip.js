// One floating tooltip for the whole page, placed next to the pointer and kept on screen.

const OFFSET = 14;

function el() {
  return document.getElementById("tooltip");
}

/** Escape text for innerHTML. */
export function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Show `html` near the viewport point (x, y). */
export function showTip(html, x, y) {
  const tip = el();
  if (!tip) return;
  tip.innerHTML = html;
  tip.hidden = false;
  const { width, height } = tip.getBoundingClientRect();
  let left = x + OFFSET;
  let top = y + OFFSET;
  if (left + width > window.innerWidth - 4) left = Math.max(4, x - OFFSET - width);
  if (top + height > window.innerHeight - 4) top = Math.max(4, y - OFFSET - height);
  tip.style.transform = `translate(${Math.round(left)}px, ${Math.round(top)}px)`;
}

export function hideTip() {
  const tip = el();
  if (tip) tip.hidden = true;
}

/** Rows of a tooltip table: [[label, value, color?], ...]. */
export function tipTable(title, rows) {
  const body = rows
    .map(([label, value, color]) => {
      const swatch = color ? `<i class="sw" style="background:${esc(color)}"></i>` : "";
      return `<tr><th>${swatch}${esc(label)}</th><td>${esc(value)}</td></tr>`;
    })
    .join("");
  return `<div class="tt-title">${esc(title)}</div><table>${body}</table>`;
}
