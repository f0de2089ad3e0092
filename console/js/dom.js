// Building the page from data without ever parsing it as HTML: every value reaches the DOM as
// text, so nothing the API returns can run as script.

/** `h("button", {class: "x", onclick: f}, "Text", child)`: an element with its children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Unix seconds (or ms when `ms`) as local date and time. */
export function when(ts, ms = false) {
  if (!ts) return "—";
  const date = new Date(ms ? ts : ts * 1000);
  return date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** How long ago, in words: "12 s ago", "3 min ago". */
export function ago(ts) {
  if (!ts) return "never";
  const secs = Math.max(0, Math.round(Date.now() / 1000 - ts));
  if (secs < 60) return `${secs} s ago`;
  if (secs < 3600) return `${Math.round(secs / 60)} min ago`;
  if (secs < 86400) return `${Math.round(secs / 3600)} h ago`;
  return `${Math.round(secs / 86400)} d ago`;
}

/** A duration in milliseconds, in the unit that reads best. */
export function duration(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const mins = Math.floor(ms / 60_000);
  return `${mins} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** Megabytes as MB, GB or TB. */
export function size(mb) {
  if (mb >= 1024 * 1024) return `${(mb / 1024 / 1024).toFixed(1)} TB`;
  if (mb >= 1024) return `${(mb / 1024).toFixed(1)} GB`;
  return `${mb} MB`;
}

/** Waits until `ms` of quiet before calling `fn` (typing in a search box, a burst of events). */
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A short notice at the foot of the page. */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const note = h("div", { class: `toast ${kind}` }, message);
  box.append(note);
  setTimeout(() => note.remove(), 5000);
}
