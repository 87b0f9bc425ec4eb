// Building the page from data: DOM helpers, formatting, ticking times, the QR sanitizer.
// Field data (board strings, log lines) only ever goes into the page as text, never as HTML.

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function badge(text, kind) {
  return el("span", { class: `badge b-${kind}`, text });
}

export function setText(node, value, fallback = "–") {
  node.textContent = value === null || value === undefined || value === "" ? fallback : String(value);
}

export function fmtAmount(paise, currency) {
  if (!Number.isInteger(paise)) return paise === null || paise === undefined ? "–" : String(paise);
  const sign = paise < 0 ? "-" : "";
  const abs = Math.abs(paise);
  const rupees = Math.trunc(abs / 100).toLocaleString("en-IN");
  const value = `${rupees}.${String(abs % 100).padStart(2, "0")}`;
  return currency === "INR" || !currency ? `${sign}₹${value}` : `${sign}${value} ${currency}`;
}

export function fmtBytes(n) {
  if (typeof n !== "number") return "not available";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function fmtDuration(s) {
  if (typeof s !== "number" || !Number.isFinite(s)) return "–";
  const t = Math.max(0, Math.round(s));
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)} min ${t % 60} s`;
  if (t < 86400) return `${Math.floor(t / 3600)} h ${Math.floor((t % 3600) / 60)} min`;
  return `${Math.floor(t / 86400)} d ${Math.floor((t % 86400) / 3600)} h`;
}

export function toDate(ts) {
  if (typeof ts === "number") return new Date(ts * 1000);
  if (typeof ts === "string" && ts) {
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? null : d;
  }
  return null;
}

export function fmtClock(ts) {
  const d = toDate(ts);
  return d ? d.toLocaleString() : "never";
}

export function ago(date) {
  const s = (Date.now() - date.getTime()) / 1000;
  return s >= 0 ? `${fmtDuration(s)} ago` : `in ${fmtDuration(-s)}`;
}

// A time that stays current: re-rendered every second by the ticker.
export function timeNode(ts, never = "never") {
  const d = toDate(ts);
  if (!d) return el("span", { class: "muted", text: never });
  return el("time", { class: "ago", "data-ts": String(d.getTime()), title: d.toLocaleString(), text: ago(d) });
}

// A duration that keeps counting (uptime): from a start time, else the figure as given.
export function sinceNode(startTs, fallbackS) {
  const d = toDate(startTs);
  if (!d) return fmtDuration(fallbackS);
  return el("span", { class: "since", "data-ts": String(d.getTime()), text: fmtDuration((Date.now() - d.getTime()) / 1000) });
}

export function tick() {
  for (const node of document.querySelectorAll("time.ago[data-ts]")) {
    node.textContent = ago(new Date(Number(node.dataset.ts)));
  }
  for (const node of document.querySelectorAll("span.since[data-ts]")) {
    node.textContent = fmtDuration((Date.now() - Number(node.dataset.ts)) / 1000);
  }
}

export function yesNo(value, good, bad, unknown = "not available") {
  if (value === null || value === undefined) return badge(unknown, "none");
  return value ? badge(good[0], good[1]) : badge(bad[0], bad[1]);
}

export function kv(pairs) {
  const dl = el("dl", { class: "kv" });
  for (const [label, value] of pairs) {
    dl.append(el("dt", { text: label }), el("dd", {}, value === null || value === undefined ? "–" : value));
  }
  return dl;
}

const SVG_ELEMENTS = new Set(["svg", "path", "rect", "g"]);
const SVG_ATTRS = new Set(["viewBox", "width", "height", "d", "fill", "x", "y", "version", "xmlns", "id", "class"]);

// The QR arrives as SVG markup rendered by the hub; it is parsed as XML and only plain shapes
// are kept before it goes into the page.
export function qrNode(markup) {
  const doc = new DOMParser().parseFromString(markup, "image/svg+xml");
  const root = doc.documentElement;
  if (!root || root.localName !== "svg" || doc.getElementsByTagName("parsererror").length) return null;
  for (const node of [root, ...root.querySelectorAll("*")]) {
    if (!SVG_ELEMENTS.has(node.localName)) {
      node.remove();
      continue;
    }
    for (const attr of [...node.attributes]) {
      if (!SVG_ATTRS.has(attr.name)) node.removeAttribute(attr.name);
    }
  }
  root.setAttribute("role", "img");
  root.setAttribute("aria-label", "payment QR code");
  return document.importNode(root, true);
}
